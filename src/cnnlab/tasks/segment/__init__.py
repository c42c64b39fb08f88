"""Semantic segmentation (a class for every pixel) on the engine."""
