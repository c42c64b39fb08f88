"""Data of a localisation run: one (image, class, box) per image, in memory, and a seeded loader.

Sources: synthetic scenes (one shape on a textured background, exact box) or any detection dataset
(YOLO/COCO/VOC via ``cnnlab.detect.data``) reduced to one object per image: the largest box, or only the
images with exactly one box. Images are resized to ``imgsz`` x ``imgsz``; boxes are xyxy fractions of the
image, so they do not change with the resize.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import torch

from cnnlab.config.localize import LocalizeConfig
from cnnlab.errors import DataError


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


class LocalizeLoader:
    """Batches ``(x, (labels, boxes))``: x float32 normalised NCHW. Order and flips are a pure function of
    (seed, epoch) (``set_epoch``), so a resumed run sees exactly the batches of an uninterrupted one."""

    def __init__(self, data: LocalizeData, batch: int, mean: tuple[float, ...], std: tuple[float, ...],
                 shuffle: bool = False, fliplr: float = 0.0, seed: int = 0) -> None:
        self.data, self.batch, self.shuffle, self.fliplr, self.seed = data, batch, shuffle, fliplr, seed
        self.mean = torch.tensor(mean).view(1, -1, 1, 1)
        self.std = torch.tensor(std).view(1, -1, 1, 1)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return math.ceil(len(self.data) / self.batch)

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        n = len(self.data)
        order = torch.randperm(n, generator=g) if self.shuffle else torch.arange(n)
        for start in range(0, n, self.batch):
            idx = order[start:start + self.batch]
            x = self.data.images[idx].float() / 255.0
            y, b = self.data.labels[idx], self.data.boxes[idx].clone()
            if self.fliplr > 0:
                flip = torch.rand(len(idx), generator=g) < self.fliplr
                x[flip] = x[flip].flip(-1)
                b[flip] = torch.stack([1 - b[flip, 2], b[flip, 1], 1 - b[flip, 0], b[flip, 3]], dim=1)
            yield (x - self.mean) / self.std, (y, b)


def channel_stats(data: LocalizeData) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of the images on the [0, 1] scale."""
    x = data.images.float() / 255.0
    return tuple(x.mean((0, 2, 3)).tolist()), tuple(x.std((0, 2, 3)).clamp_min(1e-3).tolist())
