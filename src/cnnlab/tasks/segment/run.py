"""``train_segmenter``: a semantic segmentation run on the engine; writes a run folder that
``evaluate_segmenter``, ``predict_segmenter``, ``export_segmenter``, ``cnnlab report`` and ``compare`` read.

    result = train_segmenter(data="synthetic", model="unet", epochs=10)
    result.run_dir   # runs/segment/exp: weights/{best,last}.pt, config.yaml, history, metrics, curves.png,
                     # val_masks.png, confusion.png
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnnlab.config.schema import read_options
from cnnlab.config.segment import SegmentConfig
from cnnlab.config.signature import with_config_signature
from cnnlab.errors import UserError


@dataclass
class SegmentResult:
    """What ``train_segmenter`` returns; usable wherever a run folder path is expected."""

    run_dir: Path
    metrics: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)

    def __fspath__(self) -> str:
        return str(self.run_dir)


@with_config_signature(SegmentConfig)
def train_segmenter(config: SegmentConfig | dict | str | os.PathLike | None = None,
                    resume: str | os.PathLike | None = None, callbacks: Iterable[Any] = (),
                    log: Callable[[str], None] | None = None, **options: Any) -> SegmentResult:
    """Train a segmenter; returns the run folder and its metrics.

    ``config``: a SegmentConfig, a dict or a YAML file; keyword options (every SegmentConfig field) win.
    ``resume``: a run folder (or its last.pt): continue it exactly, to ``epochs``.
    """
    import cnnlab.tasks.segment.infer  # noqa: F401  (registers the checkpoint format)
    from cnnlab.engine.run import fit_task, load_resume, printer
    from cnnlab.tasks.segment.task import SegmentTask

    ckpt, run_dir = None, None
    if resume is not None:
        if config is not None:
            raise UserError("a resumed run keeps its config; give only resume and the options that may change "
                            f"({', '.join(SegmentConfig.RESUMABLE)})")
        run_dir, cfg, ckpt = load_resume(resume, SegmentConfig, options, "cnnlab.segment")
    else:
        base = config.to_dict() if isinstance(config, SegmentConfig) else \
            read_options(config) if isinstance(config, (str, os.PathLike)) else dict(config or {})
        base.pop("task", None)
        base.pop("names", None)
        cfg = SegmentConfig.from_dict({**base, **options}, source="segment-train options")
    from cnnlab.paths import find_data

    if cfg.data != "synthetic" and not find_data(cfg.data).is_dir():
        raise UserError(f"dataset not found: {cfg.data} (synthetic, an images/ + masks/ folder or a VOC folder)")
    say = log or printer(cfg.verbose)
    engine, metrics = fit_task(SegmentTask(cfg), cfg, ckpt=ckpt, run_dir=run_dir, callbacks=list(callbacks),
                               log=say, resume_hint="cnnlab segment-train --resume")
    assert engine.run_dir is not None
    return SegmentResult(engine.run_dir, metrics, engine.history)
