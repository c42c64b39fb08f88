"""Pictures of a detector training run: loss/mAP curves and images with true vs predicted boxes."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from cnnlab.detect.types import Detections
from cnnlab.plots import pyplot, save_figure

GT_COLOUR = (0, 200, 0)  # BGR green: ground truth


def plot_detect_curves(history: list[dict[str, Any]], path: str | os.PathLike,
                       losses: tuple[str, ...] = ("box_loss", "obj_loss", "cls_loss")) -> Path:
    """``results.png``: train/val box, objectness and class losses, mAP@0.5, mAP@0.5:0.95 and lr, whole-number
    epoch ticks, the best epoch (highest fitness: 0.1 mAP50 + 0.9 mAP50-95) marked in every panel."""
    from matplotlib.ticker import MaxNLocator

    epochs = [h["epoch"] for h in history]
    scored = [(h["fitness"], h["epoch"]) for h in history
              if isinstance(h.get("fitness"), (int, float)) and h["fitness"] == h["fitness"]]
    best = max(scored)[1] if scored else None     # what weights/best.pt holds (monitor: fitness)
    titles = {"box_loss": "box loss", "obj_loss": "objectness loss", "cls_loss": "class loss",
              "rpn_obj_loss": "RPN objectness loss", "rpn_box_loss": "RPN box loss", "loss": "total loss (box + class)"}
    if "obj_loss" in losses and history and not any("obj_loss" in h for h in history):
        losses = tuple("loss" if k == "obj_loss" else k for k in losses)   # anchor-free (cnnlab-nano): no objectness
    panels = [(k, titles.get(k, k.replace("_", " "))) for k in losses] + \
        [("mAP50", "mAP@0.5"), ("mAP50_95", "mAP@0.5:0.95"), ("lr", "learning rate")]
    cols = -(-len(panels) // 2)
    fig, axes = pyplot().subplots(2, cols, figsize=(13 * cols / 3, 6.5))
    for ax in axes.ravel()[len(panels):]:
        ax.axis("off")
    for ax, (key, title) in zip(axes.ravel(), panels, strict=False):
        series = [("", "train"), ("val_", "validation")] if key.endswith("loss") else \
            [("", "learning rate" if key == "lr" else "validation")]
        for prefix, label in series:
            pts = [(e, h.get(prefix + key)) for e, h in zip(epochs, history, strict=True)]
            pts = [(e, v) for e, v in pts if isinstance(v, (int, float)) and v == v]
            if pts:
                ax.plot(*zip(*pts, strict=True), marker="o", ms=3, label=label)
        values = [v for line in ax.lines for v in line.get_ydata()]
        if key.endswith("loss") and values and min(values) > 0 and max(values) > 10 * min(values):
            ax.set_yscale("log")   # a first epoch far above the rest would flatten the curve
        if best is not None:
            ax.axvline(best, color="tab:red", ls="--", lw=1, alpha=0.8, label=f"best epoch {best} (fitness)")
        ax.set(title=title, xlabel="epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path, dpi=100)


def draw_truth(image_bgr: np.ndarray, boxes: np.ndarray, class_ids: np.ndarray, names: list[str]) -> np.ndarray:
    """Ground-truth boxes in green with their class names."""
    import cv2

    out = image_bgr.copy()
    t = max(1, round(min(out.shape[:2]) / 300))
    for (x1, y1, x2, y2), c in zip(boxes.astype(int), class_ids, strict=True):
        cv2.rectangle(out, (x1, y1), (x2, y2), GT_COLOUR, t)
        label = names[int(c)] if 0 <= int(c) < len(names) else str(int(c))
        cv2.putText(out, label, (x1 + 2, max(y1 + 12, 12)), cv2.FONT_HERSHEY_SIMPLEX, 0.4, GT_COLOUR, 1,
                    cv2.LINE_AA)
    return out


def _caption(img: np.ndarray, text: str) -> np.ndarray:
    import cv2

    bar = np.full((18, img.shape[1], 3), 255, np.uint8)
    cv2.putText(bar, text, (4, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    return np.vstack((bar, img))


def _fit(img: np.ndarray, size: int) -> np.ndarray:
    from cnnlab.detect.train.augment import resize_long_side

    img, _ = resize_long_side(img, size)
    canvas = np.full((size, size, 3), 255, np.uint8)
    canvas[:img.shape[0], :img.shape[1]] = img
    return canvas


def save_val_samples(path: str | os.PathLike, images: list[np.ndarray], truths: list[tuple[np.ndarray, np.ndarray]],
                     preds: list[Detections], names: list[str], conf: float = 0.25, tile: int = 320) -> Path:
    """One row per image: true boxes (left) and predictions above ``conf`` (right), as a JPEG."""
    from cnnlab.detect.draw import draw_detections, write_image

    rows = []
    for img, (boxes, cls), det in zip(images, truths, preds, strict=True):
        left = _caption(_fit(draw_truth(img, boxes, cls, names), tile), f"true ({len(boxes)})")
        shown = det.filter(conf=conf)
        right = _caption(_fit(draw_detections(img, shown), tile), f"predicted ({len(shown)}, conf>={conf})")
        rows.append(np.hstack((left, right)))
    return write_image(path, np.vstack(rows) if rows else np.full((tile, 2 * tile, 3), 255, np.uint8), 90)


def save_train_batch(path: str | os.PathLike, x, targets, names: list[str], max_images: int = 8) -> Path:
    """The first augmented training batch with its target boxes (checks the augmentations by eye)."""
    from cnnlab.detect.draw import write_image
    from cnnlab.detect.metrics import yolo2xyxy

    imgs = (x[:max_images].permute(0, 2, 3, 1).numpy()[..., ::-1] * 255).round().clip(0, 255).astype(np.uint8)
    h, w = imgs.shape[1:3]
    tiles = []
    for k, img in enumerate(imgs):
        t = targets[targets[:, 0] == k].numpy()
        boxes = yolo2xyxy(t[:, 2:6], w, h)
        tiles.append(_fit(draw_truth(np.ascontiguousarray(img), boxes, t[:, 1].astype(int), names), 256))
    while len(tiles) % 4:
        tiles.append(np.full_like(tiles[0], 255))
    return write_image(path, np.vstack([np.hstack(tiles[i:i + 4]) for i in range(0, len(tiles), 4)]), 90)
