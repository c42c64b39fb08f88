"""Fuzz targets: {name: callable(bytes) -> None} per parser of untrusted input (see each module's fuzz_targets)."""
