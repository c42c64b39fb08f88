"""Data of a localisation run: one (image, class, box) per image, in memory, and a seeded loader.

Sources: synthetic scenes (one shape on a textured background, exact box) or any detection dataset
(YOLO/COCO/VOC via ``cnnlab.detect.data``) reduced to one object per image: the largest box, or only the
images with exactly one box. Images are resized to ``imgsz`` x ``imgsz``; boxes are xyxy fractions of the
image, so they do not change with the resize.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch

from cnnlab.config.localize import LocalizeConfig
from cnnlab.errors import DataError
from cnnlab.tasks.dense import SeededLoader


@dataclass
class LocalizeData:
    """Images uint8 (N, 3, S, S) RGB, labels int64 (N,), boxes float32 (N, 4) xyxy in [0, 1]."""

    images: torch.Tensor
    labels: torch.Tensor
    boxes: torch.Tensor
    classes: list[str]

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def subset(self, idx: torch.Tensor | np.ndarray | list[int]) -> LocalizeData:
        idx = torch.as_tensor(idx, dtype=torch.long)
        return LocalizeData(self.images[idx], self.labels[idx], self.boxes[idx], list(self.classes))


def synthetic_data(n: int, size: int, seed: int) -> LocalizeData:
    """``n`` scenes with one shape each (circle/square/triangle), boxes measured from the drawn pixels."""
    from cnnlab.detect.train.scenes import SHAPES, make_scene

    rng = np.random.default_rng(seed)
    imgs, labels, boxes = [], [], []
    for _ in range(n):
        img, b, c = make_scene(rng, size, size, objects=(1, 1), sizes=(0.2, 0.6))
        imgs.append(img[:, :, ::-1].transpose(2, 0, 1))   # BGR HWC -> RGB CHW
        labels.append(int(c[0]))
        boxes.append(b[0] / size)
    return LocalizeData(torch.from_numpy(np.ascontiguousarray(np.stack(imgs))), torch.tensor(labels),
                        torch.from_numpy(np.stack(boxes).astype(np.float32)), list(SHAPES))


def from_detection(spec: str, split: str, size: int, objects: str, names: list[str] | None = None) -> LocalizeData:
    """A detection split as one object per image (``objects``: largest | single)."""
    import cv2

    from cnnlab.detect.data import load_detection_data

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = load_detection_data(spec, split=split, names=names, warn=False)
    imgs, labels, boxes = [], [], []
    for s in ds.samples:
        if len(s.boxes) == 0 or (objects == "single" and len(s.boxes) != 1):
            continue
        area = (s.boxes[:, 2] - s.boxes[:, 0]) * (s.boxes[:, 3] - s.boxes[:, 1])
        k = int(np.argmax(area))
        img = cv2.imread(str(s.image_path), cv2.IMREAD_COLOR)
        if img is None:
            raise DataError(f"{s.image_path}: cannot read the image")
        h, w = img.shape[:2]
        img = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)
        imgs.append(img[:, :, ::-1].transpose(2, 0, 1))
        labels.append(int(s.class_ids[k]))
        boxes.append(np.clip(s.boxes[k] / np.array([w, h, w, h], np.float32), 0.0, 1.0))
    if not imgs:
        what = "exactly one box" if objects == "single" else "a box"
        raise DataError(f"{spec}: no image of the {split} split has {what}")
    return LocalizeData(torch.from_numpy(np.ascontiguousarray(np.stack(imgs))), torch.tensor(labels),
                        torch.from_numpy(np.stack(boxes).astype(np.float32)), list(ds.names))


def load_train_val(cfg: LocalizeConfig) -> tuple[LocalizeData, LocalizeData]:
    """The training and validation data of ``cfg``: a data.yaml's val split, else ``val_fraction`` of the
    training images held out (seeded)."""
    if cfg.data == "synthetic":
        return (synthetic_data(cfg.synthetic_train, cfg.imgsz, cfg.seed),
                synthetic_data(cfg.synthetic_val, cfg.imgsz, cfg.seed + 1_000_003))
    from cnnlab.paths import find_data

    spec = str(find_data(cfg.data))
    train = from_detection(spec, "train", cfg.imgsz, cfg.objects)
    if spec.lower().endswith((".yaml", ".yml")):  # only a data.yaml names its splits
        try:
            return train, from_detection(spec, cfg.val or "val", cfg.imgsz, cfg.objects, train.classes)
        except DataError as e:
            if cfg.val is not None or "split" not in str(e):
                raise
    g = torch.Generator().manual_seed(cfg.seed)
    perm = torch.randperm(len(train), generator=g)
    n_val = max(1, round(len(train) * cfg.val_fraction))
    if n_val >= len(train):
        raise DataError(f"{cfg.data}: {len(train)} usable images are too few to hold out a validation split")
    return train.subset(perm[n_val:]), train.subset(perm[:n_val])


class LocalizeLoader(SeededLoader):
    """Batches ``(x, (labels, boxes))``: x float32 normalised NCHW, boxes xyxy fractions (flipped with
    their images); order and flips seeded per epoch (:class:`~cnnlab.tasks.dense.SeededLoader`)."""

    def targets(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.data.labels[idx], self.data.boxes[idx].clone()

    def flip(self, targets: tuple[torch.Tensor, torch.Tensor], flip: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y, b = targets
        b[flip] = torch.stack([1 - b[flip, 2], b[flip, 1], 1 - b[flip, 0], b[flip, 3]], dim=1)
        return y, b
