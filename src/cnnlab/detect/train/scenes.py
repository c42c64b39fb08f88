"""Synthetic detection scenes: coloured shapes on textured backgrounds, with exact boxes.

    data_yaml = write_scene_dataset("scenes", n_train=240, n_val=60)   # a YOLO dataset + data.yaml
    clip = write_scene_clip("scenes/clip.avi", frames=60)              # shapes moving over a background

Boxes are measured from the drawn pixels (the tight bounding box of each shape's mask), so they are
exact. Nothing is downloaded; the same seed gives the same files.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

SHAPES = ("circle", "square", "triangle")


def textured_background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A BGR background: a colour gradient, blurred noise blobs and a few thin random lines."""
    import cv2

    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    c0, c1 = rng.uniform(40, 215, 3), rng.uniform(40, 215, 3)
    t = (xx / max(1, width - 1) * rng.uniform(0.3, 1.0) + yy / max(1, height - 1) * rng.uniform(0.0, 0.7))
    t = t / max(float(t.max()), 1e-6)
    img = c0[None, None] * (1 - t[..., None]) + c1[None, None] * t[..., None]
    noise = rng.normal(0, 1, (max(2, height // 8), max(2, width // 8), 3)).astype(np.float32)
    noise = cv2.resize(noise, (width, height), interpolation=cv2.INTER_CUBIC)
    img = img + noise * rng.uniform(8, 25) + rng.normal(0, 4, img.shape)
    img = np.clip(img, 0, 255).astype(np.uint8)
    for _ in range(int(rng.integers(0, 5))):
        p1 = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        p2 = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        cv2.line(img, p1, p2, tuple(int(v) for v in rng.integers(0, 256, 3)), 1, cv2.LINE_AA)
    return img


def shape_mask(kind: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """A boolean mask (size x size) of one shape, roughly filling it (slightly random proportions)."""
    import cv2

    m = np.zeros((size, size), np.uint8)
    c = (size - 1) / 2
    if kind == "circle":
        cv2.circle(m, (int(round(c)), int(round(c))), max(1, size // 2 - 1), 1, -1, cv2.LINE_AA)
    elif kind == "square":
        ar = rng.uniform(0.75, 1.0)
        half_w, half_h = (size - 1) / 2 * ar, (size - 1) / 2
        if rng.random() < 0.5:
            half_w, half_h = half_h, half_w
        cv2.rectangle(m, (int(round(c - half_w)), int(round(c - half_h))),
                      (int(round(c + half_w)), int(round(c + half_h))), 1, -1)
    elif kind == "triangle":
        pts = np.array([[c, 0], [0, size - 1], [size - 1, size - 1]], np.float32)
        if rng.random() < 0.5:
            pts[:, 1] = size - 1 - pts[:, 1]   # pointing down
        cv2.fillPoly(m, [np.round(pts).astype(np.int32)], 1, cv2.LINE_AA)
    else:
        raise ValueError(f"unknown shape {kind!r}")
    return m.astype(bool)


def make_scene(rng: np.random.Generator, height: int = 160, width: int = 160, objects: tuple[int, int] = (1, 4),
               sizes: tuple[float, float] = (0.12, 0.4), shapes: tuple[str, ...] = SHAPES,
               label_map: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One scene: ``(image BGR uint8, boxes (N, 4) xyxy float32, class ids (N,))``; overlaps kept small.

    ``label_map`` (an ``height x width`` integer array, e.g. zeros) receives the exact segmentation mask:
    ``class id + 1`` on every pixel a shape was drawn on (later shapes over earlier ones)."""
    from cnnlab.detect.metrics import box_iou

    img = textured_background(rng, height, width)
    boxes: list[list[float]] = []
    cls: list[int] = []
    for _ in range(int(rng.integers(objects[0], objects[1] + 1))):
        for _attempt in range(20):
            s = int(rng.uniform(*sizes) * min(height, width))
            s = max(6, min(s, min(height, width) - 2))
            x0, y0 = int(rng.integers(0, width - s + 1)), int(rng.integers(0, height - s + 1))
            k = int(rng.integers(0, len(shapes)))
            mask = shape_mask(shapes[k], s, rng)
            ys, xs = np.nonzero(mask)
            box = np.array([x0 + xs.min(), y0 + ys.min(), x0 + xs.max() + 1, y0 + ys.max() + 1], np.float32)
            if (box_iou(box, np.asarray(boxes, np.float32).reshape(-1, 4)) > 0.1).any():
                continue
            colour = rng.integers(0, 256, 3)
            bg_mean = img[y0:y0 + s, x0:x0 + s].reshape(-1, 3).mean(0)
            if np.abs(colour - bg_mean).sum() < 120:       # keep shapes visible against the background
                colour = (colour + 128) % 256
            region = img[y0:y0 + s, x0:x0 + s]
            shade = np.clip(colour[None] + rng.normal(0, 6, (int(mask.sum()), 3)), 0, 255)
            region[mask] = shade.astype(np.uint8)
            if label_map is not None:
                label_map[y0:y0 + s, x0:x0 + s][mask] = k + 1
            boxes.append(box.tolist())
            cls.append(k)
            break
    return img, np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(cls, np.int64)


def write_scene_dataset(folder: str | os.PathLike, n_train: int = 240, n_val: int = 60, size: int = 160,
                        seed: int = 0, objects: tuple[int, int] = (1, 4),
                        sizes: tuple[float, float] = (0.12, 0.4)) -> Path:
    """Write ``images/{train,val}/*.png``, ``labels/{train,val}/*.txt`` and ``data.yaml``; returns the yaml."""
    from cnnlab.detect.data import yolo_label_text
    from cnnlab.detect.draw import write_image
    from cnnlab.io import atomic_write_text, write_yaml

    folder = Path(folder)
    rng = np.random.default_rng(seed)
    for split, n in (("train", n_train), ("val", n_val)):
        for i in range(n):
            img, boxes, cls = make_scene(rng, size, size, objects, sizes)
            write_image(folder / "images" / split / f"{split}_{i:04d}.png", img)
            label = yolo_label_text(boxes, cls, size, size)
            atomic_write_text(folder / "labels" / split / f"{split}_{i:04d}.txt", label)
    return write_yaml(folder / "data.yaml", {"path": ".", "train": "images/train", "val": "images/val",
                                            "nc": len(SHAPES), "names": list(SHAPES)})


def write_scene_clip(path: str | os.PathLike, frames: int = 60, height: int = 240, width: int = 320,
                     fps: float = 15.0, seed: int = 0, objects: int = 4) -> Path:
    """An MJPG ``.avi`` of shapes drifting and bouncing over a fixed textured background."""
    from cnnlab.detect.pipeline.sinks import VideoSink

    rng = np.random.default_rng(seed)
    bg = textured_background(rng, height, width)
    items = []
    for _ in range(objects):
        s = int(rng.uniform(0.15, 0.3) * min(height, width))
        k = int(rng.integers(0, len(SHAPES)))
        items.append({"mask": shape_mask(SHAPES[k], s, rng), "s": s,
                      "pos": np.array([rng.uniform(0, width - s), rng.uniform(0, height - s)]),
                      "vel": rng.uniform(-4, 4, 2), "colour": rng.integers(0, 256, 3).astype(np.uint8)})
    video, done = VideoSink(path, fps, fourcc="MJPG"), False   # written whole, then renamed into place
    video.open()
    try:
        for _ in range(frames):
            img = bg.copy()
            for it in items:
                it["pos"] += it["vel"]
                for d, limit in ((0, width - it["s"]), (1, height - it["s"])):
                    if not 0 <= it["pos"][d] <= limit:
                        it["vel"][d] *= -1
                        it["pos"][d] = np.clip(it["pos"][d], 0, limit)
                x0, y0 = (int(v) for v in it["pos"])
                img[y0:y0 + it["s"], x0:x0 + it["s"]][it["mask"]] = it["colour"]
            video.write_image(img)
        done = True
    finally:
        video.close(keep=done)
    return video.path
