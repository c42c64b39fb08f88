"""Writers of official dataset files (idx, CIFAR python batches) for the data tests."""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from cnnlab.data.cifar import CifarSource
from cnnlab.data.idx import _IDX_DTYPES
from cnnlab.io import atomic_write_bytes


def write_idx(path: str | Path, array: np.ndarray, compress: bool | None = None) -> Path:
    """Write an array as an idx file (gzipped when the name ends in .gz)."""
    path = Path(path)
    arr = np.asarray(array)
    codes = {np.dtype(v).newbyteorder("="): k for k, v in _IDX_DTYPES.items()}
    code = codes[arr.dtype.newbyteorder("=")]
    header = bytes([0, 0, code, arr.ndim]) + np.asarray(arr.shape, dtype=">u4").tobytes()
    data = header + arr.astype(_IDX_DTYPES[code]).tobytes()
    if compress if compress is not None else path.suffix == ".gz":
        data = gzip.compress(data, mtime=0)
    return atomic_write_bytes(path, data)


def write_cifar_folder(folder: str | Path, source: CifarSource, splits: dict[str, tuple[np.ndarray, ...]],
                       classes: list[str], coarse_classes: list[str] | None = None) -> Path:
    """Write batch files in the official python format (protocol 2 pickles).

    ``splits`` maps each batch file name to ``(images uint8 (N, 3, 32, 32), labels[, coarse labels])``.
    """
    folder = Path(folder)
    for name, arrays in splits.items():
        images = np.asarray(arrays[0], np.uint8)
        d: dict[str, Any] = {"batch_label": name, "data": images.reshape(len(images), -1),
                             source.label_key: [int(x) for x in arrays[1]],
                             "filenames": [f"img_{i}.png" for i in range(len(arrays[0]))]}
        if source.coarse:
            d["coarse_labels"] = [int(x) for x in arrays[2]]
        atomic_write_bytes(folder / name, pickle.dumps(d, protocol=2))
    meta: dict[str, Any] = {source.names_key: list(classes)}
    if source.coarse:
        meta["coarse_label_names"] = list(coarse_classes or [])
    atomic_write_bytes(folder / source.meta_file, pickle.dumps(meta, protocol=2))
    return folder
