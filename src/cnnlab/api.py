"""The public Python API in one place: plain functions and classes with real signatures.

    import cnnlab
    run = cnnlab.train(dataset="mnist", model="lenet5", epochs=10, optimizer="adam", lr=1e-3)
    cnnlab.evaluate(run, tta=True)
    cnnlab.predict(run, ["digit.png"], topk=3)
"""

from __future__ import annotations

from cnnlab.demo import demo, register_demo_part
from cnnlab.inference import LoadedModel, evaluate, load, predict
from cnnlab.tasks.classify.run import TrainResult, resolve_config, train

__all__ = ["LoadedModel", "TrainResult", "demo", "evaluate", "load", "predict", "register_demo_part",
           "resolve_config", "train"]
