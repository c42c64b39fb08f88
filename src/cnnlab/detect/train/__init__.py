"""Train YOLO detectors on your own boxes (``cnnlab detect-train``, ``cnnlab anchors``).

    from cnnlab.detect.train import train_detector
    result = train_detector("data.yaml", model="yolov3-tiny", epochs=30, imgsz=416)
    Detector(model=result.run_dir)        # the run plugs into detect / stream / detect-eval

Names are imported lazily so importing the package does not load torch or OpenCV.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "train_detector": "cnnlab.tasks.detect.run",
    "DetectTrainResult": "cnnlab.tasks.detect.run",
    "DetectTrainConfig": "cnnlab.config",
    "YoloLoss": "cnnlab.detect.train.loss",
    "build_targets": "cnnlab.detect.train.targets",
    "kmeans_anchors": "cnnlab.detect.train.anchors",
    "dataset_anchors": "cnnlab.detect.train.anchors",
    "build_training_model": "cnnlab.detect.train.model",
    "write_scene_dataset": "cnnlab.detect.train.scenes",
    "write_scene_clip": "cnnlab.detect.train.scenes",
    "detection_demo": "cnnlab.detect.train.demo",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'cnnlab.detect.train' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
