"""Darknet cfg/weights as PyTorch modules and the native YOLO builders.

Sits below both ``cnnlab.models`` (the ``darknet53`` classifier, the YOLO registry entries) and
``cnnlab.detect`` (detectors, training): it imports neither.
"""
