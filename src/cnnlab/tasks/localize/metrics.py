"""Localisation metrics and losses: top-1, IoU of the predicted box, "correct" (class right and IoU >= 0.5)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torchvision.ops import box_iou, generalized_box_iou_loss

from cnnlab.tasks.localize.model import boxes_xyxy

CORRECT_IOU = 0.5


def xyxy_to_cxcywh(b: torch.Tensor) -> torch.Tensor:
    return torch.cat([(b[:, :2] + b[:, 2:]) / 2, b[:, 2:] - b[:, :2]], dim=1)


def losses(logits: torch.Tensor, box: torch.Tensor, labels: torch.Tensor, target: torch.Tensor,
           gains: tuple[float, float, float]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """``(weighted total, {cls, box, giou})`` (batch means): cross-entropy, smooth-L1 on (cx, cy, w, h)
    and the GIoU loss of the xyxy boxes (``target``: xyxy fractions)."""
    cls = F.cross_entropy(logits.float(), labels)
    l1 = F.smooth_l1_loss(box.float(), xyxy_to_cxcywh(target), beta=0.05)
    giou = generalized_box_iou_loss(boxes_xyxy(box.float()), target, reduction="mean")
    total = gains[0] * cls + gains[1] * l1 + gains[2] * giou
    return total, {"cls": cls, "box": l1, "giou": giou}


def hits(logits: torch.Tensor, box: torch.Tensor, labels: torch.Tensor, target: torch.Tensor
         ) -> dict[str, torch.Tensor]:
    """Sums over the batch: ``accuracy`` (top-1 hits), ``iou`` (IoU of each predicted box with its target),
    ``correct`` (class right and IoU >= 0.5)."""
    iou = box_iou(boxes_xyxy(box.float()), target).diagonal()
    right = logits.argmax(1).eq(labels)
    return {"accuracy": right.sum().float(), "iou": iou.sum(), "correct": (right & (iou >= CORRECT_IOU)).sum().float()}


@torch.no_grad()
def evaluate(model: torch.nn.Module, loader: Any, device: torch.device, gains: tuple[float, float, float]
             ) -> tuple[dict[str, float], dict[str, torch.Tensor]]:
    """Mean loss, top-1 accuracy, mean IoU and "correct" rate over ``loader``; and the predictions
    (``labels``, ``scores``, ``boxes`` xyxy fractions) in loader order."""
    model.eval()
    sums: dict[str, float] = {}
    preds: dict[str, list[torch.Tensor]] = {"labels": [], "scores": [], "boxes": []}
    n = 0
    for x, (y, b) in loader:
        x, y, b = x.to(device), y.to(device), b.to(device)
        logits, box = model(x)
        total, parts = losses(logits, box, y, b, gains)
        for k, v in {"loss": total, **{f"{k}_loss": v for k, v in parts.items()}}.items():
            sums[k] = sums.get(k, 0.0) + float(v) * len(y)
        for k, v in hits(logits, box, y, b).items():
            sums[k] = sums.get(k, 0.0) + float(v)
        prob = logits.float().softmax(1)
        preds["scores"].append(prob.max(1).values.cpu())
        preds["labels"].append(prob.argmax(1).cpu())
        preds["boxes"].append(boxes_xyxy(box.float()).clamp(0, 1).cpu())
        n += len(y)
    n = max(n, 1)
    return {k: v / n for k, v in sums.items()}, {k: torch.cat(v) if v else torch.zeros(0) for k, v in preds.items()}
