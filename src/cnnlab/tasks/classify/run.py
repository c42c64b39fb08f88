"""``cnnlab.train``: a classification run on the engine (config, run folder, resume, best model)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cnnlab.config import TrainConfig
from cnnlab.config.signature import with_config_signature
from cnnlab.errors import UserError

if TYPE_CHECKING:  # pragma: no cover  (torch is imported by the checks, after the config is read)
    from torch import nn

    from cnnlab.engine.callbacks import Callback


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

    def _headline(self) -> list[tuple[str, Any]]:
        keys = ("epochs", "best_epoch", "val_accuracy", "test_accuracy", "test_top5_accuracy", "test_loss",
                "train_time_s", "params_trainable")
        return [(k, self.metrics[k]) for k in keys if k in self.metrics]

    def __repr__(self) -> str:
        figures = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in self._headline())
        return f"TrainResult({self.run_dir}, {figures})"

    def _repr_html_(self) -> str:
        from cnnlab.notebook import html_table

        plots = [p.name for p in (self.run_dir / "curves.png", self.run_dir / "confusion.png") if p.is_file()]
        notes = [f"plots: {', '.join(plots)} in the run folder"] if plots else []
        return html_table(self._headline(), ("name", "value"), title=f"training run {self.run_dir}", notes=notes)

    def __rich__(self) -> Any:
        from cnnlab.notebook import rich_table

        return rich_table(self._headline(), title=f"training run {self.run_dir}")


def resolve_config(config: TrainConfig | dict | str | os.PathLike | None = None, **overrides: Any) -> TrainConfig:
    """A TrainConfig from a config object, dict or YAML file, with keyword overrides on top. A
    ``recipe`` (in the overrides or the config) is the bottom layer: recipe < config < overrides."""
    if config is None:
        cfg, given = TrainConfig(), {}
    elif isinstance(config, TrainConfig):
        cfg = config
        given = {k: v for k, v in cfg.to_dict().items() if v != TrainConfig.default_of(k)}
    elif isinstance(config, dict):
        cfg, given = TrainConfig.from_dict(config), dict(config)
    elif isinstance(config, (str, os.PathLike)):
        from cnnlab.config.schema import read_options

        given = read_options(config)
        cfg = TrainConfig.from_dict(given, source=str(config))
    else:
        raise UserError(f"config must be a TrainConfig, a dict or a YAML path, not {type(config).__name__}")
    recipe = overrides.get("recipe") or cfg.recipe
    if recipe:
        from cnnlab.recipes import recipe_options

        cfg = TrainConfig.from_dict({**recipe_options(recipe), **given}, source=f"recipe {recipe}")
    cfg = cfg.replace(**overrides) if overrides else cfg
    if cfg.weights:  # a bare checkpoint name under the data root's weights/, as in every command
        from cnnlab.paths import find_path

        found = find_path(cfg.weights, "weights")
        if found is not None and found.is_file() and str(found) != str(cfg.weights):
            cfg = cfg.replace(weights=str(found))
    cfg.validate()
    return cfg


def check_run(cfg: TrainConfig, resuming: bool = False) -> None:
    """Every check a run can make before it loads data or builds a model, cheapest first, so that a
    mistake is one line within about a second, not after the data has loaded: the files it names, the
    dataset, the optimiser and schedule, the device, the model (registry names and aliases, timm
    names, transfer backbones) and ``pretrained`` (a file that exists, or hub weights that are cached
    or can be downloaded). ``resuming``: the run's own weights replace ``weights``/``pretrained``.
    """
    if not resuming and cfg.weights and not Path(cfg.weights).expanduser().is_file():
        raise UserError(f"weights: checkpoint not found: {cfg.weights}")
    _check_dataset(cfg)
    from cnnlab.devices import resolve_device
    from cnnlab.engine.optim import check_config
    from cnnlab.models import check_model

    check_config(cfg.optim())
    resolve_device(cfg.device)
    check_model(cfg.model, cfg.pretrained, cfg.model_kwargs, task="classify")
    if cfg.pretrained and not resuming:
        from cnnlab.models.transfer import check_pretrained

        check_pretrained(cfg.model, cfg.model_kwargs, cfg.pretrained)


def _check_dataset(cfg: TrainConfig) -> None:
    """The dataset is a registered name or an existing image folder (as ``load_dataset`` reads it),
    with options its loader knows."""
    from cnnlab.data.registry import get_entry, list_datasets
    from cnnlab.tasks.classify.data import _dataset_options

    name, options = str(cfg.dataset), _dataset_options(cfg)
    if name not in list_datasets() and ("/" in name or os.sep in name or Path(name).is_dir()):
        name, options = "folder", {**options, "root": name}
    entry = get_entry(name)
    unknown = sorted(set(options) - set(entry.options))
    if unknown:
        raise UserError(f"dataset {entry.name}: unknown option(s) {', '.join(unknown)} "
                        f"(known: {', '.join(entry.options) or 'none'})")
    root = options.get("root") or cfg.data_dir
    if entry.name == "folder" and root and not Path(str(root)).expanduser().is_dir():
        raise UserError(f"dataset folder not found: {root}")


@with_config_signature(TrainConfig)
def train(config: TrainConfig | dict | str | os.PathLike | None = None, callbacks: Sequence[Callback] = (),
          resume: str | os.PathLike | None = None, **options: Any) -> TrainResult:
    """Train a classifier; returns the run folder, final metrics and the best model.

    ``config`` is a TrainConfig, a dict or a YAML file; keyword options (every TrainConfig field) win
    over it. ``resume`` (a run folder or its ``last.pt``) continues an interrupted run exactly.
    """
    from cnnlab.engine.distributed import is_main

    ckpt, run_dir = None, None
    if resume is not None:
        from cnnlab.engine.run import load_resume_any_rank

        if config is not None:
            raise UserError("resume continues a run with its own config; drop config")
        run_dir, cfg, ckpt = load_resume_any_rank(resume, TrainConfig, options, "cnnlab.classify")
    else:
        cfg = resolve_config(config, **options)
    if not is_main():  # other ranks of a distributed run print nothing
        cfg = cfg.replace(verbose=0)
    check_run(cfg, resuming=ckpt is not None)  # before any data, model or run folder
    from cnnlab.engine.run import fit_task
    from cnnlab.tasks.classify.task import ClassifyTask

    task = ClassifyTask(cfg)
    engine, metrics = fit_task(task, cfg, ckpt=ckpt, run_dir=run_dir, callbacks=callbacks)
    scored = next((s for s in ("test", "val") if f"{s}_accuracy" in metrics), None)
    task._say(f"{'test' if scored == 'test' else 'validation'} accuracy {metrics[f'{scored}_accuracy']:.4f}  "
              f"-> {engine.run_dir}" if scored else f"no evaluation after training -> {engine.run_dir}")
    model = getattr(task, "best_model", engine.eval_model)
    assert engine.run_dir is not None
    return TrainResult(engine.run_dir, metrics, model.eval(), engine.history)
