"""Training batches for YOLO: load, augment (box-correct) and collate labelled detection samples.

A batch is ``(images float32 (B, 3, H, W) RGB /255, targets float32 (M, 6))`` where each target row is
``[image index in batch, class, cx, cy, w, h]`` normalised to the network input. Every sample is a
pure function of ``(seed, epoch, index)`` and the order of an epoch of ``(seed, epoch)``, so a
resumed run sees exactly the batches an uninterrupted one would (``loader.set_epoch(epoch)``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import numpy as np
import torch

from cnnlab.config.detect import DetectTrainConfig
from cnnlab.detect.train.augment import (
    augment_hsv,
    hflip,
    letterbox,
    mosaic,
    random_affine,
    resize_long_side,
)
from cnnlab.detect.types import DetectionSample

#: The augmentation fields of `DetectTrainConfig` (Ultralytics' hyperparameter names).
AUGMENT_FIELDS = ("mosaic", "degrees", "translate", "scale", "shear", "fliplr", "hsv_h", "hsv_s", "hsv_v")


def _from_config(cls: type, cfg: object) -> AugmentOptions:
    """The augmentation fields of a training config, matched by name."""
    return cls(**{name: getattr(cfg, name) for name in AUGMENT_FIELDS})


AugmentOptions = dataclasses.make_dataclass(
    "AugmentOptions",
    [(f.name, float, dataclasses.field(default=f.default))
     for f in dataclasses.fields(DetectTrainConfig) if f.name in AUGMENT_FIELDS],
    namespace={"__doc__": "Training-time augmentation; the defaults are DetectTrainConfig's.",
               "__module__": __name__, "from_config": classmethod(_from_config)})


class DetectionTrainSet:
    """Samples of a detection dataset, served letterboxed (``augment=False``) or augmented."""

    def __init__(self, samples: list[DetectionSample], imgsz: int, augment: AugmentOptions | None = None,
                 seed: int = 0, cache: bool = True) -> None:
        self.samples = list(samples)
        self.imgsz = int(imgsz)
        self.augment = augment
        self.seed = int(seed)
        self.cache = cache
        self._cache: dict[int, tuple[np.ndarray, float]] = {}
        self.mosaic_off = False   # set by the trainer for the last `close_mosaic` epochs

    def __len__(self) -> int:
        return len(self.samples)

    def load_image(self, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Image ``i`` resized so its long side is ``imgsz``, with its boxes scaled to match."""
        from cnnlab.detect.predict import read_image

        s = self.samples[i]
        if i in self._cache:
            img, r = self._cache[i]
        else:
            img, r = resize_long_side(read_image(s.image_path), self.imgsz)
            if self.cache:
                self._cache[i] = (img, r)
        return img, s.boxes.astype(np.float32) * r, s.class_ids.astype(np.int64)

    def item(self, i: int, epoch: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(image BGR (imgsz, imgsz, 3), boxes xyxy pixels, class ids)`` of sample ``i`` in ``epoch``."""
        size, a = self.imgsz, self.augment
        rng = np.random.default_rng([self.seed, epoch, i])
        if a is not None and not self.mosaic_off and rng.random() < a.mosaic and len(self) > 1:
            parts = [self.load_image(j) for j in (i, *rng.integers(0, len(self), 3))]
            img, boxes, cls = mosaic(parts, size, rng)
            out_hw, border = None, (-size // 2, -size // 2)   # the 2s mosaic comes back to s
        else:
            img, boxes, cls = self.load_image(i)
            img, boxes, _, _ = letterbox(img, (size, size), boxes)
            if a is None:
                return img, boxes, cls
            out_hw, border = (size, size), (0, 0)
        img, boxes, cls = random_affine(img, boxes, cls, rng, out_hw=out_hw, degrees=a.degrees,
                                        translate=a.translate, scale=a.scale, shear=a.shear, border=border)
        img = augment_hsv(img, rng, a.hsv_h, a.hsv_s, a.hsv_v)
        if rng.random() < a.fliplr:
            img, boxes = hflip(img, boxes)
        return img, boxes, cls


def to_targets(boxes: np.ndarray, cls: np.ndarray, index: int, height: int, width: int) -> np.ndarray:
    """Target rows ``[index, class, cx, cy, w, h]`` (normalised) of one image's xyxy pixel boxes."""
    from cnnlab.detect.metrics import xyxy2yolo

    out = np.zeros((len(boxes), 6), np.float32)
    out[:, 0], out[:, 1], out[:, 2:] = index, cls, xyxy2yolo(boxes, width, height)
    return out


def collate(items: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack BGR uint8 images into an RGB float batch in [0, 1] and concatenate their targets."""
    imgs = np.stack([im[:, :, ::-1] for im, _, _ in items])                 # B, H, W, 3 RGB
    x = torch.from_numpy(np.ascontiguousarray(imgs)).permute(0, 3, 1, 2).float().div_(255.0)
    h, w = imgs.shape[1:3]
    t = [to_targets(b, c, k, h, w) for k, (_, b, c) in enumerate(items)]
    return x, torch.from_numpy(np.concatenate(t) if t else np.zeros((0, 6), np.float32))


class DetectionLoader:
    """Batches of a `DetectionTrainSet`: seeded shuffling per epoch and optional multi-scale sizes."""

    def __init__(self, dataset: DetectionTrainSet, batch_size: int, shuffle: bool = True, seed: int = 0,
                 multi_scale: bool = False, drop_last: bool = False) -> None:
        self.dataset = dataset
        self.batch_size = max(1, int(batch_size))
        self.shuffle = shuffle
        self.seed = int(seed)
        self.multi_scale = multi_scale
        self.drop_last = drop_last and len(dataset) >= self.batch_size
        self.epoch = 0
        self.rank, self.world = 0, 1

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def shard(self, rank: int, world: int) -> None:
        """Yield only rank ``rank`` of ``world``'s images of each global batch (every sample is a pure
        function of (seed, epoch, index), so the global batches are those of one process)."""
        self.rank, self.world = int(rank), int(world)

    def __len__(self) -> int:
        from cnnlab.engine.distributed import sharded_len

        return sharded_len(len(self.dataset), self.batch_size, self.drop_last, self.world)

    def batch_size_px(self, batch_index: int) -> int:
        """Input size of a batch: ``imgsz``, or a random multiple of 32 in [0.5, 1.5] x imgsz."""
        base = self.dataset.imgsz
        if not self.multi_scale:
            return base
        rng = np.random.default_rng([self.seed, self.epoch, batch_index, 7])
        lo, hi = max(32, int(base * 0.5) // 32 * 32), max(32, int(base * 1.5) // 32 * 32)
        return int(rng.integers(lo // 32, hi // 32 + 1)) * 32

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = len(self.dataset)
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 1000003 + self.epoch)
            order = torch.randperm(n, generator=g).tolist()
        else:
            order = list(range(n))
        for b in range(len(self)):
            idx = order[b * self.batch_size:(b + 1) * self.batch_size][self.rank::self.world]
            x, t = collate([self.dataset.item(i, self.epoch) for i in idx])
            size = self.batch_size_px(b)
            if size != x.shape[-1]:
                x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
            yield x, t
