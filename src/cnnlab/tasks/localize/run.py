"""``train_localizer``: a classification + localisation run on the engine; writes a run folder that
``evaluate_localizer``, ``predict_localizer``, ``export_localizer``, ``cnnlab report`` and ``compare`` read.

    result = train_localizer(data="synthetic", epochs=10)
    result.run_dir   # runs/localize/exp: weights/{best,last}.pt, config.yaml, history, metrics, curves.png,
                     # val_predictions.png
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnnlab.config.localize import LocalizeConfig
from cnnlab.config.schema import read_options
from cnnlab.config.signature import with_config_signature
from cnnlab.errors import UserError


@dataclass
class LocalizeResult:
    """What ``train_localizer`` returns; usable wherever a run folder path is expected."""

    run_dir: Path
    metrics: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)

    def __fspath__(self) -> str:
        return str(self.run_dir)


@with_config_signature(LocalizeConfig)
def train_localizer(config: LocalizeConfig | dict | str | os.PathLike | None = None,
                    resume: str | os.PathLike | None = None, callbacks: Iterable[Any] = (),
                    log: Callable[[str], None] | None = None, **options: Any) -> LocalizeResult:
    """Train a localiser (one class + one box per image); returns the run folder and its metrics.

    ``config``: a LocalizeConfig, a dict or a YAML file; keyword options (every LocalizeConfig field) win.
    ``resume``: a run folder (or its last.pt): continue it exactly, to ``epochs``.
    """
    import cnnlab.tasks.localize.infer  # noqa: F401  (registers the checkpoint format)
    from cnnlab.engine.run import fit_task, load_resume, printer
    from cnnlab.tasks.localize.task import LocalizeTask

    ckpt, run_dir = None, None
    if resume is not None:
        if config is not None:
            raise UserError("a resumed run keeps its config; give only resume and the options that may change "
                            f"({', '.join(LocalizeConfig.RESUMABLE)})")
        run_dir, cfg, ckpt = load_resume(resume, LocalizeConfig, options, "cnnlab.localize")
    else:
        base = config.to_dict() if isinstance(config, LocalizeConfig) else \
            read_options(config) if isinstance(config, (str, os.PathLike)) else dict(config or {})
        base.pop("task", None)
        base.pop("names", None)
        cfg = LocalizeConfig.from_dict({**base, **options}, source="localize-train options")
    from cnnlab.paths import find_data

    if cfg.data != "synthetic" and not find_data(cfg.data).exists():
        raise UserError(f"dataset not found: {cfg.data} (synthetic, a data.yaml, YOLO folder, COCO json or VOC "
                        "folder)")
    say = log or printer(cfg.verbose)
    engine, metrics = fit_task(LocalizeTask(cfg), cfg, ckpt=ckpt, run_dir=run_dir, callbacks=list(callbacks),
                               log=say, resume_hint="cnnlab localize-train --resume")
    assert engine.run_dir is not None
    return LocalizeResult(engine.run_dir, metrics, engine.history)
