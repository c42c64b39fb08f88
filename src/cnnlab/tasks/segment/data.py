"""Data of a segmentation run: images and label masks in memory, and a seeded loader.

Sources: synthetic scenes (shapes on textures, masks exact: 0 background, 1 + shape index), a folder
with ``images/`` and ``masks/`` (same stems; mask values 0..K-1 are class ids, other value sets such as
{0, 255} are numbered in sorted order), or a Pascal VOC folder (``JPEGImages`` + ``SegmentationClass``
palette PNGs; 255 = void, ignored). Masks are resized with nearest neighbour.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from cnnlab.config.segment import SegmentConfig
from cnnlab.errors import DataError, UserError
from cnnlab.tasks.dense import SeededLoader

IGNORE = 255
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
VOC_CLASSES = ("background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair",
               "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
               "train", "tvmonitor")


@dataclass
class SegmentData:
    """Images uint8 (N, 3, S, S) RGB, masks int64 (N, S, S) with class ids (255: ignored)."""

    images: torch.Tensor
    masks: torch.Tensor
    classes: list[str]

    def __len__(self) -> int:
        return int(self.masks.shape[0])

    def subset(self, idx: torch.Tensor | list[int]) -> SegmentData:
        idx = torch.as_tensor(idx, dtype=torch.long)
        return SegmentData(self.images[idx], self.masks[idx], list(self.classes))


def synthetic_data(n: int, size: int, seed: int) -> SegmentData:
    """``n`` scenes of 1-4 shapes with their exact masks (classes: background + the shapes)."""
    from cnnlab.detect.train.scenes import SHAPES, make_scene

    rng = np.random.default_rng(seed)
    imgs, masks = [], []
    for _ in range(n):
        label = np.zeros((size, size), np.int64)
        img, _, _ = make_scene(rng, size, size, objects=(1, 4), sizes=(0.15, 0.45), label_map=label)
        imgs.append(img[:, :, ::-1].transpose(2, 0, 1))
        masks.append(label)
    return SegmentData(torch.from_numpy(np.ascontiguousarray(np.stack(imgs))), torch.from_numpy(np.stack(masks)),
                       ["background", *SHAPES])


def _read_image(path: Path, size: int) -> np.ndarray:
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise DataError(f"{path}: cannot read the image")
    return cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)[:, :, ::-1].transpose(2, 0, 1)


def _read_mask(path: Path, size: int) -> np.ndarray:
    """Palette PNGs give their indices (PIL), others their grey values; resized nearest."""
    import cv2
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            arr = np.asarray(im if im.mode in ("P", "L", "I", "I;16") else im.convert("L"))
    except (OSError, UnidentifiedImageError):
        raise DataError(f"{path}: cannot read the mask") from None
    if arr.ndim != 2:
        raise DataError(f"{path}: a mask must be one channel, got shape {arr.shape}")
    return cv2.resize(arr.astype(np.int32), (size, size), interpolation=cv2.INTER_NEAREST).astype(np.int64)


def from_folder(root: Path, size: int, classes: list[str] | None) -> SegmentData:
    """``root/images/*`` with ``root/masks/<same stem>.*``."""
    images_dir, masks_dir = root / "images", root / "masks"
    if not images_dir.is_dir() or not masks_dir.is_dir():
        raise DataError(f"{root}: expected images/ and masks/ folders (or a VOC folder with SegmentationClass)")
    masks_by_stem = {p.stem: p for p in masks_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES}
    pairs = [(p, masks_by_stem[p.stem]) for p in sorted(images_dir.iterdir())
             if p.suffix.lower() in IMAGE_SUFFIXES and p.stem in masks_by_stem]
    if not pairs:
        raise DataError(f"{root}: no image in images/ has a mask with the same name in masks/")
    imgs = np.stack([_read_image(i, size) for i, _ in pairs])
    raw = np.stack([_read_mask(m, size) for _, m in pairs])
    values = np.unique(raw)
    core = values[values != IGNORE] if len(values) > 2 else values   # {0, 255} masks are two classes
    if len(core) and core.max() < max(len(core), len(classes or ())) + 1:
        masks, n = raw, int(core.max()) + 1       # class ids already (255: ignored)
        names = classes or [str(v) for v in range(n)]
    else:
        masks, n = np.searchsorted(values, raw), len(values)   # other values: numbered in sorted order
        names = classes or [str(int(v)) for v in values]
    if len(names) < n:
        raise UserError(f"{root}: the masks have {n} classes but {len(names)} names were given")
    if len(names) < 2:
        raise DataError(f"{root}: the masks hold a single value; nothing to segment")
    return SegmentData(torch.from_numpy(imgs.copy()), torch.from_numpy(masks.astype(np.int64)), list(names))


def from_voc(root: Path, size: int, split: str, classes: list[str] | None) -> SegmentData:
    """A VOC folder: ``ImageSets/Segmentation/<split>.txt`` (else every mask) over SegmentationClass."""
    seg = root / "SegmentationClass"
    listing = root / "ImageSets" / "Segmentation" / f"{split}.txt"
    stems = listing.read_text().split() if listing.is_file() else sorted(p.stem for p in seg.glob("*.png"))
    if not stems:
        raise DataError(f"{root}: no masks in SegmentationClass")
    imgs = np.stack([_read_image(root / "JPEGImages" / f"{s}.jpg", size) for s in stems])
    masks = np.stack([_read_mask(seg / f"{s}.png", size) for s in stems])
    return SegmentData(torch.from_numpy(imgs.copy()), torch.from_numpy(masks), list(classes or VOC_CLASSES))


def load_train_val(cfg: SegmentConfig) -> tuple[SegmentData, SegmentData]:
    """Training and validation data of ``cfg`` (``val_fraction`` held out, seeded, unless VOC lists a val split)."""
    if cfg.data == "synthetic":
        return (synthetic_data(cfg.synthetic_train, cfg.imgsz, cfg.seed),
                synthetic_data(cfg.synthetic_val, cfg.imgsz, cfg.seed + 1_000_003))
    from cnnlab.paths import find_data

    root = find_data(cfg.data)
    if not root.is_dir():
        raise UserError(f"dataset not found: {cfg.data} (synthetic, an images/ + masks/ folder or a VOC folder)")
    if (root / "SegmentationClass").is_dir():
        if (root / "ImageSets" / "Segmentation" / "val.txt").is_file():
            return from_voc(root, cfg.imgsz, "train", cfg.classes), from_voc(root, cfg.imgsz, "val", cfg.classes)
        data = from_voc(root, cfg.imgsz, "all", cfg.classes)
    else:
        data = from_folder(root, cfg.imgsz, cfg.classes)
    n_val = max(1, round(len(data) * cfg.val_fraction))
    if n_val >= len(data):
        raise DataError(f"{cfg.data}: {len(data)} images are too few to hold out a validation split")
    perm = torch.randperm(len(data), generator=torch.Generator().manual_seed(cfg.seed))
    return data.subset(perm[n_val:]), data.subset(perm[:n_val])


class SegmentLoader(SeededLoader):
    """Batches ``(x, masks)``: x float32 normalised NCHW, masks int64 (N, S, S) flipped with their
    images; order and flips seeded per epoch (:class:`~cnnlab.tasks.dense.SeededLoader`)."""

    def targets(self, idx: torch.Tensor) -> torch.Tensor:
        return self.data.masks[idx].clone()

    def flip(self, targets: torch.Tensor, flip: torch.Tensor) -> torch.Tensor:
        targets[flip] = targets[flip].flip(-1)
        return targets
