"""cnnlab.detect: YOLO detection (Darknet cfg/weights in PyTorch, three backends, evaluation, pipeline).

Names are imported lazily so ``import cnnlab.detect`` does not load torch or OpenCV:

    from cnnlab.detect import Detector, draw_detections
    det = Detector(cfg="yolov3-tiny.cfg", weights="yolov3-tiny.weights", backend="opencv")
"""

from __future__ import annotations

from cnnlab._lazy import lazy_exports

_LAZY = {
    "Detector": "cnnlab.detect.detector",
    "Detections": "cnnlab.detect.types",
    "DetectionSample": "cnnlab.detect.types",
    "ImageSize": "cnnlab.detect.types",
    "draw_detections": "cnnlab.detect.draw",
    "DarknetModel": "cnnlab.darknet.model",
    "load_darknet": "cnnlab.darknet.model",
    "model_from_cfg": "cnnlab.darknet.model",
    "read_cfg": "cnnlab.darknet.cfg",
    "write_cfg": "cnnlab.darknet.cfg",
    "load_darknet_weights": "cnnlab.darknet.weights",
    "save_darknet_weights": "cnnlab.darknet.weights",
    "yolov3": "cnnlab.darknet.yolo",
    "yolov3_tiny": "cnnlab.darknet.yolo",
    "export_detector": "cnnlab.detect.export",
    "detect_source": "cnnlab.detect.predict",
    "load_names": "cnnlab.detect.names",
    "parse_names": "cnnlab.detect.names",
    "list_backends": "cnnlab.detect.backends",
    "register_backend": "cnnlab.detect.backends",
    "save_detector_checkpoint": "cnnlab.detect.checkpoint",
    "load_detector_checkpoint": "cnnlab.detect.checkpoint",
    "evaluate_detections": "cnnlab.detect.evaluate",
    "load_detection_dataset": "cnnlab.detect.data",
    "load_detection_data": "cnnlab.detect.data",
    "to_coco_json": "cnnlab.detect.data",
    "check_detection_data": "cnnlab.detect.check",
    "detect_eval": "cnnlab.detect.evaluate",
    "Pipeline": "cnnlab.detect.pipeline",
    "run_pipeline": "cnnlab.detect.pipeline",
    "run_sweep": "cnnlab.detect.pipeline.sweep",
}

__all__ = sorted(_LAZY)

__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
