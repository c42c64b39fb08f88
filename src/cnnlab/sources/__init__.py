"""One resolver for every command: a run folder, a checkpoint, an ONNX file, a Darknet cfg + weights,
a TorchScript archive, a registered model name or a module becomes a :class:`Resolved` model.

    r = resolve("runs/classify/exp")                 # task, model (eval), classes, preprocessing, config...
    r = resolve("yolo.onnx", task="detect")          # names, input size, letterbox from the file
    r = resolve(cfg="yolov3-tiny.cfg", weights="yolov3-tiny.weights")
    identify("runs/detect/exp").kind                 # "detect-run": what it is, without loading

``evaluate``/``predict`` (``cnnlab.inference.load``), ``summary``/``visualize``, ``export``/``benchmark``
and ``Detector`` (``detect``, ``detect-eval``, ``stream``, ``sweep``) all go through :func:`resolve`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from cnnlab.errors import UserError
from cnnlab.sources.kinds import CLASSIFY, DETECT, KINDS, TASKS, Located, identify
from cnnlab.sources.resolved import Resolved

__all__ = ["CLASSIFY", "DETECT", "KINDS", "TASKS", "Located", "Resolved", "identify", "resolve"]


def resolve(source: Any = None, *, task: str | None = None, runtime: str | None = None, device: str = "cpu",
            cfg: str | os.PathLike | None = None, weights: str | os.PathLike | None = None,
            classes: Any = None, use_ema: bool = True, num_classes: int | None = None,
            in_chans: int | None = None, img_size: int | None = None, mean: Sequence[float] | None = None,
            std: Sequence[float] | None = None, name: str | None = None, seed: int = 0) -> Resolved:
    """Load ``source`` (anything :func:`identify` knows, a :class:`Located`, or a :class:`Resolved`,
    returned as it is) as a model of ``task`` ("classify" | "detect"; None: whatever it is).

    Classifiers: ``runtime`` None/"torch" for PyTorch sources, "onnxruntime" for .onnx files; the
    model goes to ``device``; ``use_ema`` picks a checkpoint's EMA weights. A model name is built with
    random weights (seeded by ``seed``) from ``num_classes`` (default 10), ``in_chans`` and
    ``img_size``; ``mean``/``std``/``img_size``/``in_chans``/``name`` describe a bare module.
    Detectors: ``cfg`` + ``weights`` name a Darknet model; the backend picks the runtime.
    ``classes`` (names, or a names file for detectors) replace the model's own class names.
    """
    if isinstance(source, Resolved):
        if task is not None and source.task != task:
            raise UserError(f"{source.describe()} is a {source.task} model, not a {task} model")
        return source
    loc = identify(source, task=task, cfg=cfg, weights=weights)
    if loc.task == DETECT:
        from cnnlab.sources.detect import load_detector

        return load_detector(loc, classes)
    from cnnlab.sources.classify import load_classifier

    return load_classifier(loc, runtime=runtime, device=device, use_ema=use_ema, classes=classes,
                           num_classes=num_classes, in_chans=in_chans, img_size=img_size, mean=mean, std=std,
                           name=name, seed=seed)
