"""Report sections for each kind of run folder: train runs, comparisons, tuning searches, ablations.

Each builder reads what the command left in its folder and returns report blocks; figures the folder
lacks (curves, confusion matrix) are drawn from its history and metrics into ``work``, and so is the
grid of sample predictions (the run's model on its own held-out images).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from cnnlab.data.samples import held_out_images
from cnnlab.errors import UserError
from cnnlab.experiments.report_blocks import Block, Code, Heading, Image, Table, Text, key_values
from cnnlab.experiments.tables import inline, read_csv_rows, read_history
from cnnlab.io import read_json
from cnnlab.plots import pyplot, save_figure

METRIC_KEYS = (
    "dataset", "model", "epochs", "params_trainable", "params_non_trainable", "accuracy", "loss",
    "top5_accuracy", "best_epoch", "val_accuracy", "val_loss", "val_top5_accuracy", "test_accuracy",
    "test_loss", "test_top5_accuracy", "train_time_s", "epoch_time_s", "images_per_s",
)


def detect_kind(path: str | Path) -> tuple[str, Path]:
    """``(kind, folder)`` of a run folder (or a file inside a train run); a UserError otherwise."""
    p = Path(path)
    if not p.exists():
        raise UserError(f"run not found: {p}")
    if p.is_dir():
        if (p / "results.json").is_file() and (p / "compare.yaml").is_file():
            return "compare", p
        if (p / "tune.json").is_file():
            return "tune", p
        if (p / "speedrun.json").is_file():
            return "speedrun", p
        if (p / "ablate.json").is_file():
            if (p / "summary.json").is_file():
                return "ablate", p
            raise UserError(f"{p}: the ablation has no summary.json yet (run cnnlab ablate to the end)")
        if (p / "config.yaml").is_file():
            return "train", p
        raise UserError(f"{p} is not a cnnlab run folder (train, compare, tune or ablate)")
    from cnnlab.runs import resolve_run

    return "train", resolve_run(p)


# -- helpers ------------------------------------------------------------------------------------------


def config_changes(config: dict[str, Any], config_cls: Any = None) -> list[dict[str, Any]]:
    """Options of a run config that differ from the defaults of its config class (TrainConfig unless
    given): what the user chose."""
    from cnnlab.config import TrainConfig

    defaults = (config_cls or TrainConfig)().to_dict()
    return [{"option": k, "value": inline(v), "default": inline(defaults.get(k))} for k, v in config.items()
            if k not in ("project", "name", "exist_ok") and (k not in defaults or defaults[k] != v)]


def _safe(what: str, fn: Callable[[], list[Block]]) -> list[Block]:
    """Run one optional part of a section; a problem the user can fix becomes a note in the report."""
    try:
        return fn()
    except (UserError, OSError, KeyError, ValueError) as e:
        return [Text(f"{what} unavailable: {str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__}")]


# -- train run ------------------------------------------------------------------------------------------


def train_section(run: Path, work: Path, level: int = 2, samples: int = 16, title: str | None = None) -> list[Block]:
    """Metrics, configuration, curves, confusion matrix and sample predictions of one training run."""
    from cnnlab.runs import read_run_config, read_run_metrics

    config = read_run_config(run)
    metrics = read_run_metrics(run)
    if run_task(config) in TASK_KEYS:
        return task_section(run, config, metrics, level, title)
    blocks: list[Block] = [Heading(title or f"Run {run.name}", level)]
    what = f"{config.get('model', '?')} on {config.get('dataset', '?')}"
    if metrics.get("status") == "training":
        blocks.append(Text(f"Folder {run}: {what}; still training or interrupted (epoch {metrics.get('epoch', '?')} "
                           f"of {metrics.get('epochs', '?')})."))
    else:
        blocks.append(Text(f"Folder {run}: {what}, {metrics.get('epochs', '?')} of {config.get('epochs', '?')} "
                           f"epochs trained." if metrics else f"Folder {run}: {what}; unfinished (no metrics.json)."))
    sub = level + 1
    if metrics:
        blocks += [Heading("Metrics", sub),
                   key_values({k: metrics[k] for k in METRIC_KEYS if k in metrics})]
    blocks.append(Heading("Configuration", sub))
    changes = config_changes(config)
    if changes:
        blocks.append(Table(changes, ["option", "value", "default"], "options that differ from the defaults"))
    blocks.append(Code(yaml.safe_dump(config, sort_keys=False), "yaml", "full configuration (config.yaml)"))
    blocks += _safe("training curves", lambda: _curves(run, work, sub))
    if (run / "diagnostics.png").is_file():
        blocks += [Heading("Training diagnostics", sub),
                   Image(run / "diagnostics.png", "per-layer gradient norm, update/weight ratio, activation std "
                                                  "and saturation over training (diagnostics.csv)")]
    if metrics:
        blocks += _safe("confusion matrix", lambda: _confusion(run, metrics, config, work, sub))
    if samples > 0 and ((run / "weights" / "best.pt").is_file() or (run / "weights" / "last.pt").is_file()):
        blocks += _safe("sample predictions", lambda: _samples(run, work, sub, samples))
    return blocks


def run_task(config: dict[str, Any]) -> str:
    """The task of a run folder's config: its ``task`` field; detection runs written before they had one
    are known by their detection-only options."""
    task = config.get("task")
    if isinstance(task, str) and task:
        return task
    return "detect" if {"box_loss", "imgsz", "data"} <= set(config) else "classify"


TASK_KEYS = {"detect": ("data", "model", "epochs_done", "best_epoch", "mAP50", "mAP50_95", "precision", "recall",
                        "train_seconds"),
             "localize": ("data", "model", "epochs", "params_trainable", "best_epoch", "val_accuracy", "val_iou",
                          "val_correct", "val_loss", "accuracy", "iou", "correct", "loss", "train_time_s"),
             "segment": ("data", "model", "epochs", "params_trainable", "best_epoch", "val_pixel_accuracy",
                         "val_miou", "val_loss", "pixel_accuracy", "loss", "train_time_s")}
TASK_FIGURES = {
    "detect": (("results.png", "Training curves", "losses (training dashed, validation solid), precision, recall "
                "and mAP per epoch"),
               ("val_samples.jpg", "Validation predictions", "the best weights' detections on validation images"),
               ("train_batch0.jpg", "A training batch", "the first batch as the network saw it (mosaic and "
                "augmentations applied)")),
    "localize": (("curves.png", "Training curves", "loss; top-1, mean IoU and correct rate per epoch, training "
                  "(dashed) and validation"),
                 ("val_predictions.png", "Validation predictions", "true box green, predicted red; title: "
                  "predicted class, probability, IoU")),
    "segment": (("curves.png", "Training curves", "loss; pixel accuracy and mIoU per epoch, training (dashed) "
                 "and validation"),
                ("val_masks.png", "Validation masks", "image, true mask, predicted mask"),
                ("confusion.png", "Confusion matrix", "pixels: rows true class, columns predicted")),
}


TASK_CONFIGS = {"detect": ("cnnlab.config.detect", "DetectTrainConfig"),
                "localize": ("cnnlab.config.localize", "LocalizeConfig"),
                "segment": ("cnnlab.config.segment", "SegmentConfig")}
TASK_WORDS = {"detect": "detection", "localize": "localisation", "segment": "segmentation"}
DETECT_CLASS_COLUMNS = ["class", "images", "instances", "precision", "recall", "AP50", "AP50_95"]


def task_section(run: Path, config: dict[str, Any], metrics: dict[str, Any], level: int = 2,
                 title: str | None = None) -> list[Block]:
    """A detection, localisation or segmentation run: metrics, configuration, curves and the pictures the
    run drew of its validation images (boxes / masks)."""
    import importlib

    task = run_task(config)
    module, name = TASK_CONFIGS[task]
    cls = getattr(importlib.import_module(module), name)
    sub = level + 1
    what = f"{TASK_WORDS[task]}: {config.get('model', '?')} on {config.get('data', '?')}"
    epochs = metrics.get("epochs", metrics.get("epochs_done", "?"))
    blocks: list[Block] = [Heading(title or f"Run {run.name}", level), Text(
        f"Folder {run}: {what}, {epochs} of {config.get('epochs', '?')} epochs trained."
        if metrics else f"Folder {run}: {what}; unfinished (no metrics.json).")]
    if metrics:
        blocks += [Heading("Metrics", sub), key_values({k: metrics[k] for k in TASK_KEYS[task] if k in metrics})]
        per_class = metrics.get("val_iou")
        if task == "segment" and isinstance(per_class, dict):
            blocks.append(Table([{"class": c, "IoU": v} for c, v in per_class.items()], ["class", "IoU"],
                                "per-class IoU (validation)"))
        per_class = metrics.get("per_class")
        if task == "detect" and isinstance(per_class, dict):
            blocks.append(Table([{"class": c, **{k: v.get(k) for k in DETECT_CLASS_COLUMNS[1:]}}
                                 for c, v in per_class.items() if isinstance(v, dict)], DETECT_CLASS_COLUMNS,
                                "per-class AP of the best epoch (validation)"))
    changes = config_changes({k: v for k, v in config.items() if k not in ("task", "names", "init")}, cls)
    blocks.append(Heading("Configuration", sub))
    if changes:
        blocks.append(Table(changes, ["option", "value", "default"], "options that differ from the defaults"))
    blocks.append(Code(yaml.safe_dump(config, sort_keys=False), "yaml", "full configuration (config.yaml)"))
    for name, heading, caption in TASK_FIGURES[task]:
        if (run / name).is_file():
            blocks += [Heading(heading, sub), Image(run / name, caption)]
    return blocks


def _curves(run: Path, work: Path, level: int) -> list[Block]:
    path = run / "curves.png"
    if not path.is_file():
        hist = read_history(run)
        if not hist:
            return []
        from cnnlab.tasks.classify.metrics import plot_curves

        best = read_json(run / "metrics.json").get("best_epoch") if (run / "metrics.json").is_file() else None
        path = plot_curves(hist, _work_file(work, run, "curves.png"),
                           best_epoch=best if isinstance(best, int) else None)
    return [Heading("Training curves", level),
            Image(path, "accuracy, loss (training and validation) and learning rate per epoch")]


def _confusion(run: Path, metrics: dict[str, Any], config: dict[str, Any], work: Path, level: int) -> list[Block]:
    split = "test" if isinstance(metrics.get("test"), dict) else "val"
    ev = metrics.get(split)
    if not isinstance(ev, dict) or "confusion_matrix" not in ev:
        return []
    classes = list(ev.get("per_class_accuracy") or {})
    path = run / "confusion.png"
    if not path.is_file():
        import torch

        from cnnlab.tasks.classify.metrics import plot_confusion

        matrix = torch.tensor(ev["confusion_matrix"])
        names = classes or [str(i) for i in range(matrix.shape[0])]
        path = plot_confusion(matrix, names, _work_file(work, run, "confusion.png"),
                              title=f"{config.get('model')} on {config.get('dataset')} ({split})")
    blocks: list[Block] = [Heading("Confusion matrix", level),
                           Image(path, f"rows: true class, columns: predicted ({split} split)")]
    support = ev.get("support") or {}
    if classes and len(classes) <= 100:
        rows = [{"class": c, "accuracy": a, "support": support.get(c)}
                for c, a in (ev.get("per_class_accuracy") or {}).items()]
        blocks.append(Table(rows, ["class", "accuracy", "support"], f"per-class accuracy ({split})"))
    return blocks


def _samples(run: Path, work: Path, level: int, n: int) -> list[Block]:
    path, rows, split = sample_predictions(run, _work_file(work, run, "samples.png"), n=n)
    right = sum(r["correct"] == "yes" for r in rows)
    return [Heading("Sample predictions", level),
            Image(path, f"{len(rows)} {split} images: predicted (probability) and true class; {right} right"),
            Table(rows, ["image", "true", "predicted", "probability", "correct"])]


def _work_file(work: Path, run: Path, name: str) -> Path:
    d = work / f"{run.parent.name}-{run.name}"
    d.mkdir(parents=True, exist_ok=True)
    return d / name


# -- sample predictions: a grid of held-out images with predicted vs true labels -----------------------


def sample_predictions(run: str | Path, path: str | Path, n: int = 16, seed: int = 0
                       ) -> tuple[Path, list[dict[str, Any]], str]:
    """Predict ``n`` held-out images of ``run``; save the grid to ``path``; return it, the rows, the split.

    The model comes from the run folder through ``cnnlab.api.load`` and the images from the run's own
    dataset: its test split when it has one, else the validation images the run held out.
    """
    from cnnlab.api import load
    from cnnlab.runs import read_run_config

    loaded = load(run)
    config = dict(loaded.config or read_run_config(run))
    images, labels, classes, split = held_out_images(config, n, seed)
    preds = loaded.predict(images, topk=1)
    rows = []
    for k, (label, pred) in enumerate(zip(labels, preds, strict=True)):
        name, prob = pred[0]
        true = classes[label] if label < len(classes) else str(label)
        rows.append({"image": k + 1, "true": true, "predicted": name, "probability": round(prob, 4),
                     "correct": "yes" if name == true else "no"})
    return plot_grid(images, rows, path), rows, split


def plot_grid(images: list[np.ndarray], rows: list[dict[str, Any]], path: str | Path) -> Path:
    """A grid of images titled ``predicted (probability) / true``, green when right, red when wrong."""
    n = len(images)
    cols = max(1, math.ceil(math.sqrt(n)))
    nrows = max(1, math.ceil(n / cols))
    fig, axes = pyplot().subplots(nrows, cols, figsize=(1.9 * cols, 2.1 * nrows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, img, row in zip(axes.ravel(), images, rows, strict=False):
        gray = img.shape[2] == 1
        ax.imshow(img[:, :, 0] if gray else img, cmap="gray" if gray else None, interpolation="nearest",
                  vmin=0, vmax=255)
        ok = row["correct"] == "yes"
        ax.set_title(f"{_short(row['predicted'])} {row['probability']:.0%}\ntrue: {_short(row['true'])}",
                     fontsize=8, color="#2a9d55" if ok else "#c0392b")
    right = sum(r["correct"] == "yes" for r in rows)
    fig.suptitle(f"sample predictions: {right} of {n} right", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path, dpi=100)


def _short(text: str, limit: int = 14) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# -- comparison -----------------------------------------------------------------------------------------


def compare_section(folder: Path, work: Path, level: int = 2, samples: int = 16,
                    details: bool = True) -> list[Block]:
    """The comparison table and curves, then (``details``) each finished entry's own section."""
    from cnnlab.experiments import compare
    from cnnlab.experiments.compare_spec import load_spec

    spec = load_spec(folder / compare.SPEC_FILE) if (folder / compare.SPEC_FILE).is_file() else None
    summary_path = folder / "summary.json"
    if not summary_path.is_file():  # interrupted before its outputs were written: write them now
        if spec is None:
            raise UserError(f"{folder}: comparison without compare.yaml")
        compare.write_outputs(folder, spec, read_json(folder / "results.json"))
    summary = read_json(summary_path)
    rows = list(summary.get("entries") or [])
    blocks: list[Block] = [Heading(f"Comparison {folder.name}", level)]
    settings = compare.settings_text(spec).strip() if spec is not None else ""
    blocks.append(Text(f"Folder {folder}: {len(rows)} entries" + (f"; shared settings: {settings}." if settings else ".")))
    columns = list(summary.get("columns") or compare.COLUMNS)
    blocks.append(Table(rows, columns, "one row per entry; * marks the best test accuracy"))
    blocks.append(Text("Columns: " + "; ".join(f"{k}: {v}" for k, v in compare.COLUMN_HELP.items()) + "."))
    curves = folder / compare.CURVES
    if curves.is_file():
        blocks.append(Image(curves, "validation accuracy of every entry, by epoch and by training time"))
    diagnostics = folder / compare.DIAGNOSTICS
    if diagnostics.is_file():
        blocks.append(Image(diagnostics, "training diagnostics side by side: gradient norm and saturated "
                                         "activations per layer over time"))
    if spec is not None:
        entries = [{"entry": e.name, **{k: inline(v) for k, v in e.overrides.items()},
                    "time_budget": spec.budget(e)} for e in spec.entries]
        keys = ["entry"] + sorted({k for r in entries for k in r if k != "entry"})
        blocks += [Heading("Entries", level + 1), Table(entries, keys, "each entry's settings on top of the shared ones")]
    if details:
        for r in rows:
            run = folder / str(r.get("run_dir") or "")
            if r.get("status") == "done" and r.get("run_dir") and (run / "config.yaml").is_file():
                blocks += train_section(run, work, level + 1, samples, title=f"Entry {r.get('entry')}")
    return blocks


# -- tuning search and ablation -----------------------------------------------------------------------------


def tune_section(folder: Path, level: int = 2) -> list[Block]:
    """Search settings, best trial, the trials table, best.yaml and Optuna's plots."""
    info = read_json(folder / "tune.json")
    best = info.get("best") or {}
    facts = {"sampler": info.get("sampler"), "metric": info.get("metric"), "direction": info.get("direction"),
             "planned trials": info.get("n_trials"),
             **{f"trials {k}": v for k, v in (info.get("trials") or {}).items() if v},
             "best value": best.get("value"), "best trial": best.get("trial"), "best run": best.get("run_dir")}
    blocks: list[Block] = [Heading(f"Tuning {folder.name}", level), Text(f"Folder {folder}."),
                           key_values(facts, "search")]
    if best.get("params"):
        blocks.append(key_values({k: inline(v) for k, v in best["params"].items()}, "best parameters"))
    files = info.get("files") or {}
    table = folder / str(files.get("trials_csv") or "trials.csv")
    if table.is_file():
        rows, columns = read_csv_rows(table)
        blocks += [Heading("Trials", level + 1), Table(rows, columns, "one row per trial; * marks the best")]
    best_cfg = folder / str(files.get("best_config") or "best.yaml")
    if best_cfg.is_file():
        blocks.append(Code(best_cfg.read_text(encoding="utf-8"), "yaml", "best configuration (best.yaml)"))
    plots = [Image(folder / rel, f"Optuna {key} plot") for key, rel in (files.get("plots") or {}).items()
             if (folder / rel).is_file()]
    if plots:
        blocks += [Heading("Plots", level + 1), *plots]
    return blocks


def ablate_section(folder: Path, level: int = 2) -> list[Block]:
    """Ablation settings, the cell table (mean ± std over folds) and the box plot."""
    info = read_json(folder / "summary.json")
    facts = {"metric": info.get("metric"), "direction": info.get("direction"), "folds": info.get("folds"),
             "cells": len(info.get("cells") or []), "best cell": info.get("best")}
    blocks: list[Block] = [Heading(f"Ablation {folder.name}", level), Text(f"Folder {folder}."),
                           key_values(facts, "study")]
    files = info.get("files") or {}
    table = folder / str(files.get("table_csv") or "ablation.csv")
    if table.is_file():
        rows, columns = read_csv_rows(table)
        blocks.append(Table(rows, columns, "mean ± sample std over folds; * marks the best cell"))
    else:
        rows = [{"cell": c.get("cell"), "mean": c.get("mean"), "std": c.get("std"), "best": "*" if c.get("best") else ""}
                for c in info.get("cells") or []]
        blocks.append(Table(rows, ["cell", "mean", "std", "best"]))
    box = folder / str(files.get("box_plot") or "box.png")
    if box.is_file():
        blocks.append(Image(box, f"{info.get('metric')} over the folds of each cell"))
    return blocks


def speedrun_section(folder: Path, level: int = 2) -> list[Block]:
    """Time-to-accuracy (``cnnlab speedrun``): settings, the mean ± 95 % CI table, per-seed rows, the plot."""
    info = read_json(folder / "speedrun.json")
    facts = {"recipe": info.get("recipe"), "dataset": info.get("dataset"), "model": info.get("model"),
             "seeds": ", ".join(str(s) for s in info.get("seeds") or []), "curve split": info.get("split"),
             "time": info.get("time"), "FLOPs": info.get("flops")}
    blocks: list[Block] = [Heading(f"Speedrun {folder.name}", level), Text(f"Folder {folder}."),
                           key_values(facts, "speedrun"),
                           Table(list(info.get("table") or []), ["measure", "value", "seeds"],
                                 "mean ± 95 % confidence interval (t-distribution) over the seeds")]
    rows = [{"seed": s.get("seed"), "final accuracy": s.get("final_accuracy"), "epochs": s.get("epochs"),
             "train s": s.get("train_time_s"), "images/s": s.get("images_per_s"),
             "GFLOP/s": s.get("gflops_per_s"),
             **{f"s to {t}": (hit or {}).get("time_s") for t, hit in (s.get("targets") or {}).items()}}
            for s in info.get("per_seed") or []]
    if rows:
        blocks.append(Table(rows, list(rows[0]), "per seed (time to a target: training seconds; blank: not reached)"))
    if (folder / "speedrun.png").is_file():
        blocks.append(Image(folder / "speedrun.png", "accuracy against training wall time, one line per seed"))
    return blocks


def section(kind: str, folder: Path, work: Path, samples: int = 16, details: bool = True) -> list[Block]:
    """The report blocks of one run folder of ``kind`` (train, compare, tune, ablate or speedrun)."""
    builders = {"train": lambda: train_section(folder, work, samples=samples),
                "compare": lambda: compare_section(folder, work, samples=samples, details=details),
                "tune": lambda: tune_section(folder), "ablate": lambda: ablate_section(folder),
                "speedrun": lambda: speedrun_section(folder)}
    if kind not in builders:
        raise UserError(f"unknown run kind {kind!r} (known: {', '.join(builders)})")
    return builders[kind]()
