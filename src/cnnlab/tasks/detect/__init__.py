"""YOLO detection as an engine task."""
