"""Pictures of a localisation run: curves (losses, top-1 / IoU / correct) and predicted boxes on images."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


def plot_curves(history: list[dict[str, Any]], path: str | os.PathLike) -> Path:
    """``curves.png``: loss (left), top-1 accuracy, mean IoU and correct rate (right), train and val."""
    from cnnlab.tasks.dense import plot_curves as curves

    return curves(history, path, ((("loss",), "Loss"),
                                  (("accuracy", "iou", "correct"), "Top-1, mean IoU, correct (IoU >= 0.5)")))


def draw_box(image_bgr: np.ndarray, box: Sequence[float], label: str, color: tuple[int, int, int],
             thickness: int = 2) -> np.ndarray:
    """``image_bgr`` with a pixel box (xyxy) and its label drawn (in place; returned)."""
    import cv2

    x0, y0, x1, y1 = (int(round(v)) for v in box)
    cv2.rectangle(image_bgr, (x0, y0), (x1, y1), color, thickness, cv2.LINE_AA)
    scale = max(0.35, min(image_bgr.shape[:2]) / 500)
    (tw, th), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    ty = y0 - 3 if y0 - th - 4 >= 0 else min(y1 + th + 3, image_bgr.shape[0] - 2)
    cv2.rectangle(image_bgr, (x0, ty - th - 2), (x0 + tw + 2, ty + 2), color, -1)
    cv2.putText(image_bgr, label, (x0 + 1, ty), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return image_bgr


def plot_predictions(images: np.ndarray, truth: tuple[np.ndarray, np.ndarray], pred: tuple[np.ndarray, ...],
                     classes: Sequence[str], path: str | os.PathLike, title: str = "") -> Path:
    """A grid of images (uint8 N,3,H,W RGB): the true box in green, the prediction in red (class, IoU)."""
    from cnnlab.plots import pyplot, save_figure

    plt = pyplot()
    n = len(images)
    cols = min(4, n)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 2.8 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    labels, boxes = truth
    p_labels, p_scores, p_boxes, p_iou = pred
    for i in range(n):
        img = images[i].transpose(1, 2, 0)
        h, w = img.shape[:2]
        ax = axes.ravel()[i]
        ax.imshow(img)
        for b, colour in ((boxes[i], "lime"), (p_boxes[i], "red")):
            # pixel i covers [i - 0.5, i + 0.5] in imshow's coordinates
            ax.add_patch(plt.Rectangle((b[0] * w - 0.5, b[1] * h - 0.5), (b[2] - b[0]) * w, (b[3] - b[1]) * h, fill=False,
                                       edgecolor=colour, linewidth=2))
        ok = p_labels[i] == labels[i] and p_iou[i] >= 0.5
        ax.set_title(f"{classes[p_labels[i]]} {p_scores[i]:.2f}, IoU {p_iou[i]:.2f}", fontsize=8,
                     color="black" if ok else "red")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path)
