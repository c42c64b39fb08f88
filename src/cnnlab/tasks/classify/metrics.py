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


def plot_curves(history: list[dict[str, Any]], path: str | os.PathLike) -> Path:
    """``curves.png``: accuracy (left) and loss (right) per epoch, train and validation."""
    from cnnlab.plots import pyplot, save_figure

    plt = pyplot()
    epochs = [h["epoch"] for h in history]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, key, title in ((axes[0], "accuracy", "Accuracy"), (axes[1], "loss", "Loss")):
        for prefix, label in (("", "train"), ("val_", "validation")):
            vals = [h.get(prefix + key) for h in history]
            pts = [(e, v) for e, v in zip(epochs, vals, strict=True) if v is not None and v == v]
            if pts:
                ax.plot(*zip(*pts, strict=True), marker="o", ms=3, label=label)
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    return save_figure(fig, path)


def plot_confusion(matrix: torch.Tensor, classes: Sequence[str], path: str | os.PathLike,
                   title: str = "Confusion matrix") -> Path:
    """``confusion.png``: row-normalised confusion matrix (counts written in cells for <= 20 classes)."""
    from cnnlab.plots import pyplot, save_figure

    plt = pyplot()
    m = matrix.double()
    norm = (m / m.sum(1, keepdim=True).clamp(min=1)).numpy()
    k = len(classes)
    size = min(14, 3 + 0.45 * k)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    if k <= 30:
        ax.set_xticks(range(k), labels=list(classes), rotation=90 if k > 10 else 45, ha="right")
        ax.set_yticks(range(k), labels=list(classes))
    if k <= 20:
        counts = matrix.tolist()
        for i in range(k):
            for j in range(k):
                ax.text(j, i, str(counts[i][j]), ha="center", va="center", fontsize=7,
                        color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.tight_layout()
    return save_figure(fig, path)
