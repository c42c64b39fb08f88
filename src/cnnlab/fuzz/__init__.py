"""Fuzz targets for the parsers of untrusted input: ``fuzz_targets()`` in each module."""
