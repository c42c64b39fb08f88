"""The built-in datasets, registered by name (one entry each)."""

from __future__ import annotations

from typing import Any

from cnnlab.data.cifar import CIFAR10, CIFAR100
from cnnlab.data.mnist import FASHION_MNIST, MNIST
from cnnlab.data.official import decode_cached, ensure_files, to_array_dataset
from cnnlab.data.registry import DatasetEntry, register_dataset
from cnnlab.errors import UserError

_COMMON = ("cache", "mirrors", "quiet")


def _official(source: Any):
    def load(split: str, data_dir: Any, download: bool, cache: bool | None = None, mirrors: Any = None,
             quiet: bool = False, label_mode: str = "fine"):
        if label_mode not in ("fine", "coarse"):
            raise UserError(f"{source.name}: label_mode must be 'fine' or 'coarse', not {label_mode!r}")
        files = ensure_files(source, data_dir, download, mirrors=mirrors, quiet=quiet)
        decoded = decode_cached(source, files, cache=cache)
        if label_mode == "coarse" and getattr(source, "coarse", False):
            return to_array_dataset(source, decoded, split, "coarse_labels", "coarse_classes")
        return to_array_dataset(source, decoded, split)

    return load


def _digits(split: str, data_dir: Any, download: bool):
    from cnnlab.data.digits import load_digits_dataset

    return load_digits_dataset(split)


def _folder(split: str, data_dir: Any, download: bool, root: Any = None, **options: Any):
    from cnnlab.data.folder import load_folder

    root = root or data_dir
    if not root:
        raise UserError("folder dataset needs its folder: root=PATH (or --data-dir PATH)")
    return load_folder(root, split, **options)


register_dataset(DatasetEntry("mnist", "MNIST handwritten digits, 28x28 grey, 60k/10k (idx .gz)",
                              ("train", "test"), _official(MNIST), MNIST, _COMMON))
register_dataset(DatasetEntry("fashion_mnist", "Fashion-MNIST clothing, 28x28 grey, 60k/10k (idx .gz)",
                              ("train", "test"), _official(FASHION_MNIST), FASHION_MNIST, _COMMON))
register_dataset(DatasetEntry("cifar10", "CIFAR-10, 32x32 RGB, 10 classes, 50k/10k (python version)",
                              ("train", "test"), _official(CIFAR10), CIFAR10, _COMMON))
register_dataset(DatasetEntry("cifar100", "CIFAR-100, 32x32 RGB, 100 fine / 20 coarse classes, 50k/10k",
                              ("train", "test"), _official(CIFAR100), CIFAR100, (*_COMMON, "label_mode")))
register_dataset(DatasetEntry("digits", "scikit-learn 8x8 digits, bundled (no download), 1437/360",
                              ("train", "test"), _digits))
register_dataset(DatasetEntry("folder", "your images: root/<class>/<image>, optional train/ val/ test/",
                              ("train", "val", "test"), _folder, None,
                              ("root", "img_size", "in_chans", "in_memory", "max_memory_mb", "name", "workers")))
