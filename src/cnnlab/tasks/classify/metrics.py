"""Classification metrics (loss, top-1/top-5 accuracy, per-class accuracy, confusion matrix) and plots.

Accuracies are called accuracies (the course reports wrote "error" for them).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch


def topk_correct(logits: torch.Tensor, target: torch.Tensor, ks: Sequence[int] = (1, 5)) -> list[int]:
    """Number of samples whose class is among the top-k logits, for each k (k capped at #classes)."""
    if target.ndim == 2:  # soft targets (mixup/cutmix): the dominant class counts
        target = target.argmax(1)
    maxk = min(max(ks), logits.shape[1])
    pred = logits.topk(maxk, dim=1).indices
    hits = pred.eq(target.view(-1, 1))
    return [int(hits[:, : min(k, maxk)].any(1).sum()) for k in ks]


class ClassificationMeter:
    """Accumulates loss, top-1/top-5 hits and (optionally) a confusion matrix over batches."""

    def __init__(self, num_classes: int, confusion: bool = False):
        self.num_classes = num_classes
        self.loss_sum = 0.0
        self.n = 0
        self.top1 = 0
        self.top5 = 0
        self.matrix = torch.zeros(num_classes, num_classes, dtype=torch.int64) if confusion else None

    def update(self, logits: torch.Tensor, target: torch.Tensor, loss: float | torch.Tensor) -> None:
        n = logits.shape[0]
        self.loss_sum += float(loss) * n
        self.n += n
        c1, c5 = topk_correct(logits, target)
        self.top1 += c1
        self.top5 += c5
        if self.matrix is not None:
            hard = target.argmax(1) if target.ndim == 2 else target
            idx = hard.cpu() * self.num_classes + logits.argmax(1).cpu()
            self.matrix += torch.bincount(idx, minlength=self.num_classes ** 2).view_as(self.matrix)

    def result(self, prefix: str = "") -> dict[str, float]:
        n = max(self.n, 1)
        return {f"{prefix}loss": self.loss_sum / n, f"{prefix}accuracy": self.top1 / n,
                f"{prefix}top5_accuracy": self.top5 / n}

    def per_class_accuracy(self) -> list[float]:
        assert self.matrix is not None
        support = self.matrix.sum(1).clamp(min=1)
        return (self.matrix.diag().double() / support).tolist()


def confusion_report(matrix: torch.Tensor, classes: Sequence[str]) -> dict[str, Any]:
    """Per-class accuracy and the confusion matrix (rows: true class, columns: predicted) as plain data."""
    support = matrix.sum(1)
    acc = (matrix.diag().double() / support.clamp(min=1)).tolist()
    return {
        "per_class_accuracy": {c: round(a, 6) for c, a in zip(classes, acc, strict=True)},
        "support": {c: int(s) for c, s in zip(classes, support.tolist(), strict=True)},
        "confusion_matrix": matrix.tolist(),
    }


def curves_figure(history: list[dict[str, Any]], best_epoch: int | None = None, monitor: str = "") -> Any:
    """Accuracy, loss (train and validation) and learning rate per epoch: whole-number epoch ticks, the
    best epoch marked by a dashed line in every panel."""
    from matplotlib.ticker import MaxNLocator

    from cnnlab.plots import pyplot

    plt = pyplot()
    epochs = [h["epoch"] for h in history]
    has_lr = any(isinstance(h.get("lr"), (int, float)) for h in history)
    panels = [("accuracy", "Accuracy"), ("loss", "Loss")] + ([("lr", "Learning rate")] if has_lr else [])
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4), squeeze=False)
    for ax, (key, title) in zip(axes[0], panels, strict=True):
        series = (("", "train"), ("val_", "validation")) if key != "lr" else (("", "lr at the epoch's start"),)
        for prefix, label in series:
            vals = [h.get(prefix + key) for h in history]
            pts = [(e, v) for e, v in zip(epochs, vals, strict=True) if isinstance(v, (int, float)) and v == v]
            if pts:
                ax.plot(*zip(*pts, strict=True), marker="o", ms=3, label=label)
        if best_epoch is not None:
            ax.axvline(best_epoch, color="tab:red", ls="--", lw=1, alpha=0.8,
                       label=f"best epoch {best_epoch}" + (f" ({monitor})" if monitor else ""))
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.set_ylabel(key if key != "lr" else "learning rate")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if key == "lr":
            ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_curves(history: list[dict[str, Any]], path: str | os.PathLike, best_epoch: int | None = None,
                monitor: str = "") -> Path:
    """``curves.png``: accuracy, loss and learning rate per epoch (see `curves_figure`)."""
    from cnnlab.plots import save_figure

    return save_figure(curves_figure(history, best_epoch, monitor), path)


def confusion_figure(matrix: torch.Tensor, classes: Sequence[str], title: str = "Confusion matrix") -> Any:
    """Row-normalised confusion matrix: colour = share of the true class's images (its row sums to 1,
    the colour bar says so); the numbers written in the cells (<= 20 classes) are image counts."""
    from cnnlab.plots import pyplot

    plt = pyplot()
    m = matrix.double()
    norm = (m / m.sum(1, keepdim=True).clamp(min=1)).numpy()
    k = len(classes)
    size = min(14, 3 + 0.45 * k)
    fig, ax = plt.subplots(figsize=(size + 1.3, size))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    bar = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    bar.set_label("share of the true class (row-normalised)", fontsize=8)
    if k <= 30:
        ax.set_xticks(range(k), labels=list(classes), rotation=90 if k > 10 else 45, ha="right")
        ax.set_yticks(range(k), labels=list(classes))
    if k <= 20:
        counts = matrix.tolist()
        for i in range(k):
            for j in range(k):
                ax.text(j, i, str(counts[i][j]), ha="center", va="center", fontsize=7,
                        color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted" + ("   (numbers: image counts)" if k <= 20 else ""))
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def plot_confusion(matrix: torch.Tensor, classes: Sequence[str], path: str | os.PathLike,
                   title: str = "Confusion matrix") -> Path:
    """``confusion.png``: see `confusion_figure`."""
    from cnnlab.plots import save_figure

    return save_figure(confusion_figure(matrix, classes, title), path)
