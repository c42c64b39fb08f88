"""``cnnlab.train``: a classification run on the engine (config, run folder, resume, best model)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from cnnlab.config import TrainConfig
from cnnlab.config.signature import with_config_signature
from cnnlab.engine.callbacks import Callback
from cnnlab.errors import UserError


@dataclass
class TrainResult:
    """What ``cnnlab.train`` returns; usable wherever a run folder path is expected."""

    run_dir: Path
    metrics: dict[str, Any]
    model: nn.Module
    history: list[dict[str, Any]] = field(default_factory=list)

    def __fspath__(self) -> str:
        return str(self.run_dir)

    def __str__(self) -> str:
        return str(self.run_dir)


def resolve_config(config: TrainConfig | dict | str | os.PathLike | None = None, **overrides: Any) -> TrainConfig:
    """A TrainConfig from a config object, dict or YAML file, with keyword overrides on top."""
    if config is None:
        cfg = TrainConfig()
    elif isinstance(config, TrainConfig):
        cfg = config
    elif isinstance(config, dict):
        cfg = TrainConfig.from_dict(config)
    elif isinstance(config, (str, os.PathLike)):
        cfg = TrainConfig.from_yaml(config)
    else:
        raise UserError(f"config must be a TrainConfig, a dict or a YAML path, not {type(config).__name__}")
    cfg = cfg.replace(**overrides) if overrides else cfg
    cfg.validate()
    return cfg


@with_config_signature(TrainConfig)
def train(config: TrainConfig | dict | str | os.PathLike | None = None, callbacks: Sequence[Callback] = (),
          resume: str | os.PathLike | None = None, **options: Any) -> TrainResult:
    """Train a classifier; returns the run folder, final metrics and the best model.

    ``config`` is a TrainConfig, a dict or a YAML file; keyword options (every TrainConfig field) win
    over it. ``resume`` (a run folder or its ``last.pt``) continues an interrupted run exactly.
    """
    from cnnlab.engine.run import fit_task, load_resume
    from cnnlab.tasks.classify.task import ClassifyTask

    ckpt, run_dir = None, None
    if resume is not None:
        if config is not None:
            raise UserError("resume continues a run with its own config; drop config")
        run_dir, cfg, ckpt = load_resume(resume, TrainConfig, options, "cnnlab.classify")
    else:
        cfg = resolve_config(config, **options)
    task = ClassifyTask(cfg)
    engine, metrics = fit_task(task, cfg, ckpt=ckpt, run_dir=run_dir, callbacks=callbacks)
    task._say(f"test accuracy {metrics.get('test_accuracy', float('nan')):.4f}  -> {engine.run_dir}")
    model = getattr(task, "best_model", engine.eval_model)
    assert engine.run_dir is not None
    return TrainResult(engine.run_dir, metrics, model.eval(), engine.history)
