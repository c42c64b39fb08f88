"""MNIST and Fashion-MNIST from the four official idx files (``.gz`` or uncompressed)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cnnlab.data.download import RemoteFile
from cnnlab.data.idx import maybe_gunzip, parse_idx, read_file
from cnnlab.data.official import OfficialSource, check_labels
from cnnlab.errors import DataError

_MNIST_URLS = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/")
_FASHION_URLS = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",)

# file name -> official md5 (the same as torchvision's and the shared data's MD5SUMS)
MNIST_MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
FASHION_MNIST_MD5 = {
    "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
}
MNIST_CLASSES = [str(i) for i in range(10)]
FASHION_MNIST_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                         "Sneaker", "Bag", "Ankle boot"]
_SPLIT_PREFIX = {"train": "train", "test": "t10k"}


@dataclass(frozen=True)
class IdxSource(OfficialSource):
    """An MNIST-style dataset: train/t10k images and labels in idx format."""

    md5: dict[str, str]
    base_urls: tuple[str, ...]
    classes: tuple[str, ...]

    @property
    def remotes(self) -> tuple[RemoteFile, ...]:
        return tuple(RemoteFile(n, m, tuple(b + n for b in self.base_urls)) for n, m in self.md5.items())

    def _find_one(self, root: Path, filename: str) -> Path | None:
        for d in self.looked_in(root):
            for cand in (d / filename, d / filename.removesuffix(".gz")):
                if cand.is_file():
                    return cand
        return None

    def find(self, root: Path) -> list[Path] | None:
        found = [self._find_one(root, n) for n in self.md5]
        return None if any(f is None for f in found) else [f for f in found if f is not None]

    def missing(self, root: Path) -> list[RemoteFile]:
        return [r for r in self.remotes if self._find_one(root, r.name) is None]

    def decode(self, files: list[Path]) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        by_name = {f.name if f.name.endswith(".gz") else f.name + ".gz": f for f in files}
        arrays: dict[str, np.ndarray] = {}
        mismatch: list[str] = []
        for split, prefix in _SPLIT_PREFIX.items():
            img_path = by_name[f"{prefix}-images-idx3-ubyte.gz"]
            lab_path = by_name[f"{prefix}-labels-idx1-ubyte.gz"]
            images = self._read(img_path, mismatch)
            labels = self._read(lab_path, mismatch)
            if images.ndim != 3 or images.dtype != np.uint8 or images.shape[1:] != (28, 28):
                raise DataError(f"{img_path}: expected uint8 images of shape (N, 28, 28), "
                                f"found {images.dtype} {images.shape}")
            if labels.ndim != 1 or labels.dtype != np.uint8:
                raise DataError(f"{lab_path}: expected uint8 labels of shape (N,), found {labels.dtype} {labels.shape}")
            if len(labels) != len(images):
                raise DataError(f"{lab_path}: {len(labels)} labels for {len(images)} images in {img_path.name}")
            check_labels(labels, len(self.classes), str(lab_path))
            arrays[f"{split}_images"] = images[:, None]
            arrays[f"{split}_labels"] = labels.astype(np.int64)
        return arrays, {"classes": list(self.classes), "md5_mismatch": mismatch}

    def _read(self, path: Path, mismatch: list[str]) -> np.ndarray:
        raw = read_file(path)
        if path.suffix == ".gz" and hashlib.md5(raw).hexdigest() != self.md5.get(path.name):
            mismatch.append(path.name)
        return parse_idx(maybe_gunzip(raw, str(path)), str(path))


MNIST = IdxSource("mnist", "mnist", ("MNIST/raw", "MNIST", ""), MNIST_MD5, _MNIST_URLS, tuple(MNIST_CLASSES))
FASHION_MNIST = IdxSource("fashion_mnist", "fashion-mnist",
                          ("fashion_mnist", "FashionMNIST/raw", "FashionMNIST", "fashion"),
                          FASHION_MNIST_MD5, _FASHION_URLS, tuple(FASHION_MNIST_CLASSES))
