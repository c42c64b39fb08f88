"""Fuzz targets: ``fuzz_targets()`` of each module maps a name to a callable(bytes) for one parser."""
