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
    from cnnlab.detect.checkpoint import load_detector_checkpoint
    from cnnlab.engine.run import fit_task, load_resume, printer
    from cnnlab.tasks.detect.task import DetectTask

    ckpt, run_dir = None, None
    if resume is not None:
        if data is not None or config is not None:
            raise UserError("a resumed run keeps its data and config; give only resume and the options "
                            f"that may change ({', '.join(DetectTrainConfig.RESUMABLE)})")
        run_dir, cfg, ckpt = load_resume(resume, DetectTrainConfig, options, "cnnlab.detect")
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
    say = log or printer(cfg.verbose)
    task = DetectTask(cfg, log=say)
    engine, metrics = fit_task(task, cfg, ckpt=ckpt, run_dir=run_dir, callbacks=list(callbacks), log=say,
                               resume_hint="cnnlab detect-train --resume")
    assert engine.run_dir is not None
    best = engine.run_dir / "weights" / "best.pt"
    model = load_detector_checkpoint(best)[0] if best.is_file() else copy.deepcopy(engine.eval_model).eval()
    return DetectTrainResult(engine.run_dir, metrics, model, engine.history)

