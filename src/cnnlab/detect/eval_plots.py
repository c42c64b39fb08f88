"""Plots of a detection evaluation (matplotlib, Agg, PNG): PR curve, P/R/F1-vs-confidence curves and
the confusion matrix, in the layout Ultralytics users know."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from cnnlab.plots import pyplot, save_figure

MAX_LEGEND = 20  # more classes than this: thin grey lines, no per-class legend


def _figure(size=(9, 6)):
    fig, ax = pyplot().subplots(1, 1, figsize=size, tight_layout=True)
    return fig, ax


def _plot_curves(x: Any, curves: dict[str, Any], labels: dict[str, str], mean: Any, mean_label: str,
                 xlabel: str, ylabel: str, title: str, path: str | Path) -> Path:
    """One thin line per class (grey, no legend, when there are many) and the thick blue mean."""
    fig, ax = _figure()
    many = len(curves) > MAX_LEGEND
    for name, y in curves.items():
        ax.plot(x, y, linewidth=1, **({"color": "grey"} if many else {"label": labels.get(name, name)}))
    if mean is not None:
        ax.plot(x, mean, linewidth=3, color="blue", label=mean_label)
    ax.set(xlabel=xlabel, ylabel=ylabel, xlim=(0, 1), ylim=(0, 1.01), title=title)
    ax.legend(bbox_to_anchor=(1.04, 1), loc="upper left", fontsize=8)
    return save_figure(fig, path, dpi=150)


def plot_pr_curve(result: dict[str, Any], path: str | Path) -> Path:
    """Precision against recall at IoU 0.5 (COCO's 101 recall points), per class and mean."""
    pr = result["pr_curve"]
    labels = {n: f"{n} {result['per_class'][n]['AP50']:.3f}" for n in pr["precision"]}
    return _plot_curves(np.asarray(pr["recall"]), pr["precision"], labels, pr["mean"],
                        f"all classes {result['mAP50']:.3f} mAP@0.5", "Recall", "Precision",
                        "Precision-Recall Curve", path)


def plot_conf_curve(result: dict[str, Any], metric: str, path: str | Path) -> Path:
    """``metric`` (precision | recall | f1) against confidence at IoU 0.5, per class and mean."""
    curves = result["conf_curves"][metric]
    label = {"f1": "F1", "precision": "Precision", "recall": "Recall"}[metric]
    # the F1 peak as reported in the metrics (Ultralytics: argmax of the smoothed mean F1)
    tag = f" {result['f1']:.2f} at {result['conf_best_f1']:.3f}" if metric == "f1" else ""
    return _plot_curves(np.asarray(result["conf_curves"]["conf"]), curves, {},
                        np.mean(list(curves.values()), axis=0) if curves else None, f"all classes{tag}",
                        "Confidence", label, f"{label}-Confidence Curve", path)


def plot_confusion_matrix(result: dict[str, Any], path: str | Path, normalize: bool = True) -> Path:
    """Confusion matrix image (rows predicted, columns true; last row/column = background)."""
    cm = result["confusion_matrix"]
    m = np.asarray(cm["matrix"], dtype=np.float64)
    names = cm["names"]
    if normalize:
        m = m / (m.sum(0, keepdims=True) + 1e-9)
    n = len(names)
    size = min(max(6.0, 0.12 * n + 4), 14.0)
    fig, ax = _figure((size * 1.15, size))
    shown = np.where(m == 0, np.nan, m)
    im = ax.imshow(shown, cmap="Blues", vmin=0.0, vmax=1.0 if normalize else None)
    bar = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    bar.set_label("share of the true class (column-normalised)" if normalize else "detections (count)")
    font = max(3, min(10, int(240 / n)))
    ax.set_xticks(range(n), names, rotation=90, fontsize=font)
    ax.set_yticks(range(n), names, fontsize=font)
    if n <= 30:
        for (r, c), v in np.ndenumerate(m):
            if v:
                ax.text(c, r, f"{v:.2f}" if normalize else f"{int(v)}", ha="center", va="center",
                        fontsize=font, color="white" if v > 0.5 * np.nanmax(shown) else "black")
    ax.set(xlabel="True", ylabel="Predicted",
           title=f"Confusion Matrix{' Normalized' if normalize else ''} "
                 f"(conf {cm['conf']}, IoU {cm['iou']})")
    return save_figure(fig, path, dpi=150)
