"""``augment_preview``: a PNG grid with original samples and one row per configured augmentation."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cnnlab.data.augment import AugmentConfig, BatchPipeline, per_channel, resolve_augment
from cnnlab.errors import UserError
from cnnlab.plots import pyplot, save_figure

_LABELS = {
    "horizontal_flip": lambda c: f"horizontal_flip p={c.flip_prob:g}",
    "vertical_flip": lambda c: f"vertical_flip p={c.flip_prob:g}",
    "rotation": lambda c: f"rotation ±{c.rotation_range:g}°",
    "shift": lambda c: f"shift w{c.width_shift_range:g} h{c.height_shift_range:g}",
    "zoom": lambda c: "zoom [{:g}, {:g}]".format(*c.zoom_bounds()),
    "crop": lambda c: f"crop pad {c.crop_padding} {c.crop_padding_mode}",
    "brightness": lambda c: "brightness [{:g}, {:g}]".format(*c.brightness_range),
    "cutout": lambda c: f"cutout {c.cutout}px p={c.cutout_prob:g}",
    "mixup": lambda c: f"mixup α={c.mixup_alpha:g}",
    "cutmix": lambda c: f"cutmix α={c.cutmix_alpha:g}",
}


def augment_preview(dataset: str = "digits", augment: AugmentConfig | dict | str | None = "standard",
                    out: str | os.PathLike = "augment_preview.png", n: int = 8, split: str = "train",
                    data_dir: str | os.PathLike | None = None, seed: int = 0, download: bool = True,
                    **options: Any) -> Path:
    """Save a grid: row 1 the original samples, then one row per enabled augmentation (alone), then all
    of them combined. Mixed rows are captioned with their soft targets. Returns the PNG path."""
    from cnnlab.data.registry import load_dataset

    cfg = resolve_augment(augment)
    if cfg is None:
        raise UserError("no augmentation enabled: give a preset, a config file or augmentation options")
    n = int(n)
    if n < 1:
        raise UserError(f"--n must be >= 1, got {n}")
    ds = load_dataset(dataset, split, data_dir=data_dir, download=download, **options)
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(len(ds), size=min(n, len(ds)), replace=False))
    items = [ds[int(i)] for i in pick]
    images = torch.stack([im for im, _ in items])
    labels = torch.tensor([lab for _, lab in items], dtype=torch.int64)
    classes = list(ds.classes)

    rows: list[tuple[str, torch.Tensor, torch.Tensor]] = []
    plain = BatchPipeline(ds.mean, ds.std)
    rows.append(("original", *plain(images, labels)))
    ops = cfg.enabled_ops()
    variants = [(_LABELS[op](cfg), cfg.only(op)) for op in ops] + ([("all combined", cfg)] if len(ops) > 1 else [])
    for r, (title, sub) in enumerate(variants):
        pipe = BatchPipeline(ds.mean, ds.std, sub, len(classes))
        x, y = pipe(images, labels, np.random.default_rng([seed, r]))
        rows.append((title, x, y))

    c = images.shape[1]
    mean, std = (torch.tensor(per_channel(v, c)).view(1, c, 1, 1) for v in (ds.mean, ds.std))
    ncol = len(items)
    fig, axes = pyplot().subplots(len(rows), ncol, figsize=(1.3 * ncol + 1.6, 1.45 * len(rows)), squeeze=False)
    for r, (title, x, y) in enumerate(rows):
        pix = (x.cpu() * std + mean).clamp(0, 1)
        for j in range(ncol):
            ax = axes[r][j]
            img = pix[j].permute(1, 2, 0).numpy()
            ax.imshow(img[..., 0] if c == 1 else img, cmap="gray" if c == 1 else None, vmin=0, vmax=1,
                      interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_xlabel(_caption(y[j], classes), fontsize=7)
        axes[r][0].set_ylabel(title, fontsize=8, rotation=0, ha="right", va="center")
    fig.suptitle(f"{ds.name} ({split}): augmentation preview", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, out)


def _caption(y: torch.Tensor, classes: list[str]) -> str:
    if y.ndim == 0:
        return classes[int(y)]
    top = torch.topk(y, 2)
    parts = [f"{classes[int(i)]}:{float(v):.2f}" for v, i in zip(top.values, top.indices, strict=True) if v > 1e-3]
    return " ".join(parts)
