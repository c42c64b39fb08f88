"""Image folders (ImageFolder layout ``root/<class>/<image>``, optionally ``root/train|val|test/...``).

Small folders load into an :class:`ArrayDataset` (fast path); large ones stay on disk as a
:class:`FolderDataset`, read by a standard torch DataLoader. Images are resized to ``img_size``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cnnlab.data.dataset import ArrayDataset, channel_stats
from cnnlab.errors import DataError, UserError, first_line

IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
SPLIT_DIRS = {"train": ("train", "training"), "val": ("val", "valid", "validation"), "test": ("test", "testing")}
STATS_SAMPLE = 512          # images used for mean/std when not all training images are in memory
DEFAULT_MAX_MEMORY_MB = 1024


@dataclass
class FolderDataset(torch.utils.data.Dataset):
    """Images on disk, read and resized on access: ``ds[i] -> (uint8 (C, H, W) tensor, label)``."""

    samples: list[tuple[Path, int]]
    classes: list[str]
    name: str
    img_size: int
    in_chans: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    info: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        path, label = self.samples[index]
        return torch.from_numpy(read_image(path, self.img_size, self.in_chans)), label

    @property
    def labels(self) -> torch.Tensor:
        return torch.tensor([lab for _, lab in self.samples], dtype=torch.int64)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def subset(self, indices: Sequence[int] | np.ndarray | torch.Tensor) -> FolderDataset:
        idx = np.asarray(indices, dtype=np.int64).tolist()
        return FolderDataset([self.samples[i] for i in idx], self.classes, self.name, self.img_size,
                             self.in_chans, self.mean, self.std, dict(self.info))


def read_image(path: Path, img_size: int, in_chans: int = 3) -> np.ndarray:
    """Read one image as uint8 (C, H, W), resized to ``img_size``.

    A broken file (not an image, truncated PNG/JPEG, an image too large to decode safely) is a one-line
    DataError naming it; it is never skipped, so a dataset's size and labels are what the folder says.
    """
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.load()
            im = im.convert("L" if in_chans == 1 else "RGB")
            if im.size != (img_size, img_size):
                im = im.resize((img_size, img_size), Image.Resampling.BILINEAR)
            arr = np.asarray(im, dtype=np.uint8)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise DataError(f"{path}: cannot read image ({first_line(e)})") from None
    return arr[None].copy() if arr.ndim == 2 else np.ascontiguousarray(arr.transpose(2, 0, 1))


def split_dirs(root: Path) -> dict[str, Path]:
    """The split folders present under ``root`` (``train``, ``val``, ``test``)."""
    found = {split: next((root / n for n in names if (root / n).is_dir()), None)
             for split, names in SPLIT_DIRS.items()}
    return {split: d for split, d in found.items() if d is not None}


def _class_dirs(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir() if p.is_dir() and not p.name.startswith("."))


def scan(root: Path, split: str) -> tuple[list[tuple[Path, int]], list[str], dict[str, Path]]:
    """Samples of ``split`` and the class list (the union over all split folders, sorted).

    Refused before any image is read: fewer than 2 classes (a classifier of one class learns nothing
    and scores 1.0), a class folder without images, a split without images, a training split whose
    images are all of one class.
    """
    if not root.is_dir():
        raise UserError(f"image folder not found: {root}")
    splits = split_dirs(root)
    if splits:
        classes = sorted({c for d in splits.values() for c in _class_dirs(d)})
        if split not in splits:
            raise UserError(f"{root}: no {split}/ folder (found {', '.join(s + '/' for s in splits)})")
        base = splits[split]
    else:
        classes = _class_dirs(root)
        if split != "train":
            raise UserError(f"{root}: no {split}/ folder; a folder without train/ val/ test/ holds one "
                            f"split (use split='train' and a validation split)")
        base = root
        splits = {"train": root}
    if not classes:
        raise DataError(f"{root}: no class folders (expected root/<class>/<image>)")
    if len(classes) < 2:
        raise UserError(f"{root}: only one class folder ({classes[0]}/); a classifier needs at least 2 classes "
                        "(root/<class>/<image>, one folder per class)")
    samples: list[tuple[Path, int]] = []
    for label, cls in enumerate(classes):
        d = base / cls
        if d.is_dir():
            files = sorted(p for p in d.rglob("*") if p.suffix.lower() in IMG_EXTENSIONS and p.is_file())
            if not files:
                raise DataError(f"{d}: empty class folder (no {', '.join(IMG_EXTENSIONS)} images); add images "
                                "or remove the folder")
            samples.extend((p, label) for p in files)
    if not samples:
        raise DataError(f"{base}: no images found (extensions {', '.join(IMG_EXTENSIONS)})")
    if split == "train" and len({lab for _, lab in samples}) < 2:
        raise UserError(f"{base}: all training images are of class {classes[samples[0][1]]!r}; a classifier "
                        "needs training images of at least 2 classes")
    return samples, classes, splits


def load_folder(root: str | os.PathLike, split: str = "train", img_size: int = 32, in_chans: int = 3,
                in_memory: bool | None = None, max_memory_mb: int = DEFAULT_MAX_MEMORY_MB,
                name: str | None = None, workers: int = 4) -> ArrayDataset | FolderDataset:
    """Load an image folder; ``in_memory=None`` loads it into memory when it fits in ``max_memory_mb``."""
    root = Path(root).expanduser()
    img_size, in_chans = int(img_size), int(in_chans)
    if img_size < 1 or in_chans not in (1, 3):
        raise UserError(f"folder dataset: img_size must be >= 1 and in_chans 1 or 3 (got {img_size}, {in_chans})")
    samples, classes, splits = scan(root, split)
    name = name or root.name
    info = {"split": split, "source": str(root), "num_images": len(samples)}
    nbytes = len(samples) * in_chans * img_size * img_size
    if in_memory is None:
        in_memory = nbytes <= max_memory_mb * 2**20
    stats_from = samples if split == "train" or "train" not in splits else scan(root, "train")[0]
    if in_memory:
        images = _read_all([p for p, _ in samples], img_size, in_chans, workers)
        labels = torch.tensor([lab for _, lab in samples], dtype=torch.int64)
        mean, std = channel_stats(images) if stats_from is samples else _sample_stats(stats_from, img_size, in_chans)
        return ArrayDataset(images, labels, classes, name, mean, std, info)
    mean, std = _sample_stats(stats_from, img_size, in_chans)
    return FolderDataset(samples, classes, name, img_size, in_chans, mean, std, info)


def _read_all(paths: list[Path], img_size: int, in_chans: int, workers: int) -> torch.Tensor:
    out = np.empty((len(paths), in_chans, img_size, img_size), dtype=np.uint8)

    def one(i: int) -> None:
        out[i] = read_image(paths[i], img_size, in_chans)

    with ThreadPoolExecutor(max(1, workers)) as pool:
        list(pool.map(one, range(len(paths))))  # re-raises the first error
    return torch.from_numpy(out)


def _sample_stats(samples: list[tuple[Path, int]], img_size: int,
                  in_chans: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Mean/std from up to STATS_SAMPLE evenly spaced (training) images."""
    pick = np.unique(np.linspace(0, len(samples) - 1, min(STATS_SAMPLE, len(samples))).round().astype(int))
    return channel_stats(_read_all([samples[i][0] for i in pick], img_size, in_chans, 4))
