"""Images for INT8 calibration and export checks, drawn from a run's dataset (``cnnlab.data``)."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from cnnlab.deploy.metadata import Preprocess
from cnnlab.errors import UserError


def _to_input(images: Any, pre: Preprocess) -> np.ndarray:
    """uint8 (N, C, H, W) -> float32 normalised at the model's input size."""
    import torch
    import torch.nn.functional as F

    x = torch.as_tensor(images).float().div_(255.0)
    if x.shape[1] != pre.in_chans:
        if x.shape[1] == 1 and pre.in_chans == 3:
            x = x.expand(-1, 3, -1, -1)
        elif x.shape[1] == 3 and pre.in_chans == 1:
            x = (x * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
        else:
            raise UserError(f"dataset images have {x.shape[1]} channels, the model expects {pre.in_chans}")
    if pre.img_size and tuple(x.shape[-2:]) != (pre.img_size, pre.img_size):
        x = F.interpolate(x, size=(pre.img_size, pre.img_size), mode="bilinear", align_corners=False,
                          antialias=True)
    mean = torch.tensor(pre.mean, dtype=torch.float32).view(1, -1, 1, 1)
    std = torch.tensor(pre.std, dtype=torch.float32).view(1, -1, 1, 1)
    return ((x - mean) / std).contiguous().numpy()


def dataset_sample(dataset: str, pre: Preprocess, n: int | None, *, split: str = "train",
                   data_dir: str | os.PathLike | None = None, options: dict[str, Any] | None = None,
                   seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` random images (all when None) of ``dataset``/``split`` as model input, with their labels."""
    from cnnlab.data import load_dataset

    # never downloads: calibration and checks use data that is already here
    ds = load_dataset(dataset, split=split, data_dir=data_dir, download=False, **(options or {}))
    total = len(ds)
    if total == 0:
        raise UserError(f"dataset {dataset!r} ({split}) is empty")
    rng = np.random.default_rng(seed)
    idx = np.arange(total) if n is None or n >= total else np.sort(rng.choice(total, size=n, replace=False))
    if hasattr(ds, "images"):
        images, labels = ds.images[idx], np.asarray(ds.labels)[idx]
    else:  # folder datasets read images on access
        import torch

        items = [ds[int(i)] for i in idx]
        images = torch.stack([torch.as_tensor(im) for im, _ in items])
        labels = np.asarray([int(lab) for _, lab in items])
    xs = [_to_input(images[i:i + 512], pre) for i in range(0, len(idx), 512)]
    return np.concatenate(xs), labels.astype(np.int64)


def run_dataset(config: dict[str, Any]) -> tuple[str | None, str | None, dict[str, Any]]:
    """(dataset name, data_dir, dataset options) recorded in a run's config."""
    return config.get("dataset"), config.get("data_dir"), dict(config.get("dataset_options") or {})
