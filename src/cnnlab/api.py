"""The public Python API in one place: plain functions and classes with real signatures.

    import cnnlab
    run = cnnlab.train(dataset="mnist", model="lenet5", epochs=10, optimizer="adam", lr=1e-3)
    cnnlab.evaluate(run, tta=True)
    cnnlab.predict(run, ["digit.png"], topk=3)
"""

from __future__ import annotations

from cnnlab.demo import demo, register_demo_part
from cnnlab.deploy.export import export
from cnnlab.detect.detector import Detector
from cnnlab.detect.evaluate import detect_eval
from cnnlab.inference import LoadedModel, evaluate, load, predict
from cnnlab.sources import Resolved, identify, resolve
from cnnlab.tasks.classify.run import TrainResult, resolve_config, train
from cnnlab.tasks.detect.run import DetectTrainResult, train_detector

__all__ = ["DetectTrainResult", "Detector", "LoadedModel", "Resolved", "TrainResult", "demo", "detect_eval",
           "evaluate", "export", "identify", "load", "predict", "register_demo_part", "resolve",
           "resolve_config", "train", "train_detector"]
