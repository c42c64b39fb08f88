"""The datasets and loaders of a classification run: train (minus validation), validation and test."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cnnlab.config import TrainConfig
from cnnlab.errors import UserError

# -----------------------------------------------------------------------------------------------
# data


@dataclass
class DataBundle:
    train: Any
    val: Any | None
    test: Any | None
    classes: list[str]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    in_chans: int
    img_size: int
    num_train: int
    num_val: int
    train_set: Any = None   # the training images (no augmentation), e.g. to fit ZCA whitening


def _labels(ds: Any) -> np.ndarray:
    for attr in ("labels", "targets"):
        if hasattr(ds, attr):
            return np.asarray(torch.as_tensor(getattr(ds, attr)))
    raise UserError(f"dataset {getattr(ds, 'name', ds)!r} has no labels")


def _dataset_options(cfg: TrainConfig) -> dict[str, Any]:
    opts = dict(cfg.dataset_options)
    is_folder = cfg.dataset == "folder" or Path(str(cfg.dataset)).expanduser().is_dir()
    if cfg.img_size and is_folder:
        opts.setdefault("img_size", cfg.img_size)
    return opts


def _shape(ds: Any) -> tuple[int, int]:
    """(in_chans, img_size) of a dataset."""
    if hasattr(ds, "images"):
        return int(ds.images.shape[1]), int(ds.images.shape[-1])
    return int(getattr(ds, "in_chans", 3)), int(getattr(ds, "img_size", 0))


def load_split(name: str, split: str, data_dir: str | None, options: dict[str, Any]) -> Any:
    from cnnlab.data import load_dataset

    return load_dataset(name, split=split, data_dir=data_dir, **options)


def build_data(cfg: TrainConfig, device: torch.device | str = "cpu",
               norm: dict[str, float] | None = None) -> DataBundle:
    """Datasets and loaders of a run: train (minus validation), validation and test.

    ``norm`` ({"mean": m, "std": s}) replaces the dataset's own statistics, for models that normalise
    their input themselves (a transfer model takes [0, 1] pixels).
    """
    from cnnlab.data import kfold_splits, make_loader, validation_split

    opts = _dataset_options(cfg)
    full = load_split(cfg.dataset, "train", cfg.data_dir, opts)
    if cfg.subset is not None and cfg.subset < len(full):
        # the labelled pool: a stratified, seeded subset; validation is then split from it
        pool = _stratified_subset(_labels(full), cfg.subset, cfg.seed)
        full = full.subset(pool)
    labels = _labels(full)
    if val_from_folder(cfg, opts):  # an image folder's own val/ validates; train/ is all training
        train_idx, val_idx = np.arange(len(labels)), None
        val_ds = _optional_split(cfg, "val", opts)
    else:
        if cfg.folds:
            train_idx, val_idx = kfold_splits(labels, cfg.folds, seed=cfg.seed)[cfg.fold]
        elif cfg.validation_split > 0:
            train_idx, val_idx = validation_split(labels, cfg.validation_split, seed=cfg.seed)
        else:
            train_idx, val_idx = np.arange(len(labels)), None
        val_ds = full.subset(val_idx) if val_idx is not None and len(val_idx) else None
    train_ds = full.subset(np.asarray(train_idx))
    test_ds = _optional_split(cfg, "test", opts) if cfg.test_eval else None
    if test_ds is not None and cfg.test_limit is not None and cfg.test_limit < len(test_ds):
        test_ds = test_ds.subset(_stratified_subset(_labels(test_ds), cfg.test_limit, cfg.seed))
    classes = list(full.classes)
    mean, std = tuple(full.mean), tuple(full.std)
    if norm is not None:
        mean, std = (float(norm["mean"]),) * len(mean), (float(norm["std"]),) * len(std)
    augment = cfg.augment or None
    common = {"device": str(device), "num_classes": len(classes), "mean": mean, "std": std,
              "num_workers": cfg.workers}
    train = make_loader(train_ds, cfg.batch, shuffle=True, augment=augment, seed=cfg.seed, **common)
    eval_batch = max(cfg.batch, 256)
    val = make_loader(val_ds, eval_batch, shuffle=False, **common) if val_ds is not None else None
    test = make_loader(test_ds, eval_batch, shuffle=False, **common) if test_ds is not None else None
    in_chans, img_size = _shape(full)
    if cfg.img_size and img_size and cfg.img_size != img_size:
        raise UserError(f"{cfg.dataset} images are {img_size} px; img_size resizes image folders only "
                        f"(got img_size {cfg.img_size})")
    return DataBundle(train, val, test, classes, mean, std, in_chans, cfg.img_size or img_size,
                      len(train_ds), len(val_ds) if val_ds is not None else 0, train_ds)


def _stratified_subset(labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """``n`` indices with the class proportions of ``labels`` (seeded, sorted)."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(labels))
    counts = np.bincount(labels)
    stratify = labels if n >= len(counts) and counts.min() >= 2 else None
    keep, _ = train_test_split(idx, train_size=n, random_state=seed, stratify=stratify)
    return np.sort(keep)


def folder_root(dataset: str, opts: dict[str, Any], data_dir: str | None) -> Path | None:
    """The root of an image-folder dataset (``folder`` with ``root``/``data_dir``, or a folder path), else None."""
    name = str(dataset)
    if name == "folder":
        root = opts.get("root") or data_dir
        return Path(str(root)).expanduser() if root else None
    if name not in _registered() and Path(name).expanduser().is_dir():
        return Path(name).expanduser()
    return None


def _registered() -> list[str]:
    from cnnlab.data.registry import list_datasets

    return list_datasets()


def has_split(dataset: str, split: str, opts: dict[str, Any], data_dir: str | None) -> bool:
    """Whether the dataset has its own ``split`` (an image folder: a ``train/``/``val/``/``test/`` folder)."""
    from cnnlab.data.registry import get_entry

    root = folder_root(dataset, opts, data_dir)
    if root is not None:
        from cnnlab.data.folder import split_dirs

        return root.is_dir() and split in split_dirs(root)
    return split in get_entry(str(dataset)).splits


def val_from_folder(cfg: TrainConfig, opts: dict[str, Any]) -> bool:
    """One meaning of an image folder's splits for train, evaluate and compare: with a ``val/`` folder
    beside ``train/`` the run validates on ``val/`` (k-fold runs still split ``train/``)."""
    return not cfg.folds and folder_root(cfg.dataset, opts, cfg.data_dir) is not None and has_split(
        cfg.dataset, "val", opts, cfg.data_dir)


def run_validation_set(cfg: TrainConfig, opts: dict[str, Any]) -> Any:
    """The validation images of a run, exactly as it validated on them: an image folder's ``val/``, else
    the seeded split (or k-fold fold) of the training set, after ``subset``."""
    from cnnlab.data import kfold_splits, validation_split

    if val_from_folder(cfg, opts):
        return load_split(cfg.dataset, "val", cfg.data_dir, opts)
    full = load_split(cfg.dataset, "train", cfg.data_dir, opts)
    if cfg.subset is not None and cfg.subset < len(full):
        full = full.subset(_stratified_subset(_labels(full), cfg.subset, cfg.seed))
    if cfg.folds:
        return full.subset(kfold_splits(_labels(full), cfg.folds, seed=cfg.seed)[cfg.fold][1])
    if cfg.validation_split > 0:
        return full.subset(validation_split(_labels(full), cfg.validation_split, seed=cfg.seed)[1])
    raise UserError("the run was trained without a validation split (validation_split 0)")


def _optional_split(cfg: TrainConfig, split: str, opts: dict[str, Any]) -> Any | None:
    """The ``split`` of the run's dataset, or None when the dataset has no such split."""
    if not has_split(cfg.dataset, split, opts, cfg.data_dir):
        return None
    return load_split(cfg.dataset, split, cfg.data_dir, opts)


