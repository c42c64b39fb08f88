"""Seeds, threads and per-epoch seeding: what makes a run repeatable and a resume exact."""

from __future__ import annotations

import contextlib
import os
import random
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed Python, NumPy and torch; optionally make torch use deterministic algorithms only."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True


def epoch_seed(seed: int, epoch: int) -> int:
    """Seed of the global RNGs during ``epoch`` (dropout, stochastic depth...): a pure function."""
    return (seed * 1_000_003 + epoch * 7919) % 2**31


def set_loader_epoch(loader: Any, epoch: int) -> None:
    """Call ``set_epoch`` on the loader (or its sampler): order and augmentation follow (seed, epoch)."""
    for obj in (loader, getattr(loader, "sampler", None), getattr(loader, "batch_sampler", None)):
        if obj is not None and hasattr(obj, "set_epoch"):
            obj.set_epoch(epoch)
            return


@contextlib.contextmanager
def run_context(threads: int | None, deterministic: bool = False) -> Iterator[None]:
    """Thread count and determinism for one run, restored afterwards (the caller's settings win back)."""
    before = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    if threads:
        torch.set_num_threads(int(threads))
    try:
        yield
    finally:
        torch.set_num_threads(before[0])
        torch.use_deterministic_algorithms(before[1])
