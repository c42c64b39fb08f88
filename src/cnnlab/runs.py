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
    """The ``config.yaml`` of a run: a mapping of option names (empty file: ``{}``); else a UserError."""
    f = resolve_run(run) / CONFIG
    return _mapping(read_yaml(f), f, "run options (name: value)")


def read_run_metrics(run: str | Path) -> dict[str, Any]:
    """The ``metrics.json`` of a run (empty when the run has none yet); not a JSON object: a UserError."""
    f = resolve_run(run) / METRICS
    return _mapping(read_json(f), f, "a JSON object of metrics") if f.is_file() else {}


def run_finished(run: str | Path) -> bool:
    """Whether a run folder holds its final metrics (``metrics.json`` without ``"status": "training"``,
    which the engine writes after every epoch while the run trains)."""
    f = Path(run) / METRICS
    if not f.is_file():
        return False
    try:
        return read_run_metrics(run).get("status") != "training"
    except Exception:  # noqa: BLE001 - an unreadable file is not a finished run
        return False


MAX_DEPTH = 64          # config and metrics files are shallow; deeper than this is not a run's file
MAX_NODES = 1_000_000   # values counted as written out (YAML aliases repeat what they refer to)


def _mapping(data: Any, path: Path, what: str) -> dict[str, Any]:
    """``data`` when it is a mapping with string keys holding plain, finite data."""
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected {what}, found {_kind(data)}")
    bad = [k for k in data if not isinstance(k, str)]
    if bad:
        raise UserError(f"{path}: expected {what}, found a key that is {_kind(bad[0])} ({str(bad[0])[:40]!r})")
    _check_finite(data, path)
    return data


def _check_finite(data: Any, path: Path) -> None:
    """Refuse YAML that refers to itself (``a: &x [*x]``), nests deeper than MAX_DEPTH or expands to
    more than MAX_NODES values through aliases (a "billion laughs" file): every later reader (JSON
    dumps, reports, comparisons) would recurse forever or blow up. Linear in the distinct values."""
    height: dict[int, int] = {}
    size: dict[int, int] = {}
    open_: set[int] = set()
    stack: list[tuple[Any, bool]] = [(data, False)]
    while stack:
        obj, leaving = stack.pop()
        key = id(obj)
        children = list(obj.values()) if isinstance(obj, dict) else obj
        if leaving:
            open_.discard(key)
            nested = [c for c in children if isinstance(c, dict | list)]
            height[key] = 1 + max((height[id(c)] for c in nested), default=0)
            size[key] = 1 + len(children) - len(nested) + sum(size[id(c)] for c in nested)
            if height[key] > MAX_DEPTH:
                raise UserError(f"{path}: nested more than {MAX_DEPTH} levels deep")
            if size[key] > MAX_NODES:
                raise UserError(f"{path}: expands to more than {MAX_NODES:,} values (YAML aliases)")
            continue
        if key in open_:
            raise UserError(f"{path}: a value contains itself (a YAML alias inside its own anchor)")
        if key in height:
            continue
        open_.add(key)
        stack.append((obj, True))
        stack.extend((c, False) for c in children if isinstance(c, dict | list))


def _kind(value: Any) -> str:
    names = {list: "a list", str: "a string", int: "a number", float: "a number", bool: "true/false",
             type(None): "null"}
    return names.get(type(value), f"a {type(value).__name__}")


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
