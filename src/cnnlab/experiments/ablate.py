"""Ablation studies: ``cnnlab ablate config.yaml --factors factors.yaml --folds 5``.

A full factorial over named switches, each cell cross-validated over ``k`` stratified folds of the
training set (``TrainConfig.folds`` / ``fold``; every cell sees the same folds, so cells compare
pairwise). A factors file maps each factor to its levels, each level to config overrides::

    augmentation:
      on:  {augment: {rotation_range: 15, width_shift_range: 0.1, horizontal_flip: true}}
      off: {augment: null}
    dropout:
      on:  {model_kwargs.dropout: 0.25}     # dotted names reach nested options
      off: {model_kwargs.dropout: 0.0}
    l2:
      on:  {weight_decay: 5.0e-4}
      off: {weight_decay: 0.0}

Levels need not be on/off (``optimizer: {sgd: {...}, adam: {...}}``). Results go to
``<project>/ablate/<name>``: a table (mean ± std per cell, best cell marked; CSV + Markdown), a box
plot of the fold scores per cell, and one run folder per cell × fold. Running the same command
again skips every cell × fold already finished.
"""

from __future__ import annotations

import datetime as _dt
import functools
import itertools
import json
import math
import re
import statistics
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnnlab.errors import UserError
from cnnlab.experiments.overrides import deep_merge
from cnnlab.experiments.runner import (
    TrainFn,
    check_direction,
    cnnlab_train,
    load_base_config,
    metric_value,
    numeric_metrics,
    progress_bar,
    relative,
    validate_config,
)
from cnnlab.experiments.tables import write_tables
from cnnlab.io import read_json, write_json
from cnnlab.plots import pyplot, save_figure

RESULTS = "results.json"
SPEC = "ablate.json"


@dataclass(frozen=True)
class Factor:
    """A named switch: level name -> config overrides."""

    name: str
    levels: dict[str, dict[str, Any]]


@dataclass(frozen=True)
class Cell:
    """One combination of levels, one per factor."""

    levels: dict[str, str]
    overrides: tuple[dict[str, Any], ...]

    @property
    def name(self) -> str:
        return ", ".join(f"{f}={lv}" for f, lv in self.levels.items())

    @property
    def slug(self) -> str:
        return "_".join(re.sub(r"[^A-Za-z0-9.-]+", "-", f"{f}-{lv}") for f, lv in self.levels.items())

    def config(self, base: Mapping[str, Any]) -> dict[str, Any]:
        return functools.reduce(deep_merge, self.overrides, dict(base))


@dataclass
class AblateResult:
    """What :func:`ablate` returns: per-cell fold scores and summary, the files written."""

    run_dir: Path
    metric: str
    direction: str
    folds: int
    cells: list[dict[str, Any]]
    best: str | None
    files: dict[str, Path] = field(default_factory=dict)


def _level_name(key: Any) -> str:
    """A level's name; YAML 1.1 reads on/off/yes/no keys as booleans, which stand for on and off."""
    return "on" if key is True else "off" if key is False else str(key)


def parse_factors(data: Any, source: str = "factors") -> list[Factor]:
    """Factors from a mapping ``factor -> {level -> overrides}`` (``null`` overrides = base config)."""
    if isinstance(data, Mapping) and set(data) == {"factors"}:
        data = data["factors"]
    if not isinstance(data, Mapping) or not data:
        raise UserError(f"{source}: expected a mapping of factor: {{on: {{...}}, off: {{...}}}}")
    factors = []
    for fname, levels in data.items():
        if not isinstance(levels, Mapping) or len(levels) < 2:
            raise UserError(f"{source}: factor {fname!r} needs at least two levels, e.g. on: {{...}}, off: {{...}}")
        parsed: dict[str, dict[str, Any]] = {}
        for key, overrides in levels.items():
            level = _level_name(key)
            overrides = {} if overrides is None else overrides
            if not isinstance(overrides, Mapping):
                raise UserError(f"{source}: {fname}.{level} must be a mapping of option: value, got {overrides!r}")
            parsed[level] = {str(k): v for k, v in overrides.items()}
        factors.append(Factor(str(fname), parsed))
    return factors


def load_factors(factors: str | Path | Mapping[str, Any] | list[Factor]) -> list[Factor]:
    if isinstance(factors, list) and all(isinstance(f, Factor) for f in factors):
        return factors
    if isinstance(factors, Mapping):
        return parse_factors(factors)
    from cnnlab.io import read_yaml

    return parse_factors(read_yaml(factors), source=str(factors))


def factorial(factors: list[Factor]) -> list[Cell]:
    """Every combination of levels (the first factor varies slowest)."""
    combos = itertools.product(*(f.levels.items() for f in factors))
    return [Cell({f.name: lv for f, (lv, _) in zip(factors, c, strict=True)}, tuple(ov for _, ov in c))
            for c in combos]


def ablate(
    config: Any,
    factors: str | Path | Mapping[str, Any] | list[Factor],
    folds: int = 5,
    *,
    metric: str = "val_accuracy",
    direction: str | None = None,
    project: str | Path = "runs",
    name: str = "exp",
    train_fn: TrainFn | None = None,
    plots: bool = True,
    log: Callable[[str], None] | None = print,
) -> AblateResult:
    """Cross-validate every cell of the full factorial; write table + box plot; resume finished work.

    ``config`` is the base run config (YAML path, dict or TrainConfig); ``factors`` a factors file
    or mapping. ``train_fn(config, callbacks, run_dir) -> metrics`` replaces ``cnnlab.train``.
    ``log=None``: no messages, no progress bar.
    """
    from cnnlab.runs import new_run_dir

    say = log or (lambda _msg: None)
    if int(folds) < 2:
        raise UserError(f"--folds must be >= 2, got {folds}")
    folds = int(folds)
    direction = check_direction(direction, metric)
    base = load_base_config(config)
    fs = load_factors(factors)
    cells = factorial(fs)
    if train_fn is None:
        for cell in cells:
            validate_config({**cell.config(base), "folds": folds, "fold": 0},
                            source=f"config of cell {cell.name}")

    run_dir = new_run_dir(project, "ablate", name, exist_ok=True)
    spec = json.loads(json.dumps({"factors": {f.name: f.levels for f in fs}, "folds": folds, "metric": metric,
                                  "direction": direction, "base": base}, default=str))
    _check_spec(run_dir, spec)
    results: dict[str, Any] = read_json(run_dir / RESULTS) if (run_dir / RESULTS).is_file() else {}
    todo = [(c, k) for c in cells for k in range(folds) if _key(c, k) not in results]
    total = len(cells) * folds
    say(f"ablation {run_dir}: {len(cells)} cells x {folds} folds = {total} runs, {direction} {metric}"
        + (f" ({total - len(todo)} already done)" if len(todo) < total else ""))
    train = train_fn or cnnlab_train
    with progress_bar("ablate", show=log is not None) as bar:
        task = bar.add_task("ablate", total=total, completed=total - len(todo), info="")
        for cell, k in todo:
            bar.update(task, info=f"{cell.name} fold {k + 1}/{folds}")
            cfg = {"verbose": 0, **cell.config(base), "folds": folds, "fold": k}
            fold_dir = run_dir / "cells" / cell.slug / f"fold{k}"
            metrics = dict(train(cfg, [], fold_dir))
            results[_key(cell, k)] = {"cell": cell.name, "fold": k, "value": metric_value(metrics, metric),
                                      "metrics": numeric_metrics(metrics),
                                      "run_dir": relative(metrics.get("run_dir") or fold_dir, run_dir)}
            write_json(run_dir / RESULTS, results)  # after every run: a killed study resumes here
            bar.advance(task)

    rows, best = summarise(cells, results, folds, direction)
    files = write_ablation_outputs(run_dir, fs, rows, best, metric, direction, folds, plots=plots)
    return AblateResult(run_dir=run_dir, metric=metric, direction=direction, folds=folds, cells=rows,
                        best=best, files=files)


def _key(cell: Cell, fold: int) -> str:
    return f"{cell.slug}/fold{fold}"


def _check_spec(run_dir: Path, spec: dict[str, Any]) -> None:
    path = run_dir / SPEC
    if path.is_file():
        old = read_json(path)
        for key in ("factors", "folds", "metric", "base"):
            if old.get(key) != spec[key]:
                raise UserError(f"{run_dir} holds an ablation with different {key}; use another --name")
    else:
        write_json(path, {**spec, "created": _dt.datetime.now().isoformat(timespec="seconds")})


def summarise(cells: list[Cell], results: Mapping[str, Any], folds: int,
              direction: str) -> tuple[list[dict[str, Any]], str | None]:
    """Per cell: fold scores, mean and sample std (ddof=1); the best cell by mean."""
    rows = []
    for cell in cells:
        scores = [results[_key(cell, k)]["value"] for k in range(folds) if _key(cell, k) in results]
        rows.append({"cell": cell.name, "slug": cell.slug, "levels": dict(cell.levels), "scores": scores,
                     "n": len(scores), "mean": statistics.fmean(scores) if scores else math.nan,
                     "std": statistics.stdev(scores) if len(scores) > 1 else math.nan})
    complete = [r for r in rows if r["n"] == folds and math.isfinite(r["mean"])]
    pick = max if direction == "maximize" else min
    best = pick(complete, key=lambda r: r["mean"])["cell"] if complete else None
    for r in rows:
        r["best"] = r["cell"] == best
    return rows, best


def write_ablation_outputs(run_dir: Path, factors: list[Factor], rows: list[dict[str, Any]], best: str | None,
                           metric: str, direction: str, folds: int, plots: bool = True) -> dict[str, Path]:
    """Write ``ablation.csv``/``.md``, ``box.png`` and ``summary.json``; return their paths."""
    best_mean = next((r["mean"] for r in rows if r["best"]), None)
    table = [{"cell": r["cell"], **r["levels"], "mean": r["mean"], "std": r["std"],
              "mean ± std": f"{r['mean']:.4f} ± {r['std']:.4f}" if r["n"] > 1 else "",
              "vs best": None if best_mean is None else r["mean"] - best_mean,
              "best": "*" if r["best"] else "", **{f"fold{k}": s for k, s in enumerate(r["scores"])}}
             for r in rows]
    fnames = [f.name for f in factors]
    columns = ["cell", *fnames, "mean ± std", "mean", "std", "vs best", *[f"fold{k}" for k in range(folds)], "best"]
    title = (f"ablation {run_dir.name}: {metric} ({direction}), {folds}-fold cross-validation, "
             f"mean ± sample std; * = best cell")
    csv_path, md_path = write_tables(run_dir / "ablation", table, columns, title=title)
    files = {"table_csv": csv_path, "table_md": md_path}
    if plots and any(r["n"] for r in rows):
        files["box_plot"] = box_plot(rows, run_dir / "box.png", metric, folds)
    write_json(run_dir / "summary.json", {
        "kind": "cnnlab.ablate", "metric": metric, "direction": direction, "folds": folds, "best": best,
        "cells": [{k: r[k] for k in ("cell", "levels", "scores", "mean", "std", "best")} for r in rows],
        "files": {k: p.name for k, p in files.items()},
    })
    return files


def box_plot(rows: list[dict[str, Any]], path: Path, metric: str, folds: int) -> Path:
    """One figure: a box of the fold scores per cell, fold points overlaid, best cell highlighted."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(rows) + 2), 5))
    data = [r["scores"] for r in rows]
    labels = [r["cell"].replace(", ", "\n") for r in rows]
    box = ax.boxplot(data, patch_artist=True, showmeans=True, widths=0.6)
    ax.set_xticks(range(1, len(rows) + 1), labels)
    for patch, r in zip(box["boxes"], rows, strict=True):
        patch.set_facecolor("#f4a261" if r["best"] else "#a8c5e2")
    for i, scores in enumerate(data, start=1):
        offsets = [(j - (len(scores) - 1) / 2) * 0.06 for j in range(len(scores))]
        ax.scatter([i + o for o in offsets], scores, s=14, color="#264653", zorder=3)
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} over {folds} folds per cell (orange: best mean, triangle: mean)")
    ax.grid(axis="y", alpha=0.3)
    plt.setp(ax.get_xticklabels(), fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)
