"""scikit-learn's bundled 8x8 digits: the embedded default dataset (no download, 1,797 images)."""

from __future__ import annotations

import numpy as np
import torch

from cnnlab.data.dataset import ArrayDataset, channel_stats
from cnnlab.errors import UserError

TEST_FRACTION = 0.2   # stratified 80/20 split, seeded, so train/test never change between runs
SPLIT_SEED = 0


def load_digits_dataset(split: str = "train") -> ArrayDataset:
    """Digits as uint8 (N, 1, 8, 8) images (pixel values 0..16 scaled to 0..255); train 1,437 / test 360."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    if split not in ("train", "test"):
        raise UserError(f"digits has splits train and test, not {split!r}")
    bunch = load_digits()
    images = np.round(bunch.images * (255.0 / 16.0)).astype(np.uint8)[:, None]
    labels = bunch.target.astype(np.int64)
    train_idx, test_idx = train_test_split(np.arange(len(labels)), test_size=TEST_FRACTION,
                                           stratify=labels, random_state=SPLIT_SEED)
    train_idx, test_idx = np.sort(train_idx), np.sort(test_idx)
    idx = train_idx if split == "train" else test_idx
    mean, std = channel_stats(torch.from_numpy(images[train_idx]))
    return ArrayDataset(torch.from_numpy(images[idx].copy()), torch.from_numpy(labels[idx].copy()),
                        [str(i) for i in range(10)], "digits", mean, std,
                        {"split": split, "source": "sklearn.datasets.load_digits (bundled)"})
