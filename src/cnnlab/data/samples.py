"""Held-out images of a run's own dataset (its test split, else the validation images it kept back),
for pictures that should show what the model was trained on (Grad-CAM, feature maps, reports)."""

from __future__ import annotations

from typing import Any

import numpy as np

from cnnlab.errors import UserError


def held_out_images(config: dict[str, Any], n: int, seed: int = 0) -> tuple[list[np.ndarray], list[int],
                                                                           list[str], str]:
    """``n`` seeded picks of the run's test images (HxWxC uint8), their labels, the classes, the split."""
    from cnnlab.data import kfold_splits, load_dataset, validation_split

    name = config.get("dataset")
    if not name:
        raise UserError("the run's config names no dataset")
    opts = dict(config.get("dataset_options") or {})
    if name == "folder" and config.get("img_size"):
        opts.setdefault("img_size", config["img_size"])
    data_dir = config.get("data_dir")
    try:
        ds, split = load_dataset(name, split="test", data_dir=data_dir, **opts), "test"
        idx = np.arange(len(ds))
    except UserError:
        ds, split = load_dataset(name, split="train", data_dir=data_dir, **opts), "validation"
        labels = np.asarray(ds.labels)
        fraction = float(config.get("validation_split") or 0.0)
        seed_ = int(config.get("seed", 0))
        if int(config.get("folds") or 0) > 1:
            idx = kfold_splits(labels, int(config["folds"]), seed=seed_)[int(config.get("fold") or 0)][1]
        elif fraction > 0:
            _, idx = validation_split(labels, fraction, seed=seed_)
        else:
            idx, split = np.arange(len(labels)), "train"
    if len(idx) == 0:
        raise UserError(f"{name} has no {split} images to show")
    pick = np.sort(np.random.default_rng(seed).choice(np.asarray(idx), min(n, len(idx)), replace=False))
    items = [ds[int(i)] for i in pick]
    images = [np.ascontiguousarray(np.asarray(img).transpose(1, 2, 0)) for img, _ in items]
    return images, [int(label) for _, label in items], list(ds.classes), split
