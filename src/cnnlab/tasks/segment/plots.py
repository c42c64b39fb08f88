"""Pictures of a segmentation run: curves (loss, pixel accuracy, mIoU) and masks over images."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


def palette(k: int) -> np.ndarray:
    """(k, 3) uint8 RGB colours; class 0 (background) black."""
    rng = np.random.default_rng(3)
    colours = rng.integers(40, 256, (max(k, 1), 3)).astype(np.uint8)
    colours[0] = 0
    fixed = [(230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180)]
    for i, c in enumerate(fixed[: max(0, k - 1)]):
        colours[i + 1] = c
    return colours


def overlay(image_rgb: np.ndarray, mask: np.ndarray, k: int, alpha: float = 0.7) -> np.ndarray:
    """``image_rgb`` (H, W, 3 uint8) with the class colours of ``mask`` blended in (background untouched;
    255 = ignored, left as is)."""
    colours = palette(k)
    out = image_rgb.astype(np.float32)
    fg = (mask > 0) & (mask < k)
    out[fg] = (1 - alpha) * out[fg] + alpha * colours[mask[fg]]
    return out.clip(0, 255).astype(np.uint8)


def plot_curves(history: list[dict[str, Any]], path: str | os.PathLike) -> Path:
    """``curves.png``: loss (left); pixel accuracy and mIoU (right), training and validation."""
    from cnnlab.tasks.dense import plot_curves as curves

    return curves(history, path, ((("loss",), "Loss (cross-entropy per pixel)"),
                                  (("pixel_accuracy", "miou"), "Pixel accuracy and mean IoU")))


def plot_masks(images: np.ndarray, truth: np.ndarray, pred: np.ndarray, classes: Sequence[str],
               path: str | os.PathLike, title: str = "") -> Path:
    """Rows of (image, true mask over it, predicted mask over it) for N images (uint8 N,3,H,W RGB)."""
    from matplotlib.patches import Patch

    from cnnlab.plots import pyplot, save_figure

    plt = pyplot()
    n, k = len(images), len(classes)
    fig, axes = plt.subplots(n, 3, figsize=(7.5, 2.5 * n + 0.6), squeeze=False)
    for i in range(n):
        img = images[i].transpose(1, 2, 0)
        for j, (pic, name) in enumerate(((img, "image"), (overlay(img, truth[i], k), "truth"),
                                         (overlay(img, pred[i], k), "prediction"))):
            axes[i, j].imshow(pic)
            axes[i, j].axis("off")
            if i == 0:
                axes[i, j].set_title(name, fontsize=9)
    colours = palette(k)
    fig.legend(handles=[Patch(color=colours[c] / 255, label=classes[c]) for c in range(1, k)],
               loc="lower center", ncol=min(6, max(1, k - 1)), fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    return save_figure(fig, path)
