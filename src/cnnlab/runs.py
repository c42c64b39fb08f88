"""Run folders: ``<project>/<task>/<name>`` with config, history, metrics, checkpoints and plots.

Every command writes one; every later command (evaluate, export, compare, report) reads one.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from cnnlab.errors import UserError
from cnnlab.io import read_json, read_yaml, write_json, write_yaml

CONFIG = "config.yaml"
METRICS = "metrics.json"
WEIGHTS_DIR = "weights"
BEST = "best.pt"
LAST = "last.pt"


def new_run_dir(project: str | Path = "runs", task: str = "classify", name: str = "exp",
                exist_ok: bool = False) -> Path:
    """Create and return a fresh run folder: ``exp``, then ``exp2``, ``exp3``… (Ultralytics style)."""
    base = Path(project) / task
    base.mkdir(parents=True, exist_ok=True)
    candidate = base / name
    if exist_ok:
        candidate.mkdir(parents=True, exist_ok=True)
        return candidate
    m = re.fullmatch(r"(.*?)(\d*)", name)
    stem = m.group(1) if m and m.group(1) else name
    n = 2
    while True:
        try:
            candidate.mkdir(parents=True, exist_ok=False)
            return candidate
        except FileExistsError:
            candidate = base / f"{stem}{n}"
            n += 1


def resolve_run(path: str | Path) -> Path:
    """Return the run folder for ``path`` (a run folder, or a file inside one)."""
    p = Path(path)
    if p.is_file():
        for parent in p.parents:
            if (parent / CONFIG).is_file():
                return parent
        raise UserError(f"{p} is not inside a cnnlab run folder (no {CONFIG} above it)")
    if not p.is_dir():
        raise UserError(f"run not found: {p}")
    if not (p / CONFIG).is_file():
        raise UserError(f"{p} is not a cnnlab run folder (no {CONFIG})")
    return p


def read_run_config(run: str | Path) -> dict[str, Any]:
    """The ``config.yaml`` of a run."""
    return read_yaml(resolve_run(run) / CONFIG) or {}


def read_run_metrics(run: str | Path) -> dict[str, Any]:
    """The ``metrics.json`` of a run (empty when the run has none yet)."""
    f = resolve_run(run) / METRICS
    return read_json(f) if f.is_file() else {}


def write_run_config(run: str | Path, config: dict[str, Any]) -> Path:
    return write_yaml(Path(run) / CONFIG, config)


def write_run_metrics(run: str | Path, metrics: dict[str, Any]) -> Path:
    return write_json(Path(run) / METRICS, metrics)


def checkpoint_path(run: str | Path, which: str = "best") -> Path:
    """Path of the ``best`` or ``last`` checkpoint of a run (falls back to ``last`` if no best)."""
    run = resolve_run(run)
    wdir = run / WEIGHTS_DIR
    f = wdir / (BEST if which == "best" else LAST)
    if f.is_file():
        return f
    if which == "best" and (wdir / LAST).is_file():
        return wdir / LAST
    raise UserError(f"no {which} checkpoint in {run}")
