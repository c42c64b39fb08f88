"""``train_detector``: a detector training run on the engine; writes a run folder every detection
command can use.

    result = train_detector("data.yaml", model="yolov3-tiny", epochs=30, imgsz=320)
    result.run_dir   # runs/detect/exp: weights/{best,last}.pt (+ Darknet .cfg/.weights), curves...
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnnlab.config import DetectTrainConfig
from cnnlab.config.schema import read_options
from cnnlab.config.signature import with_config_signature
from cnnlab.errors import UserError


@dataclass
class DetectTrainResult:
    """What ``train_detector`` returns; usable wherever a run folder path is expected."""

    run_dir: Path
    metrics: dict[str, Any]
    model: Any                      # the best (EMA) DarknetModel, eval mode
    history: list[dict[str, Any]] = field(default_factory=list)

    def __fspath__(self) -> str:
        return str(self.run_dir)


def check_detect_run(cfg: DetectTrainConfig, resuming: bool = False) -> None:
    """Every check a detector run can make before it reads its labels or builds a network, so that a
    mistake is one line at once: the data path, the optimiser and schedule, the device, the model
    (a registered detector, a .cfg that parses, a detection run or checkpoint) and ``weights``.
    ``resuming``: the run's own checkpoint replaces ``model``/``weights``.
    """
    if not Path(cfg.data).expanduser().exists():
        raise UserError(f"dataset not found: {cfg.data} (a data.yaml, YOLO folder, COCO json or VOC folder)")
    from cnnlab.devices import resolve_device
    from cnnlab.engine.optim import check_config

    check_config(cfg.optim())
    resolve_device(cfg.device)
    if not resuming:
        _check_detect_model(cfg.model, cfg.weights)


def _locate_files(cfg: DetectTrainConfig) -> DetectTrainConfig:
    """A bare ``.cfg`` model or ``--weights`` file name resolves as in every command: the path as given,
    else the data root's ``yolo/`` or ``weights/`` (``cnnlab.paths.find_file``)."""
    from cnnlab.paths import find_path

    changes: dict[str, Any] = {}
    if Path(cfg.model).suffix.lower() == ".cfg" and (found := find_path(cfg.model, "cfg")) is not None:
        changes["model"] = str(found)
    if cfg.weights and (found := find_path(cfg.weights, "weights")) is not None:
        changes["weights"] = str(found)
    return cfg.replace(**changes) if changes else cfg


def _check_detect_model(spec: str, weights: str | None) -> None:
    """What ``build_training_model`` will accept, checked without building anything."""
    from cnnlab.detect.twostage import ARCHS, is_two_stage
    from cnnlab.models import find_entry, list_models

    if is_two_stage(spec):  # torchvision Faster R-CNN: --weights is a torchvision state_dict
        if weights is not None and not Path(weights).expanduser().is_file():
            raise UserError(f"weights file not found: {weights}")
        return
    if spec.strip().lower().startswith(("fasterrcnn", "faster_rcnn", "faster-rcnn")):
        from cnnlab.detect.twostage import check_arch

        check_arch(spec)   # a near miss: one line with the known two-stage names

    entry = find_entry(spec)
    path = Path(spec).expanduser()
    from_run = False
    if entry is not None:
        if entry.task != "detect":
            raise UserError(f"model {spec!r} is a classifier; detect-train trains "
                            f"{', '.join(list_models(task='detect'))}, a .cfg or a detection run")
    elif path.suffix.lower() == ".cfg":
        from cnnlab.darknet.cfg import read_cfg

        read_cfg(path)  # a missing file or a syntax error: one line now
    elif path.is_dir() or path.suffix.lower() in (".pt", ".pth"):
        from cnnlab.sources.kinds import identify

        if identify(path, task="detect").kind not in ("detect-run", "detect-checkpoint"):
            raise UserError(f"{path}: expected a detection run folder or checkpoint (weights/best.pt)")
        _refuse_two_stage_run(identify(path, task="detect").path)
        from_run = True
    else:
        known = ", ".join([*list_models(task="detect"), *ARCHS])
        raise UserError(f"model {spec!r} not found: expected {known}, a .cfg file, a detection run folder "
                        "or a .pt checkpoint")
    if weights is not None:
        if from_run:
            raise UserError("--weights (a Darknet file) starts a yolov3/yolov3-tiny or .cfg model; a run folder "
                            "already brings its weights")
        from cnnlab.detect.train.model import is_anchor_free

        wpath = Path(weights).expanduser()
        if not (wpath.is_file() or (wpath.is_dir() and is_anchor_free(spec))):   # cnnlab-nano: a run folder too
            raise UserError(f"weights file not found: {weights}")


#: options of the YOLO model and loss that a two-stage model (its own anchors, loss and width) has no use for
YOLO_ONLY = ("width_mult", "anchors", "freeze", "box_loss", "box_gain", "obj_gain", "cls_gain", "iou_thresh",
             "ignore_thresh")


def _refuse_two_stage_run(checkpoint: Path | None) -> None:
    """A Faster R-CNN run as ``--model``: say how to start from it (``--weights``), in one line."""
    from cnnlab.io import torch_load_safe

    if checkpoint is None or not checkpoint.is_file():
        return
    ckpt = torch_load_safe(checkpoint)
    spec = ckpt.get("torchvision") if isinstance(ckpt, dict) else None
    if isinstance(spec, dict):
        raise UserError(f"{checkpoint} is a two-stage run: start from it with --model {spec.get('arch')} "
                        f"--weights {checkpoint}")


def _check_two_stage_options(cfg: DetectTrainConfig) -> None:
    """A YOLO-only option set for a two-stage model is a one-line error, not silently ignored."""
    changed = [k for k in YOLO_ONLY if getattr(cfg, k) != DetectTrainConfig.default_of(k)]
    if changed:
        raise UserError(f"{', '.join(changed)}: YOLO options; {cfg.model} brings its own anchors, loss and width "
                        "(drop them)")


@with_config_signature(DetectTrainConfig)
def train_detector(data: str | os.PathLike | None = None, config: DetectTrainConfig | dict | str | os.PathLike | None = None,
                   resume: str | os.PathLike | None = None, callbacks: Iterable[Any] = (),
                   log: Callable[[str], None] | None = None, **options: Any) -> DetectTrainResult:
    """Train a YOLO detector; returns the run folder, best metrics and the best (EMA) model, eval mode.

    data: a data.yaml / YOLO folder / COCO json / VOC folder. ``config``: a DetectTrainConfig, a dict or a
    YAML file; keyword options (every DetectTrainConfig field) win over it.
    resume: a run folder (or its last.pt): continue it exactly, to ``epochs``.
    callbacks: engine callbacks (``on_train_begin``, ``on_epoch_end(trainer, epoch, logs)`` with epochs
    counted from 1, ``on_train_end``); ``trainer.stop_training = True`` stops early.
    """
    from cnnlab.engine.distributed import is_main

    ckpt, run_dir = None, None
    if resume is not None:
        from cnnlab.engine.run import load_resume_any_rank

        if data is not None or config is not None:
            raise UserError("a resumed run keeps its data and config; give only resume and the options "
                            f"that may change ({', '.join(DetectTrainConfig.RESUMABLE)})")
        run_dir, cfg, ckpt = load_resume_any_rank(resume, DetectTrainConfig, options, "cnnlab.detect")
    else:
        if isinstance(config, DetectTrainConfig):
            base = config.to_dict()
        elif isinstance(config, (str, os.PathLike)):
            base = read_options(config)
        else:
            base = dict(config or {})
        if data is not None:
            base["data"] = os.fspath(data)
        cfg = DetectTrainConfig.from_dict({**base, **options}, source="detect-train options")
    cfg = _locate_files(cfg) if ckpt is None else cfg
    if not is_main():  # other ranks of a distributed run print nothing
        cfg = cfg.replace(verbose=0)
        log = None
    check_detect_run(cfg, resuming=ckpt is not None)  # before any labels, network or run folder
    from cnnlab.detect.checkpoint import load_detector_checkpoint
    from cnnlab.engine.run import fit_task, printer
    from cnnlab.tasks.detect.task import DetectTask

    say = log or printer(cfg.verbose)
    from cnnlab.detect.twostage import is_two_stage

    if is_two_stage(cfg.model):
        from cnnlab.tasks.detect.twostage import TwoStageTask

        _check_two_stage_options(cfg)
        task: DetectTask = TwoStageTask(cfg, log=say)
    else:
        task = DetectTask(cfg, log=say)
    engine, metrics = fit_task(task, cfg, ckpt=ckpt, run_dir=run_dir, callbacks=list(callbacks), log=say,
                               resume_hint="cnnlab detect-train --resume")
    assert engine.run_dir is not None
    best = engine.run_dir / "weights" / "best.pt"
    model = load_detector_checkpoint(best)[0] if best.is_file() else copy.deepcopy(engine.eval_model).eval()
    return DetectTrainResult(engine.run_dir, metrics, model, engine.history)

