"""In-memory datasets: whole small datasets as uint8 tensors (the fast path of the input pipeline)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch


@dataclass
class ArrayDataset:
    """A whole dataset in memory: ``images`` uint8 (N, C, H, W), ``labels`` int64 (N,)."""

    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    name: str
    mean: tuple[float, ...]
    std: tuple[float, ...]
    info: dict[str, Any] = field(default_factory=dict)  # source, split, notes (plain data)

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.ndim != 4:
            raise ValueError(f"images must be uint8 (N, C, H, W), got {self.images.dtype} {tuple(self.images.shape)}")
        if self.labels.dtype != torch.int64 or self.labels.shape != (self.images.shape[0],):
            raise ValueError("labels must be int64 (N,) matching images")

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.images[index], int(self.labels[index])

    def subset(self, indices: Sequence[int] | np.ndarray | torch.Tensor) -> ArrayDataset:
        """A dataset of the given rows (same classes and normalisation statistics)."""
        idx = torch.as_tensor(np.asarray(indices), dtype=torch.int64)
        return replace(self, images=self.images[idx], labels=self.labels[idx], info=dict(self.info))

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def in_chans(self) -> int:
        return int(self.images.shape[1])

    @property
    def img_size(self) -> int:
        return int(self.images.shape[-1])

    def __repr__(self) -> str:
        n, c, h, w = self.images.shape
        return (f"ArrayDataset(name={self.name!r}, split={self.info.get('split')!r}, n={n}, "
                f"shape=({c}, {h}, {w}), classes={len(self.classes)})")


def channel_stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Exact per-channel mean and std of uint8 images (N, C, H, W) on the [0, 1] scale (via histograms)."""
    if images.numel() == 0:
        c = int(images.shape[1]) if images.ndim == 4 else 1
        return (0.5,) * c, (0.5,) * c
    values = torch.arange(256, dtype=torch.float64) / 255.0
    means, stds = [], []
    for ch in range(images.shape[1]):
        hist = torch.zeros(256, dtype=torch.float64)
        for start in range(0, images.shape[0], 4096):  # chunks keep the int64 copy small
            chunk = images[start:start + 4096, ch].reshape(-1).to(torch.int64)
            hist += torch.bincount(chunk, minlength=256).to(torch.float64)
        total = hist.sum()
        mean = float((hist * values).sum() / total)
        var = float((hist * (values - mean) ** 2).sum() / total)
        means.append(round(mean, 6))
        stds.append(round(max(var, 1e-12) ** 0.5, 6))
    return tuple(means), tuple(stds)
