"""Loss, top-1/top-5 accuracy and confusion matrix of a classifier over a loader."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import nn

from cnnlab.engine.progress import Progress
from cnnlab.tasks.classify.metrics import ClassificationMeter

TTA_FLIPS = {"hflip": -1, "vflip": -2}  # test-time transform -> the tensor dimension it mirrors


def tta_from_augment(augment: Any) -> tuple[str, ...]:
    """The test-time transforms a run trained with: ``hflip`` / ``vflip`` when its augmentation (a dict
    of fields or a preset name) flipped images; none otherwise (mirrored digits are other digits)."""
    from cnnlab.data.augment import resolve_augment

    aug = resolve_augment(augment or None)
    if aug is None:
        return ()
    return tuple(op for op, on in (("hflip", aug.horizontal_flip), ("vflip", aug.vertical_flip))
                 if on and aug.flip_prob > 0)


def _tta_ops(tta: bool | Sequence[str]) -> tuple[str, ...]:
    if isinstance(tta, bool):
        return ("hflip",) if tta else ()
    unknown = [t for t in tta if t not in TTA_FLIPS]
    if unknown:
        from cnnlab.errors import UserError

        raise UserError(f"unknown TTA transform(s) {', '.join(unknown)} (known: {', '.join(TTA_FLIPS)})")
    return tuple(tta)


@torch.no_grad()
def evaluate_model(model: nn.Module, loader: Iterable, num_classes: int, device: torch.device | str = "cpu",
                   tta: bool | Sequence[str] = False, confusion: bool = False, amp: bool = False,
                   channels_last: bool = False, progress: bool = False,
                   label: str = "evaluate") -> tuple[dict[str, float], Any]:
    """Loss (plain cross-entropy), top-1/top-5 accuracy, images/s; with ``confusion`` also the meter.

    ``tta`` averages the softmax of each image and its mirrors: True = the horizontal mirror, or a list
    of transforms from :data:`TTA_FLIPS` (``hflip``, ``vflip``).
    """
    ops = _tta_ops(tta)
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
    with Progress(label, total, enabled=progress, every=10.0) as bar:
        for x, y in loader:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, enabled=use_amp):
                logits = model(x)
                if ops:
                    probs = logits.float().softmax(1)
                    for op in ops:
                        probs = probs + model(x.flip(TTA_FLIPS[op])).float().softmax(1)
                    logits = (probs / (len(ops) + 1)).clamp_min(1e-12).log()
            logits = logits.float()
            meter.update(logits, y, ce(logits, y))
            bar.advance()
    elapsed = time.perf_counter() - start
    logs = meter.result()
    logs["images"] = meter.n
    logs["images_per_s"] = meter.n / elapsed if elapsed > 0 else float("nan")
    return logs, meter
