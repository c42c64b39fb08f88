"""CIFAR-10 and CIFAR-100, python version: the official ``.tar.gz`` (or a re-compressed ``.tar.xz``)
or the extracted ``cifar-10-batches-py/`` / ``cifar-100-python/`` folder. Pickles are read with the
restricted unpickler; structure (shapes, counts, label range) is validated."""

from __future__ import annotations

import hashlib
import lzma
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cnnlab.data.download import RemoteFile
from cnnlab.data.idx import read_file
from cnnlab.data.official import OfficialSource
from cnnlab.data.safe_pickle import safe_loads
from cnnlab.errors import DataError, first_line

_ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar.xz", ".tar.bz2", ".tar")
_MAX_MEMBER = 1 << 29   # the largest official member (CIFAR-100 train) is 155 MB; a bigger size is forged


@dataclass(frozen=True)
class CifarSource(OfficialSource):
    """One CIFAR variant: its batch files (name -> official md5), meta file and label keys."""

    extracted: str                 # folder name inside the archive
    archive_stem: str              # e.g. cifar-10-python
    archive_md5: str
    url: str
    train_files: tuple[str, ...]
    test_files: tuple[str, ...]
    meta_file: str
    md5: dict[str, str]
    label_key: str                 # "labels" or "fine_labels"
    names_key: str                 # "label_names" or "fine_label_names"
    num_classes: int
    coarse: bool = False           # CIFAR-100 also has coarse labels (20 superclasses)

    @property
    def remotes(self) -> tuple[RemoteFile, ...]:
        return (RemoteFile(f"{self.archive_stem}.tar.gz", self.archive_md5, (self.url,)),)

    def find(self, root: Path) -> list[Path] | None:
        for d in self.looked_in(root):
            ext = d / self.extracted
            if ext.is_dir() and all((ext / f).is_file() for f in self._members()):
                return [ext]
            for suffix in _ARCHIVE_SUFFIXES:
                if (d / (self.archive_stem + suffix)).is_file():
                    return [d / (self.archive_stem + suffix)]
        return None

    def _members(self) -> tuple[str, ...]:
        return (*self.train_files, *self.test_files, self.meta_file)

    def decode(self, files: list[Path]) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        src = files[0]
        raw = {m: read_file(src / m) for m in self._members()} if src.is_dir() else None
        parsed: dict[str, Any] = {}
        mismatch: list[str] = []
        for name, data in (raw.items() if raw is not None else _iter_archive(src, self._members())):
            if hashlib.md5(data).hexdigest() != self.md5[name]:
                mismatch.append(name)
            parsed[name] = _normalise_keys(safe_loads(data, f"{src}:{name}"), f"{src}:{name}")
        missing = [m for m in self._members() if m not in parsed]
        if missing:
            raise DataError(f"{src}: missing {self.extracted}/{missing[0]} (truncated or incomplete archive)")
        meta = parsed[self.meta_file]
        classes = _names(meta, self.names_key, self.num_classes, f"{src}:{self.meta_file}")
        out: dict[str, Any] = {"classes": classes, "md5_mismatch": sorted(mismatch)}
        if self.coarse:
            out["coarse_classes"] = _names(meta, "coarse_label_names", 20, f"{src}:{self.meta_file}")
        arrays: dict[str, np.ndarray] = {}
        for split, names in (("train", self.train_files), ("test", self.test_files)):
            batches = [self._batch(parsed[n], f"{src}:{n}") for n in names]
            arrays[f"{split}_images"] = np.concatenate([b[0] for b in batches])
            arrays[f"{split}_labels"] = np.concatenate([b[1] for b in batches])
            if self.coarse:
                arrays[f"{split}_coarse_labels"] = np.concatenate([b[2] for b in batches])
        return arrays, out

    def _batch(self, d: dict, source: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        data = d.get("data")
        if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
            desc = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
            raise DataError(f"{source}: 'data' must be a uint8 array of shape (N, 3072), found {desc}")
        if len(data) == 0:
            raise DataError(f"{source}: 'data' holds no images")
        labels = _labels(d, self.label_key, len(data), self.num_classes, source)
        coarse = np.zeros(0, np.int64)
        if self.coarse:
            coarse = _labels(d, "coarse_labels", len(data), 20, source)
        return data.reshape(-1, 3, 32, 32), labels, coarse


def _iter_archive(path: Path, members: tuple[str, ...]):
    """Yield (member basename, bytes) for the wanted members, streaming through the archive once."""
    wanted = set(members)
    try:
        with tarfile.open(path, "r:*") as tf:
            for info in tf:
                base = info.name.rsplit("/", 1)[-1]
                if info.isfile() and base in wanted:
                    if info.size > _MAX_MEMBER:   # read() would allocate the declared size first
                        raise DataError(f"{path}: {base} declares {info.size:,} bytes, more than any CIFAR file "
                                        "(corrupt archive)")
                    f = tf.extractfile(info)
                    if f is None:  # pragma: no cover
                        continue
                    data = f.read()
                    if len(data) != info.size:
                        raise DataError(f"{path}: truncated archive ({base} is incomplete)")
                    wanted.discard(base)
                    yield base, data
                    if not wanted:
                        return
    except (tarfile.TarError, EOFError, lzma.LZMAError, zlib.error, OSError) as e:
        raise DataError(f"{path}: corrupt or truncated archive ({first_line(e).rstrip(':')})") from None


def _normalise_keys(obj: Any, source: str) -> dict:
    if not isinstance(obj, dict):
        raise DataError(f"{source}: expected a dict, found {type(obj).__name__}")
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in obj.items()}


def _labels(d: dict, key: str, n: int, num_classes: int, source: str) -> np.ndarray:
    """``d[key]`` as int64 labels: a list of ``n`` integers (or a 1-D integer array) in [0, num_classes).

    Floats, bools, strings and nested lists are refused rather than converted, and the range is checked
    on the values as stored (Python integers, or the array's own dtype), so 2**63 or 2**64 cannot wrap.
    """
    if key not in d:
        raise DataError(f"{source}: missing '{key}'")
    raw = d[key]
    if isinstance(raw, np.ndarray):
        if raw.dtype.kind not in "iu" or raw.ndim != 1:
            raise DataError(f"{source}: '{key}' must be a list of integers, found a {raw.dtype} array "
                            f"of shape {raw.shape}")
        values = raw
    elif isinstance(raw, list | tuple):
        bad = [x for x in raw if isinstance(x, bool) or not isinstance(x, int | np.integer)]
        if bad:  # (a list, not next(..., None): None itself is a bad label)
            raise DataError(f"{source}: '{key}' must be a list of integers, found {type(bad[0]).__name__} "
                            f"{_short(bad[0])}")
        values = raw
    else:
        raise DataError(f"{source}: '{key}' must be a list of integers, found {type(raw).__name__}")
    if len(values) != n:
        raise DataError(f"{source}: {len(values)} '{key}' for {n} images")
    lo, hi = int(min(values)), int(max(values))
    if lo < 0 or hi >= num_classes:
        raise DataError(f"{source}: '{key}' out of range [0, {num_classes}) "
                        f"(found {_int_text(lo)}..{_int_text(hi)})")
    return np.asarray(values, dtype=np.int64)


def _int_text(n: int) -> str:
    return str(n) if abs(n).bit_length() <= 64 else f"{'-' if n < 0 else ''}2^{abs(n).bit_length() - 1}+"


def _short(x: Any, limit: int = 40) -> str:
    if isinstance(x, list | tuple | dict | set | np.ndarray):
        return f"of length {len(x)}"
    if isinstance(x, int) and x.bit_length() > 64:
        return _int_text(x)
    text = repr(x[:limit] if isinstance(x, str | bytes) else x)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _names(meta: dict, key: str, n: int, source: str) -> list[str]:
    names = meta.get(key)
    if not isinstance(names, list | tuple) or len(names) != n:
        raise DataError(f"{source}: '{key}' must list {n} class names")
    bad = [x for x in names if not isinstance(x, str | bytes)]
    if bad:
        raise DataError(f"{source}: '{key}' must be strings, found {type(bad[0]).__name__} {_short(bad[0])}")
    return [x.decode("latin1") if isinstance(x, bytes) else x for x in names]


CIFAR10 = CifarSource(
    name="cifar10", folder="cifar10", alt_folders=("cifar-10", "CIFAR10", "cifar_10", ""),
    extracted="cifar-10-batches-py", archive_stem="cifar-10-python",
    archive_md5="c58f30108f718f92721af3b95e74349a",
    url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
    train_files=tuple(f"data_batch_{i}" for i in range(1, 6)), test_files=("test_batch",),
    meta_file="batches.meta",
    md5={"data_batch_1": "c99cafc152244af753f735de768cd75f", "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
         "data_batch_3": "54ebc095f3ab1f0389bbae665268c751", "data_batch_4": "634d18415352ddfa80567beed471001a",
         "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb", "test_batch": "40351d587109b95175f43aff81a1287e",
         "batches.meta": "5ff9c542aee3614f3951f8cda6e48888"},
    label_key="labels", names_key="label_names", num_classes=10,
)
CIFAR100 = CifarSource(
    name="cifar100", folder="cifar100", alt_folders=("cifar-100", "CIFAR100", "cifar_100", ""),
    extracted="cifar-100-python", archive_stem="cifar-100-python",
    archive_md5="eb9058c3a382ffc7106e4002c42a8d85",
    url="https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
    train_files=("train",), test_files=("test",), meta_file="meta",
    md5={"train": "16019d7e3df5f24257cddd939b257f8d", "test": "f0ef6b0ae62326f3e7ffdfab6717acfc",
         "meta": "7973b15100ade9c7d40fb424638fde48"},
    label_key="fine_labels", names_key="fine_label_names", num_classes=100, coarse=True,
)
