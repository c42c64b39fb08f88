"""Box-correct augmentations for detection (numpy + OpenCV, as in YOLOv5/Ultralytics).

Every function takes a BGR uint8 image and its boxes as ``(N, 4)`` float32 xyxy pixels and returns
the transformed image with boxes that still enclose the same pixels: letterbox, random affine
(rotation, scale, shift, shear), horizontal flip, HSV jitter (pixels only) and the 4-image mosaic.
Randomness comes from an explicit ``numpy.random.Generator`` so a sample is a pure function of its seed.
"""

from __future__ import annotations

import math

import numpy as np

PAD_VALUE = 114  # grey border of letterboxed and shifted images (as Ultralytics)


def letterbox(img: np.ndarray, new_hw: tuple[int, int], boxes: np.ndarray | None = None,
              color: int = PAD_VALUE) -> tuple[np.ndarray, np.ndarray | None, float, tuple[float, float]]:
    """Resize keeping the aspect ratio, pad to ``new_hw`` (centred): ``(img, boxes, ratio, (left, top))``."""
    import cv2

    h0, w0 = img.shape[:2]
    h, w = new_hw
    r = min(h / h0, w / w0)
    nw, nh = max(1, int(round(w0 * r))), max(1, int(round(h0 * r)))
    if (nw, nh) != (w0, h0):
        img = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_LINEAR)
    dw, dh = (w - nw) / 2, (h - nh) / 2
    top, bottom = int(round(dh - 0.1)), int(round(dh + 0.1))
    left, right = int(round(dw - 0.1)), int(round(dw + 0.1))
    img = cv2.copyMakeBorder(img, top, bottom, left, right, cv2.BORDER_CONSTANT, value=(color, color, color))
    if boxes is not None:
        boxes = boxes.astype(np.float32, copy=True)
        boxes[:, [0, 2]] = boxes[:, [0, 2]] * (nw / w0) + left
        boxes[:, [1, 3]] = boxes[:, [1, 3]] * (nh / h0) + top
    return img, boxes, r, (float(left), float(top))


def hflip(img: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mirror left-right; x1' = W - x2, x2' = W - x1."""
    w = img.shape[1]
    out = boxes.astype(np.float32, copy=True)
    out[:, 0], out[:, 2] = w - boxes[:, 2], w - boxes[:, 0]
    return np.ascontiguousarray(img[:, ::-1]), out


def augment_hsv(img: np.ndarray, rng: np.random.Generator, hgain: float = 0.015, sgain: float = 0.7,
                vgain: float = 0.4) -> np.ndarray:
    """Random hue/saturation/value gains via look-up tables (boxes are unchanged)."""
    import cv2

    if not (hgain or sgain or vgain):
        return img
    r = rng.uniform(-1, 1, 3) * [hgain, sgain, vgain] + 1
    hue, sat, val = cv2.split(cv2.cvtColor(img, cv2.COLOR_BGR2HSV))
    x = np.arange(0, 256, dtype=r.dtype)
    lut_hue = ((x * r[0]) % 180).astype(np.uint8)
    lut_sat = np.clip(x * r[1], 0, 255).astype(np.uint8)
    lut_val = np.clip(x * r[2], 0, 255).astype(np.uint8)
    hsv = cv2.merge((cv2.LUT(hue, lut_hue), cv2.LUT(sat, lut_sat), cv2.LUT(val, lut_val)))
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)


def affine_matrix(in_hw: tuple[int, int], out_hw: tuple[int, int], rng: np.random.Generator,
                  degrees: float = 0.0, translate: float = 0.1, scale: float = 0.5, shear: float = 0.0
                  ) -> np.ndarray:
    """The 3x3 matrix of a random rotation/scale/shear about the image centre, then a random shift
    of that centre around the centre of the output (``translate`` is a fraction of the output size)."""
    import cv2

    h, w = in_hw
    oh, ow = out_hw
    c = np.eye(3)
    c[0, 2], c[1, 2] = -w / 2, -h / 2                              # centre at the origin
    r = np.eye(3)
    a = rng.uniform(-degrees, degrees)
    s = rng.uniform(1 - scale, 1 + scale)
    r[:2] = cv2.getRotationMatrix2D((0, 0), a, s)
    sh = np.eye(3)
    sh[0, 1] = math.tan(rng.uniform(-shear, shear) * math.pi / 180)
    sh[1, 0] = math.tan(rng.uniform(-shear, shear) * math.pi / 180)
    t = np.eye(3)
    t[0, 2] = rng.uniform(0.5 - translate, 0.5 + translate) * ow
    t[1, 2] = rng.uniform(0.5 - translate, 0.5 + translate) * oh
    return t @ sh @ r @ c


def transform_boxes(boxes: np.ndarray, m: np.ndarray, out_hw: tuple[int, int]) -> np.ndarray:
    """Boxes through affine ``m``: the bounding box of the 4 transformed corners, clipped."""
    n = len(boxes)
    if n == 0:
        return boxes.reshape(0, 4).astype(np.float32)
    xy = np.ones((n * 4, 3))
    xy[:, :2] = boxes[:, [0, 1, 2, 3, 0, 3, 2, 1]].reshape(n * 4, 2)
    xy = (xy @ m.T)[:, :2].reshape(n, 8)
    x, y = xy[:, [0, 2, 4, 6]], xy[:, [1, 3, 5, 7]]
    out = np.stack((x.min(1), y.min(1), x.max(1), y.max(1)), axis=1)
    return out.clip(0, [out_hw[1], out_hw[0]] * 2).astype(np.float32)


def box_candidates(before: np.ndarray, after: np.ndarray, min_wh: float = 2.0, min_area: float = 0.1,
                   max_ratio: float = 20.0, scale: float = 1.0) -> np.ndarray:
    """Boxes worth keeping after a transform: > ``min_wh`` px, > ``min_area`` of their scaled area left."""
    w1, h1 = (before[:, 2] - before[:, 0]) * scale, (before[:, 3] - before[:, 1]) * scale
    w2, h2 = after[:, 2] - after[:, 0], after[:, 3] - after[:, 1]
    ratio = np.maximum(w2 / (h2 + 1e-16), h2 / (w2 + 1e-16))
    return (w2 > min_wh) & (h2 > min_wh) & (w2 * h2 / (w1 * h1 + 1e-16) > min_area) & (ratio < max_ratio)


def random_affine(img: np.ndarray, boxes: np.ndarray, class_ids: np.ndarray, rng: np.random.Generator,
                  out_hw: tuple[int, int] | None = None, degrees: float = 0.0, translate: float = 0.1,
                  scale: float = 0.5, shear: float = 0.0, border: tuple[int, int] = (0, 0)
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random rotation/scale/shear/shift (one ``warpAffine``); boxes follow, lost ones are dropped.

    The output is ``out_hw``, or the input size grown by ``border`` (top, left) on each side; a
    negative border crops (a 2s mosaic comes back to s with ``border=(-s // 2, -s // 2)``).
    """
    import cv2

    h, w = img.shape[:2]
    oh, ow = out_hw or (h + 2 * border[0], w + 2 * border[1])
    m = affine_matrix((h, w), (oh, ow), rng, degrees, translate, scale, shear)
    if not (np.allclose(m, np.eye(3)) and (oh, ow) == (h, w)):
        img = cv2.warpAffine(img, m[:2], dsize=(ow, oh), flags=cv2.INTER_LINEAR,
                             borderValue=(PAD_VALUE,) * 3)
    new = transform_boxes(boxes, m, (oh, ow))
    s = float(np.sqrt(abs(np.linalg.det(m[:2, :2]))))
    keep = box_candidates(boxes, new, scale=s) if len(boxes) else np.zeros(0, bool)
    return img, new[keep], class_ids[keep]


def mosaic(parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]], size: int, rng: np.random.Generator
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Four (image, boxes, class_ids) around a random centre of a 2s x 2s canvas (YOLOv4's mosaic).

    Images should already be resized so their long side is ``size``. Returns the 2s canvas; follow it
    with ``random_affine(..., border=(-s//2, -s//2))`` to come back to s x s.
    """
    if len(parts) != 4:
        raise ValueError("mosaic needs exactly 4 images")
    s = size
    yc, xc = (int(rng.uniform(s // 2, 3 * s // 2)) for _ in range(2))
    canvas = np.full((2 * s, 2 * s, 3), PAD_VALUE, dtype=np.uint8)
    all_boxes, all_cls = [], []
    for i, (img, boxes, cls) in enumerate(parts):   # top left, top right, bottom left, bottom right
        h, w = img.shape[:2]
        right, bottom = i % 2, i // 2
        # the pasted region (a: canvas, b: image): the image's corner nearest the centre sits on it
        x1a, x2a = (xc, min(xc + w, 2 * s)) if right else (max(xc - w, 0), xc)
        y1a, y2a = (yc, min(yc + h, 2 * s)) if bottom else (max(yc - h, 0), yc)
        x1b, y1b = (0 if right else w - (x2a - x1a)), (0 if bottom else h - (y2a - y1a))
        canvas[y1a:y2a, x1a:x2a] = img[y1b:y1b + y2a - y1a, x1b:x1b + x2a - x1a]
        # onto the canvas, clipped to the pasted region: the rest of the image is not on the canvas
        shift = np.array([x1a - x1b, y1a - y1b] * 2, np.float32)
        b = (boxes.astype(np.float32) + shift).clip([x1a, y1a] * 2, [x2a, y2a] * 2).astype(np.float32)
        keep = ((b[:, 2] - b[:, 0]) > 1) & ((b[:, 3] - b[:, 1]) > 1)
        all_boxes.append(b[keep])
        all_cls.append(cls[keep])
    return canvas, np.concatenate(all_boxes).reshape(-1, 4), np.concatenate(all_cls).astype(np.int64)


def resize_long_side(img: np.ndarray, size: int) -> tuple[np.ndarray, float]:
    """Resize so the longer side is ``size`` (area interpolation when shrinking): ``(img, ratio)``."""
    import cv2

    h, w = img.shape[:2]
    r = size / max(h, w)
    if r != 1:
        interp = cv2.INTER_AREA if r < 1 else cv2.INTER_LINEAR
        img = cv2.resize(img, (max(1, int(round(w * r))), max(1, int(round(h * r)))), interpolation=interp)
    return img, r
