"""cnnlab: train, transfer, tune, inspect, detect (YOLO + OpenCV) and deploy convolutional networks.

The public API is imported lazily so ``import cnnlab`` (and ``cnnlab --help``) stays fast:

    import cnnlab
    run = cnnlab.train(dataset="mnist", model="lenet5", epochs=10)
    metrics = cnnlab.evaluate(run)
    model = cnnlab.create_model("resnet18_cifar", num_classes=10)
"""

from __future__ import annotations

from cnnlab._lazy import lazy_exports

__version__ = "0.1.0"

# public name -> module that defines it
_LAZY = {
    # classification core
    "train": "cnnlab.api",
    "evaluate": "cnnlab.api",
    "predict": "cnnlab.api",
    "load": "cnnlab.api",
    "resolve": "cnnlab.api",
    "identify": "cnnlab.api",
    "demo": "cnnlab.api",
    "train_detector": "cnnlab.api",
    "TrainConfig": "cnnlab.config",
    "DetectTrainConfig": "cnnlab.config",
    "Trainer": "cnnlab.tasks.classify.task",
    "Engine": "cnnlab.engine.loop",
    "Task": "cnnlab.engine.task",
    "create_model": "cnnlab.models",
    "list_models": "cnnlab.models",
    "register_model": "cnnlab.models",
    "count_params": "cnnlab.models",
    "load_dataset": "cnnlab.data",
    "list_datasets": "cnnlab.data",
    # look inside / deploy
    "summary": "cnnlab.inspect.summary",
    "export": "cnnlab.api",
    "benchmark": "cnnlab.deploy.benchmark",
    # experiments
    "tune": "cnnlab.experiments.tune",
    "ablate": "cnnlab.experiments.ablate",
    "compare": "cnnlab.experiments.compare",
    "report": "cnnlab.experiments.report",
    "lr_find": "cnnlab.experiments.lr_find",
    "ensemble": "cnnlab.experiments.ensemble",
    # detection
    "Detector": "cnnlab.api",
    "detect_eval": "cnnlab.api",
    "run_pipeline": "cnnlab.detect.pipeline",
    # errors
    "UserError": "cnnlab.errors",
}

__all__ = sorted(_LAZY) + ["__version__"]


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
