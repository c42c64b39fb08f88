"""Loss, top-1/top-5 accuracy and confusion matrix of a classifier over a loader."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from cnnlab.engine.progress import Progress
from cnnlab.tasks.classify.metrics import ClassificationMeter


@torch.no_grad()
def evaluate_model(model: nn.Module, loader: Iterable, num_classes: int, device: torch.device | str = "cpu",
                   tta: bool = False, confusion: bool = False, amp: bool = False,
                   channels_last: bool = False, progress: bool = False) -> tuple[dict[str, float], Any]:
    """Loss (plain cross-entropy), top-1/top-5 accuracy, images/s; with ``confusion`` also the meter.

    ``tta`` averages the softmax of each image and its horizontal mirror.
    """
    device = torch.device(device)
    model.eval()
    meter = ClassificationMeter(num_classes, confusion=confusion)
    ce = nn.CrossEntropyLoss()
    use_amp = amp and device.type == "cuda"
    start = time.perf_counter()
    try:
        total: int | None = len(loader)  # type: ignore[arg-type]
    except TypeError:
        total = None
    with Progress("evaluate", total, enabled=progress) as bar:
        for x, y in loader:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, enabled=use_amp):
                logits = model(x)
                if tta:
                    probs = (logits.float().softmax(1) + model(x.flip(-1)).float().softmax(1)) / 2
                    logits = probs.clamp_min(1e-12).log()
            logits = logits.float()
            meter.update(logits, y, ce(logits, y))
            bar.advance()
    elapsed = time.perf_counter() - start
    logs = meter.result()
    logs["images"] = meter.n
    logs["images_per_s"] = meter.n / elapsed if elapsed > 0 else float("nan")
    return logs, meter
