"""Validation and k-fold splits: stratified (class proportions kept) and seeded."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cnnlab.errors import UserError


def _labels_array(labels: Sequence[int] | np.ndarray) -> np.ndarray:
    if hasattr(labels, "detach"):  # torch tensor
        labels = labels.detach().cpu().numpy()
    arr = np.asarray(labels)
    if arr.ndim != 1:
        raise UserError(f"labels must be one-dimensional, got shape {arr.shape}")
    return arr


def validation_split(labels: Sequence[int] | np.ndarray, fraction: float,
                     seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Stratified, seeded split like Keras' ``validation_split``: ``(train_idx, val_idx)``, sorted.

    Each class keeps its proportion (every class with at least two samples gets at least one validation
    sample when the fraction allows); the same labels, fraction and seed give the same split.
    """
    from sklearn.model_selection import StratifiedShuffleSplit, train_test_split

    y = _labels_array(labels)
    n = len(y)
    if not 0.0 < float(fraction) < 1.0:
        raise UserError(f"validation fraction must be between 0 and 1, got {fraction}")
    n_val = int(round(n * float(fraction)))
    if n_val < 1 or n_val >= n:
        raise UserError(f"validation fraction {fraction} of {n} samples leaves an empty split")
    idx = np.arange(n)
    _, counts = np.unique(y, return_counts=True)
    if counts.min() < 2 or n_val < len(counts) or n - n_val < len(counts):
        # too few samples per class to stratify: a seeded random split instead
        tr, va = train_test_split(idx, test_size=n_val, random_state=seed, shuffle=True)
    else:
        sss = StratifiedShuffleSplit(n_splits=1, test_size=n_val, random_state=seed)
        tr, va = next(sss.split(idx, y))
    return np.sort(tr).astype(np.int64), np.sort(va).astype(np.int64)


def kfold_splits(labels: Sequence[int] | np.ndarray, k: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """``k`` stratified folds: ``[(train_idx, val_idx), ...]``; validation parts are disjoint and cover all."""
    import warnings

    from sklearn.model_selection import StratifiedKFold

    y = _labels_array(labels)
    k = int(k)
    if k < 2 or k > len(y):
        raise UserError(f"k-fold needs 2 <= k <= number of samples ({len(y)}), got k={k}")
    splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    with warnings.catch_warnings():  # classes smaller than k are spread as evenly as possible
        warnings.filterwarnings("ignore", message="The least populated class")
        folds = list(splitter.split(np.zeros(len(y)), y))
    return [(np.sort(tr).astype(np.int64), np.sort(va).astype(np.int64)) for tr, va in folds]
