"""The shared real data (CNNLAB_DATA=../shared/data): counts, shapes, label ranges. CIFAR-10 uses the
decoded cache after its first load (the .tar.xz takes seconds to decompress)."""

from __future__ import annotations

import warnings

import pytest
import torch

from cnnlab.data import DataChecksumWarning, load_dataset

pytestmark = pytest.mark.realdata


@pytest.mark.parametrize("name,folder", [("mnist", "mnist"), ("fashion_mnist", "fashion-mnist")])
def test_mnist_family(shared_data, name, folder):
    root = shared_data(folder).parent
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataChecksumWarning)  # byte-identical to the official files
        train = load_dataset(name, "train", data_dir=root, download=False)
        test = load_dataset(name, "test", data_dir=root, download=False)
    assert (len(train), len(test)) == (60000, 10000)
    assert train.images.shape[1:] == (1, 28, 28) and train.images.dtype == torch.uint8
    assert train.labels.bincount().tolist() == [int(c) for c in train.labels.bincount()] and train.labels.max() == 9
    assert train.labels.min() == 0 and len(train.classes) == 10
    assert 0.1 < train.mean[0] < 0.35 and 0.25 < train.std[0] < 0.4


def test_cifar10_shared_archive(shared_data):
    root = shared_data("cifar10/cifar-10-python.tar.xz").parent.parent
    with pytest.warns(DataChecksumWarning, match="differ from the official md5"):  # placeholder file names
        test = load_dataset("cifar10", "test", data_dir=root, download=False)
        train = load_dataset("cifar10", "train", data_dir=root, download=False)
    assert (len(train), len(test)) == (50000, 10000)
    assert train.images.shape[1:] == (3, 32, 32)
    assert train.labels.bincount().tolist() == [5000] * 10 and test.labels.bincount().tolist() == [1000] * 10
    assert test.classes[0] == "airplane" and test.classes[9] == "truck"
    assert train.mean == pytest.approx((0.4914, 0.4822, 0.4465), abs=1e-3)
