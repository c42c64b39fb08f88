"""Segmentation metrics from a confusion matrix: pixel accuracy, per-class IoU, mean IoU."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from cnnlab.tasks.segment.data import IGNORE


def confusion(pred: torch.Tensor, target: torch.Tensor, k: int) -> torch.Tensor:
    """(k, k) counts: rows true class, columns predicted; pixels labelled 255 are left out."""
    keep = target != IGNORE
    idx = target[keep] * k + pred[keep]
    return torch.bincount(idx.flatten(), minlength=k * k).view(k, k)


def scores(matrix: torch.Tensor, classes: Sequence[str]) -> dict[str, Any]:
    """``pixel_accuracy``, ``miou`` (over the classes present in the truth or the predictions) and
    ``iou`` per class (None for a class absent from both)."""
    m = matrix.double()
    tp = m.diagonal()
    union = m.sum(0) + m.sum(1) - tp
    present = union > 0
    iou = torch.where(present, tp / union.clamp_min(1), torch.zeros_like(tp))
    return {"pixel_accuracy": float(tp.sum() / m.sum().clamp_min(1)),
            "miou": float(iou[present].mean()) if present.any() else 0.0,
            "iou": {c: (float(v) if p else None) for c, v, p in zip(classes, iou, present, strict=True)}}


@torch.no_grad()
def evaluate(model: torch.nn.Module, loader: Any, k: int, device: torch.device
             ) -> tuple[float, torch.Tensor]:
    """Mean cross-entropy per pixel and the confusion matrix over ``loader``."""
    model.eval()
    total, pixels = 0.0, 0
    matrix = torch.zeros(k, k, dtype=torch.long)
    for x, m in loader:
        x, m = x.to(device), m.to(device)
        logits = model(x).float()
        valid = int((m != IGNORE).sum())
        total += float(F.cross_entropy(logits, m, ignore_index=IGNORE, reduction="sum"))
        pixels += valid
        matrix += confusion(logits.argmax(1), m, k).cpu()
    return total / max(pixels, 1), matrix
