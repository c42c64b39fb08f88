"""The seam between experiments and training: ``train_fn(config, callbacks, run_dir) -> metrics``.

``tune`` and ``ablate`` only ever call a train function with this signature, so tests can pass a
fast fake objective while real searches use :func:`cnnlab_train` (``cnnlab.train``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from cnnlab.errors import UserError

TrainFn = Callable[[dict[str, Any], list[Any], Path], Mapping[str, Any]]

# options an experiment sets itself for each of its runs
OUTPUT_KEYS = ("project", "name", "exist_ok")


def load_base_config(config: Any) -> dict[str, Any]:
    """The base run config as a plain dict: from a YAML path, a mapping or a TrainConfig."""
    if config is None:
        return {}
    if hasattr(config, "to_dict"):
        return dict(config.to_dict())
    if isinstance(config, Mapping):
        return dict(config)
    from cnnlab.io import read_yaml

    data = read_yaml(config) or {}
    if not isinstance(data, dict):
        raise UserError(f"{config}: a config file must be a mapping of option: value")
    return data


# tasks an experiment can run: name -> (config class, train function), imported when used
TASKS = {"classify": ("cnnlab.config:TrainConfig", "cnnlab.api:train"),
         "localize": ("cnnlab.config.localize:LocalizeConfig", "cnnlab.tasks.localize.run:train_localizer"),
         "segment": ("cnnlab.config.segment:SegmentConfig", "cnnlab.tasks.segment.run:train_segmenter"),
         "detect": ("cnnlab.config.detect:DetectTrainConfig", "cnnlab.experiments.runner:train_detection")}


def train_detection(config: Any = None, resume: Any = None, callbacks: Any = (), **options: Any) -> Any:
    """``detect-train`` with the calling convention of the other tasks' train functions (config first)."""
    from cnnlab.tasks.detect.run import train_detector

    return train_detector(config=config, resume=resume, callbacks=callbacks, **options)


def task_entry(task: str, which: int) -> Any:
    """The config class (``which`` 0) or train function (1) of ``task``; an unknown task is a UserError."""
    import importlib

    if task not in TASKS:
        raise UserError(f"unknown task {task!r} (known: {', '.join(TASKS)})")
    module, name = TASKS[task][which].split(":")
    return getattr(importlib.import_module(module), name)


def normalise_config(config: Mapping[str, Any], task: str = "classify") -> dict[str, Any]:
    """Map ``null`` on an option that cannot be null (e.g. ``augment: null``) to its default (off)."""
    from cnnlab.config import allows_none

    cls = task_entry(task, 0)
    not_null = {k for k in cls.field_names() if not allows_none(cls.field_type(k))}
    return {k: cls.default_of(k) if v is None and k in not_null else v for k, v in config.items()}


def validate_config(config: Mapping[str, Any], source: str = "config", deep: bool = False,
                    task: str = "classify") -> None:
    """Raise a one-line UserError if ``config`` is not a valid training config of ``task``; ``deep`` (a
    classification config): also if it names what does not exist (dataset, model, weights: the checks
    ``cnnlab train`` makes before it loads anything), so a search fails before it creates its folder, not
    at its first trial."""
    cfg = task_entry(task, 0).from_dict(normalise_config({k: v for k, v in config.items() if k not in OUTPUT_KEYS},
                                                         task), source=source)
    if not deep or task != "classify":
        return
    from cnnlab.tasks.classify.run import check_run

    try:
        check_run(cfg)
    except UserError as e:
        raise type(e)(f"{source}: {e}") from None


def cnnlab_train(config: dict[str, Any], callbacks: list[Any], run_dir: Path) -> dict[str, Any]:
    """Train one run with ``cnnlab.train`` into ``run_dir``; return its metrics (+ ``run_dir``)."""
    import cnnlab

    run_dir = Path(run_dir)
    cfg = {**normalise_config(config), "project": str(run_dir.parent), "name": run_dir.name, "exist_ok": True}
    result = cnnlab.train(cfg, callbacks=callbacks)
    return {**(getattr(result, "metrics", None) or {}), "run_dir": str(getattr(result, "run_dir", run_dir))}


def is_number(v: Any) -> bool:
    """A real number (int or float, not a bool)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def metric_value(metrics: Mapping[str, Any], metric: str) -> float:
    """``metrics[metric]`` as a float; a UserError naming the available metrics when it is missing."""
    from cnnlab.experiments.overrides import get_dotted

    value = metrics[metric] if metric in metrics else get_dotted(metrics, metric)
    if not is_number(value):
        available = sorted(k for k, v in metrics.items() if is_number(v))
        raise UserError(f"metric {metric!r} not in the run's metrics (available: {', '.join(available)})")
    return float(value)


def numeric_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The finite numbers among ``metrics`` (what a trials table shows)."""
    return {str(k): float(v) for k, v in metrics.items() if is_number(v) and math.isfinite(float(v))}


def relative(path: str | Path, root: Path) -> str:
    """``path`` relative to ``root`` when it lies inside it, else as given."""
    try:
        return str(Path(path).resolve().relative_to(Path(root).resolve()))
    except ValueError:
        return str(path)


def progress_bar(label: str, show: bool) -> Any:
    """A rich progress bar for a series of runs: label, bar, done/total, elapsed time, an info field."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn(f"[bold]{label}[/]"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TextColumn("{task.fields[info]}"), disable=not show)


def check_direction(direction: str | None, metric: str) -> str:
    """``maximize`` or ``minimize``; by default minimize losses, errors and times, maximize the rest."""
    lower_is_better = any(w in metric.lower() for w in ("loss", "error", "time", "latency"))
    direction = (direction or ("minimize" if lower_is_better else "maximize")).lower()
    aliases = {"max": "maximize", "min": "minimize", "maximise": "maximize", "minimise": "minimize"}
    direction = aliases.get(direction, direction)
    if direction not in ("maximize", "minimize"):
        raise UserError(f"direction must be maximize or minimize, got {direction!r}")
    return direction
