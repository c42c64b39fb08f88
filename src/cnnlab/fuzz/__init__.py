"""Fuzz targets: ``fuzz_targets()`` per area, for the bounded fuzzing benchmark."""
