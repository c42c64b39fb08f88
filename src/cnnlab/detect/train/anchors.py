"""Anchor boxes for a dataset: k-means on box widths/heights with ``1 - IoU`` as the distance (YOLOv2).

    result = dataset_anchors("data.yaml", n=9, imgsz=416)
    result["anchors"]  # [[w, h], ...] in network-input pixels, smallest first (the cfg's order)
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from cnnlab.errors import UserError


def iou_wh(wh: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    """IoU of boxes and anchors aligned at a common centre: ``(N, 2) x (K, 2) -> (N, K)``."""
    inter = np.minimum(wh[:, None, 0], anchors[None, :, 0]) * np.minimum(wh[:, None, 1], anchors[None, :, 1])
    union = wh[:, 0:1] * wh[:, 1:2] + (anchors[:, 0] * anchors[:, 1])[None] - inter
    return inter / np.maximum(union, 1e-12)


def kmeans_anchors(wh: np.ndarray, n: int = 9, seed: int = 0, iters: int = 300, restarts: int = 10) -> np.ndarray:
    """``n`` anchors (float (n, 2), sorted by area) clustering ``wh`` under the distance 1 - IoU.

    k-means++ seeding and Lloyd iterations with the median of each cluster (robust to outliers),
    ``restarts`` times; the result with the highest mean best IoU wins. Deterministic: the boxes are
    sorted first and the generator seeded with ``seed``, so the order of files and boxes does not matter.
    """
    wh = np.asarray(wh, dtype=np.float64).reshape(-1, 2)
    if not np.isfinite(wh).all():
        raise UserError("box widths/heights must be finite numbers (a NaN or inf box reached the anchors)")
    wh = wh[(wh > 0).all(1)]
    if n < 1:
        raise UserError(f"the number of anchors must be >= 1, got {n}")
    if len(wh) < n:
        raise UserError(f"need at least {n} boxes to fit {n} anchors, the dataset has {len(wh)}")
    wh = wh[np.lexsort((wh[:, 1], wh[:, 0]))]   # sorted: the result does not depend on the files' order
    rng = np.random.default_rng(seed)
    runs = [_lloyd(wh, _kmeanspp(wh, n, rng), iters) for _ in range(max(1, restarts))]
    best = max(runs, key=lambda c: float(iou_wh(wh, c).max(1).mean()))   # the first of equally good ones
    return best[np.argsort(best.prod(1))]


def _kmeanspp(wh: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    centres = [wh[rng.integers(len(wh))]]
    for _ in range(1, n):
        d = 1.0 - iou_wh(wh, np.asarray(centres)).max(1)
        p = d ** 2
        total = p.sum()
        centres.append(wh[rng.choice(len(wh), p=p / total)] if total > 0 else wh[rng.integers(len(wh))])
    return np.asarray(centres)


def _lloyd(wh: np.ndarray, c: np.ndarray, iters: int) -> np.ndarray:
    c = c.copy()
    assign = np.full(len(wh), -1)
    for _ in range(iters):
        new = iou_wh(wh, c).argmax(1)
        if (new == assign).all():
            break
        assign = new
        for k in range(len(c)):
            members = wh[assign == k]
            if len(members):
                c[k] = np.median(members, axis=0)
            else:  # an empty cluster takes the box worst served by the others
                c[k] = wh[iou_wh(wh, c).max(1).argmin()]
    return c


def anchor_fitness(wh: np.ndarray, anchors: np.ndarray, thresh: float = 0.213) -> dict[str, float]:
    """Mean best IoU of the boxes with the anchors, and the best-possible recall (share of boxes with
    an anchor above ``thresh``)."""
    best = iou_wh(np.asarray(wh, np.float64).reshape(-1, 2), np.asarray(anchors, np.float64)).max(1)
    return {"mean_iou": float(best.mean()) if len(best) else 0.0,
            "bpr": float((best > thresh).mean()) if len(best) else 0.0}


def best_possible_recall(wh: np.ndarray, anchors: np.ndarray, ratio: float = 4.0) -> float:
    """YOLOv5's anchor check: the share of boxes with an anchor whose width and height ratios to the
    box are both within ``ratio`` (the shape targets a YOLO head can learn); < 0.98 means the anchors
    fit the data badly. Boxes under 2 pixels on both sides are left out (as YOLOv5 does)."""
    wh = np.asarray(wh, np.float64).reshape(-1, 2)
    wh = wh[(wh >= 2.0).any(1)]
    if not len(wh):
        return 0.0
    r = wh[:, None, :] / np.asarray(anchors, np.float64)[None]
    worst = np.minimum(r, 1.0 / r).min(2)       # (boxes, anchors): the worse of the w and h ratios
    return float((worst.max(1) > 1.0 / ratio).mean())


def dataset_wh(samples: list, imgsz: int) -> np.ndarray:
    """Box widths/heights of ``samples`` in network-input pixels after letterboxing to ``imgsz``."""
    wh = [(s.boxes[:, 2:4] - s.boxes[:, :2]) * (imgsz / max(s.width, s.height)) for s in samples]
    return np.concatenate([np.zeros((0, 2)), *wh])


def dataset_anchors(data: str | os.PathLike, n: int = 9, imgsz: int = 416, split: str = "train",
                    seed: int = 0) -> dict[str, Any]:
    """k-means anchors of a dataset's ``split``; with their fitness and that of YOLOv3's defaults.

    The boxes are read by the dataset loaders (`load_detection_data`), so a broken label (a NaN or
    inf coordinate, a zero-size box, a box outside its image) is the same one-line DataError as in
    ``detect-eval`` and training.
    """
    import warnings

    from cnnlab.darknet.yolo import YOLOV3_ANCHORS, YOLOV3_TINY_ANCHORS
    from cnnlab.detect.data import load_detection_data

    if imgsz < 32:
        raise UserError(f"imgsz must be >= 32, got {imgsz}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = load_detection_data(data, split=split, warn=False)
    wh = dataset_wh(ds.samples, imgsz)
    anchors = kmeans_anchors(wh, n, seed)
    out: dict[str, Any] = {"anchors": [[round(float(w), 1), round(float(h), 1)] for w, h in anchors],
                           "n": n, "imgsz": imgsz, "boxes": len(wh), "images": len(ds), **anchor_fitness(wh, anchors)}
    default = {9: YOLOV3_ANCHORS, 6: YOLOV3_TINY_ANCHORS}.get(n)
    if default is not None:
        out["default_fitness"] = anchor_fitness(wh, np.asarray(default, np.float64))  # cfg pixels as is
    return out


def anchors_cfg_text(anchors: list[list[float]]) -> str:
    """``anchors=10,13, 16,30, ...`` as a Darknet cfg line (rounded to whole pixels)."""
    return "anchors=" + ",  ".join(f"{int(round(w))},{int(round(h))}" for w, h in anchors)
