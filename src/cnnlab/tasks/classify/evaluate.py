"""Loss, top-1/top-5 accuracy and confusion matrix of a classifier over a loader."""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.engine.progress import Progress
from cnnlab.tasks.classify.metrics import ClassificationMeter

TTA_FLIPS = {"hflip": -1, "vflip": -2}  # test-time transform -> the tensor dimension it mirrors
TRANSLATE = re.compile(r"translate([1-8])")  # ``translateN``: also the copies shifted N px (see tta_probs)


def tta_from_augment(augment: Any, translate: int = 0) -> tuple[str, ...]:
    """The test-time transforms a run trained with: ``hflip`` / ``vflip`` when its augmentation (a dict
    of fields or a preset name) flipped images (mirrored digits are other digits), then ``translateN``
    when ``translate`` (the run's ``tta_translate``) is N > 0."""
    from cnnlab.data.augment import resolve_augment

    aug = resolve_augment(augment or None)
    flips = () if aug is None else tuple(op for op, on in (("hflip", aug.horizontal_flip),
                                                           ("vflip", aug.vertical_flip)) if on and aug.flip_prob > 0)
    return flips + ((f"translate{int(translate)}",) if translate else ())


def _tta_ops(tta: bool | Sequence[str]) -> tuple[str, ...]:
    if isinstance(tta, bool):
        return ("hflip",) if tta else ()
    unknown = [t for t in tta if t not in TTA_FLIPS and not TRANSLATE.fullmatch(t)]
    if unknown:
        from cnnlab.errors import UserError

        raise UserError(f"unknown TTA transform(s) {', '.join(unknown)} (known: {', '.join(TTA_FLIPS)}, "
                        "translate1..translate8)")
    return tuple(tta)


def tta_probs(model: nn.Module, x: torch.Tensor, ops: Sequence[str]) -> torch.Tensor:
    """Class probabilities of ``x`` averaged over its test-time views.

    Flips (``hflip``/``vflip``): the mean softmax of the image and its mirrors. ``translateN`` (airbench's
    second TTA level): half that mean, half the mean of the same for the image shifted N pixels up-left
    and N pixels down-right (edges reflected)."""
    flips = [TTA_FLIPS[op] for op in ops if op in TTA_FLIPS]
    shifts = [int(m.group(1)) for op in ops if (m := TRANSLATE.fullmatch(op))]

    def mirrored(z: torch.Tensor) -> torch.Tensor:
        probs = model(z).float().softmax(1)
        for dim in flips:
            probs = probs + model(z.flip(dim)).float().softmax(1)
        return probs / (len(flips) + 1)

    probs = mirrored(x)
    h, w = x.shape[-2:]
    n = min(shifts[0] if shifts else 0, h - 1, w - 1)  # reflect padding needs n < the image size
    if n > 0:
        padded = F.pad(x, (n, n, n, n), mode="reflect")
        moved = mirrored(padded[..., :h, :w]) + mirrored(padded[..., 2 * n:, 2 * n:])
        probs = 0.5 * probs + 0.25 * moved
    return probs


@torch.no_grad()
def evaluate_model(model: nn.Module, loader: Iterable, num_classes: int, device: torch.device | str = "cpu",
                   tta: bool | Sequence[str] = False, confusion: bool = False, amp: bool = False,
                   channels_last: bool = False, progress: bool = False, label: str = "evaluate",
                   bf16: bool = False) -> tuple[dict[str, float], Any]:
    """Loss (plain cross-entropy), top-1/top-5 accuracy, images/s; with ``confusion`` also the meter.

    ``tta`` averages the softmax of each image and its test-time views (:func:`tta_probs`): True = the
    horizontal mirror, or a list of ``hflip``, ``vflip``, ``translateN``. ``amp``: autocast on CUDA;
    ``bf16``: bfloat16 autocast on CPU (the run's ``bf16_cpu``).
    """
    ops = _tta_ops(tta)
    device = torch.device(device)
    model.eval()
    meter = ClassificationMeter(num_classes, confusion=confusion)
    ce = nn.CrossEntropyLoss()
    use_amp = amp and device.type == "cuda"
    use_bf16 = bf16 and device.type == "cpu"
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
            with torch.autocast(device.type, enabled=use_amp or use_bf16,
                                dtype=torch.bfloat16 if use_bf16 else None):
                if ops:
                    logits = tta_probs(model, x, ops).clamp_min(1e-12).log()
                else:
                    logits = model(x)
            logits = logits.float()
            meter.update(logits, y, ce(logits, y))
            bar.advance()
    elapsed = time.perf_counter() - start
    logs = meter.result()
    logs["images"] = meter.n
    logs["images_per_s"] = meter.n / elapsed if elapsed > 0 else float("nan")
    return logs, meter
