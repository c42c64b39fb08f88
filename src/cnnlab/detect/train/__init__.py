"""Train YOLO detectors on your own boxes (``cnnlab detect-train``, ``cnnlab anchors``).

    from cnnlab.detect.train import train_detector
    result = train_detector("data.yaml", model="yolov3-tiny", epochs=30, imgsz=416)
    Detector(model=result.run_dir)        # the run plugs into detect / stream / detect-eval

Names are imported lazily so importing the package does not load torch or OpenCV.
"""

from __future__ import annotations

from cnnlab._lazy import lazy_exports

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

__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
