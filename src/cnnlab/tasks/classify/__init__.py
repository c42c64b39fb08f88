"""Image classification as an engine task."""
