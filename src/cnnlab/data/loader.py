"""Loaders: ``make_loader`` picks the in-memory tensor loader (ArrayDataset) or a torch DataLoader
(FolderDataset). Both move uint8 batches to the device and normalise + augment them there as batched
tensor ops; ``set_epoch(e)`` makes shuffling and augmentation a pure function of ``(seed, epoch)``."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from cnnlab.data.augment import AugmentConfig, BatchPipeline, resolve_augment
from cnnlab.data.dataset import ArrayDataset
from cnnlab.errors import DataError, UserError


def _rng(seed: int, epoch: int, batch: int, rank: int | None = None) -> np.random.Generator:
    """The generator of one batch (batch -1: the epoch's shuffle); ``rank``: one slice of it."""
    key = [int(seed) & 0xFFFFFFFF, int(epoch), int(batch) + 1] + ([int(rank) + 1] if rank is not None else [])
    return np.random.default_rng(key)


class _EpochLoader:
    """Shared parts: epoch counter, normalisation/augmentation pipeline, device."""

    def __init__(self, dataset: Any, batch_size: int, shuffle: bool, augment: Any, device: Any,
                 drop_last: bool, seed: int, num_classes: int | None, mean: Any, std: Any) -> None:
        if int(batch_size) < 1:
            raise UserError(f"batch size must be >= 1, got {batch_size}")
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.seed = int(seed)
        self.device = torch.device(device)
        self.augment: AugmentConfig | None = resolve_augment(augment)
        self.num_classes = int(num_classes) if num_classes else len(dataset.classes)
        self.mean = tuple(mean) if mean is not None else tuple(dataset.mean)
        self.std = tuple(std) if std is not None else tuple(dataset.std)
        self.pipeline = BatchPipeline(self.mean, self.std, self.augment, self.num_classes)
        self.epoch = 0
        self.rank, self.world = 0, 1

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose shuffle and augmentation the next iteration yields."""
        self.epoch = int(epoch)

    def shard(self, rank: int, world: int) -> None:
        """Yield only rank ``rank`` of ``world``'s rows of each (global) batch of ``batch_size`` images.

        The epoch's order and batches stay a pure function of (seed, epoch). In-memory data are
        augmented as the whole global batch and then sliced, so the global batches are those of one
        process; image folders augment each rank's slice with its own (seed, epoch, batch, rank) stream.
        """
        if not 0 <= rank < world:
            raise UserError(f"rank {rank} out of range for {world} processes")
        self.rank, self.world = int(rank), int(world)

    def __len__(self) -> int:
        from cnnlab.engine.distributed import sharded_len

        return sharded_len(len(self.dataset), self.batch_size, self.drop_last, self.world)

    def _order(self, epoch: int) -> np.ndarray:
        n = len(self.dataset)
        return _rng(self.seed, epoch, -1).permutation(n) if self.shuffle else np.arange(n)

    def _finish(self, images: torch.Tensor, labels: torch.Tensor, epoch: int, b: int) -> tuple[torch.Tensor, torch.Tensor]:
        images = images.to(self.device, non_blocking=True)
        labels = labels.to(self.device, non_blocking=True)
        rng = _rng(self.seed, epoch, b) if self.augment is not None else None
        return self.pipeline(images, labels, rng)


class ArrayLoader(_EpochLoader):
    """Batches from an in-memory ArrayDataset; the uint8 images live on the device (airbench style)."""

    def __init__(self, dataset: ArrayDataset, *args: Any, **kwargs: Any) -> None:
        super().__init__(dataset, *args, **kwargs)
        self._images = dataset.images.to(self.device)
        self._labels = dataset.labels.to(self.device)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        epoch = self.epoch
        order = torch.as_tensor(self._order(epoch), device=self.device)
        rows = slice(self.rank, None, self.world)
        for b in range(len(self)):
            idx = order[b * self.batch_size:(b + 1) * self.batch_size]
            if self.world > 1 and self.augment is None:   # per-image normalisation: slice first
                yield self._finish(self._images[idx[rows]], self._labels[idx[rows]], epoch, b)
            elif self.world > 1:                          # batch-level augmentation: the global batch
                x, y = self._finish(self._images[idx], self._labels[idx], epoch, b)
                yield x[rows], y[rows]
            else:
                yield self._finish(self._images[idx], self._labels[idx], epoch, b)
        self.epoch = epoch + 1


class FolderLoader(_EpochLoader):
    """A torch DataLoader over a FolderDataset (images read by workers), pipeline on the device."""

    def __init__(self, dataset: Any, *args: Any, num_workers: int | None = None, **kwargs: Any) -> None:
        super().__init__(dataset, *args, **kwargs)
        if num_workers is None:
            num_workers = min(4, max(0, (os.cpu_count() or 1) - 1))
        self._batches: list[list[int]] = []  # this rank's rows of the epoch's batches, filled in by __iter__
        self._loader = torch.utils.data.DataLoader(
            dataset, batch_sampler=self._batches, num_workers=int(num_workers),
            pin_memory=self.device.type == "cuda")

    def _finish(self, images: torch.Tensor, labels: torch.Tensor, epoch: int, b: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self.world == 1:
            return super()._finish(images, labels, epoch, b)
        images = images.to(self.device, non_blocking=True)
        labels = labels.to(self.device, non_blocking=True)
        rng = _rng(self.seed, epoch, b, self.rank) if self.augment is not None else None
        return self.pipeline(images, labels, rng)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        epoch = self.epoch
        order = self._order(epoch).tolist()
        self._batches[:] = [order[b * self.batch_size:(b + 1) * self.batch_size][self.rank::self.world]
                            for b in range(len(self))]
        it = iter(self._loader)
        for b in range(len(self)):
            try:
                images, labels = next(it)
            except DataError as e:  # from a worker: keep only the original one-line message
                raise DataError(_original_message(str(e))) from None
            yield self._finish(images, labels.to(torch.int64), epoch, b)
        self.epoch = epoch + 1


def _original_message(text: str) -> str:
    for line in reversed(text.strip().splitlines()):
        if "DataError: " in line:
            return line.split("DataError: ", 1)[1]
    return text.strip().splitlines()[0] if text.strip() else "unreadable data"


def make_loader(dataset: Any, batch_size: int, shuffle: bool, augment: AugmentConfig | dict | str | None = None,
                device: Any = "cpu", drop_last: bool = False, seed: int = 0, num_classes: int | None = None,
                mean: Any = None, std: Any = None, num_workers: int | None = None) -> ArrayLoader | FolderLoader:
    """Iterate ``(x, y)`` batches: x float32 normalised (N, C, H, W) on ``device``; y int64 (N,) or float32
    (N, num_classes) soft targets when mixup/cutmix fired. ``augment``: AugmentConfig, dict or preset name."""
    args = (batch_size, shuffle, augment, device, drop_last, seed, num_classes, mean, std)
    if isinstance(dataset, ArrayDataset):
        return ArrayLoader(dataset, *args)
    if isinstance(dataset, torch.utils.data.Dataset) and hasattr(dataset, "classes"):
        return FolderLoader(dataset, *args, num_workers=num_workers)
    raise UserError(f"make_loader needs an ArrayDataset or FolderDataset, not {type(dataset).__name__}")
