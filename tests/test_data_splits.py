"""validation_split and kfold_splits: stratified, seeded, disjoint, covering."""

from __future__ import annotations

import numpy as np
import pytest

from cnnlab.data import kfold_splits, validation_split
from cnnlab.errors import UserError


def test_validation_split_is_stratified_and_seeded():
    labels = np.repeat(np.arange(4), [100, 50, 30, 20])
    tr, va = validation_split(labels, 0.2, seed=1)
    assert len(va) == 40 and len(tr) == 160
    assert set(tr).isdisjoint(va) and set(tr) | set(va) == set(range(200))
    assert np.bincount(labels[va]).tolist() == [20, 10, 6, 4]  # class proportions kept
    tr2, va2 = validation_split(labels, 0.2, seed=1)
    assert np.array_equal(va, va2) and np.array_equal(tr, tr2)
    _, va3 = validation_split(labels, 0.2, seed=2)
    assert not np.array_equal(va, va3)
    import torch

    _, va4 = validation_split(torch.as_tensor(labels), 0.2, seed=1)  # tensors accepted
    assert np.array_equal(va, va4)


def test_validation_split_bad_fraction():
    with pytest.raises(UserError, match="between 0 and 1"):
        validation_split([0, 1, 0, 1], 1.5)
    tr, va = validation_split([0, 0, 0, 1], 0.5, seed=0)  # a singleton class: falls back to a random split
    assert len(va) == 2 and len(tr) == 2


def test_kfold_disjoint_covering_stratified():
    labels = np.repeat(np.arange(3), [30, 20, 10])
    folds = kfold_splits(labels, 5, seed=0)
    assert len(folds) == 5
    vals = np.concatenate([va for _, va in folds])
    assert sorted(vals.tolist()) == list(range(60))  # every sample validates exactly once
    for tr, va in folds:
        assert set(tr).isdisjoint(va) and len(tr) + len(va) == 60
        assert np.bincount(labels[va], minlength=3).tolist() == [6, 4, 2]
    again = kfold_splits(labels, 5, seed=0)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(folds, again, strict=True))
    with pytest.raises(UserError, match="k-fold"):
        kfold_splits(labels, 1)
