"""make_loader: normalised batches, set_epoch determinism (resume equality), soft targets."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cnnlab.data import ArrayDataset, ArrayLoader, channel_stats, load_dataset, make_loader
from cnnlab.errors import UserError


def _dataset(n=50, c=3, size=8, seed=0):
    rng = np.random.default_rng(seed)
    images = torch.from_numpy(rng.integers(0, 256, (n, c, size, size), dtype=np.uint8))
    mean, std = channel_stats(images)
    return ArrayDataset(images, torch.arange(n) % 5, [f"k{i}" for i in range(5)], "toy", mean, std)


def test_batches_are_normalised_and_complete():
    ds = _dataset()
    loader = make_loader(ds, 16, shuffle=True, seed=0)
    assert isinstance(loader, ArrayLoader) and len(loader) == 4
    xs, ys = zip(*loader, strict=True)
    assert [len(x) for x in xs] == [16, 16, 16, 2]
    x = torch.cat(xs)
    assert x.dtype == torch.float32 and x.shape == (50, 3, 8, 8)
    assert torch.allclose(x.mean((0, 2, 3)), torch.zeros(3), atol=1e-4)
    assert torch.allclose(x.std((0, 2, 3), unbiased=False), torch.ones(3), atol=1e-3)
    assert sorted(torch.cat(ys).tolist()) == sorted(ds.labels.tolist())
    assert len(make_loader(ds, 16, shuffle=False, drop_last=True)) == 3
    plain = next(iter(make_loader(ds, 50, shuffle=False)))[0]
    expected = (ds.images.float() / 255 - torch.tensor(ds.mean).view(1, 3, 1, 1)) / torch.tensor(ds.std).view(1, 3, 1, 1)
    assert torch.allclose(plain, expected, atol=1e-5)


def _epoch(loader):
    return [(x.clone(), y.clone()) for x, y in loader]


def _same(a, b):
    return all(torch.equal(x1, x2) and torch.equal(y1, y2) for (x1, y1), (x2, y2) in zip(a, b, strict=True))


def test_set_epoch_makes_batches_a_function_of_seed_and_epoch():
    ds = _dataset()
    aug = {"preset": "standard", "cutout": 3, "mixup_alpha": 0.4, "mix_prob": 0.5}
    uninterrupted = make_loader(ds, 8, shuffle=True, augment=aug, seed=7)
    epochs = [_epoch(uninterrupted) for _ in range(3)]  # the epoch advances by itself
    resumed = make_loader(ds, 8, shuffle=True, augment=aug, seed=7)
    resumed.set_epoch(2)
    assert _same(_epoch(resumed), epochs[2])
    resumed.set_epoch(0)
    assert _same(_epoch(resumed), epochs[0])
    assert not _same(epochs[0], epochs[1])
    other_seed = make_loader(ds, 8, shuffle=True, augment=aug, seed=8)
    assert not _same(_epoch(other_seed), epochs[0])
    kinds = {y.dtype for _, y in epochs[0] + epochs[1] + epochs[2]}
    assert kinds == {torch.int64, torch.float32}  # mixed batches carry soft targets, others hard labels


def test_soft_targets_shape_and_num_classes():
    ds = _dataset()
    loader = make_loader(ds, 10, shuffle=False, augment={"mixup_alpha": 0.2}, num_classes=7)
    x, y = next(iter(loader))
    assert y.shape == (10, 7) and torch.allclose(y.sum(1), torch.ones(10))


def test_digits_end_to_end_and_bad_input():
    train = load_dataset("digits", "train")
    test = load_dataset("digits", "test")
    assert (len(train), len(test)) == (1437, 360) and train.images.shape[1:] == (1, 8, 8)
    assert set(train.labels.tolist()) == set(range(10)) and train.images.dtype == torch.uint8
    assert int(train.images.max()) == 255
    again = load_dataset("digits", "test")
    assert torch.equal(again.labels, test.labels)  # the embedded split never changes
    x, y = next(iter(make_loader(train, 64, shuffle=True, augment="standard", seed=0)))
    assert x.shape == (64, 1, 8, 8) and y.shape == (64,)
    with pytest.raises(UserError, match="batch size"):
        make_loader(train, 0, shuffle=True)
    from cnnlab.data.registry import get_entry

    assert get_entry("CIFAR-10").name == "cifar10" and get_entry("FashionMNIST").name == "fashion_mnist"
    with pytest.raises(UserError, match="unknown dataset 'mnits'; did you mean mnist"):
        load_dataset("mnits")
    with pytest.raises(UserError, match="splits train, test"):
        load_dataset("digits", "val")
    with pytest.raises(UserError, match="unknown option"):
        load_dataset("digits", img_size=32)
    sub = train.subset([0, 5, 7])
    assert len(sub) == 3 and torch.equal(sub.labels, train.labels[[0, 5, 7]])
