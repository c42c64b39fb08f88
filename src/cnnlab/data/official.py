"""Loading official dataset files from the data root: locate, download when missing, decode, cache."""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cnnlab.data import cache as _cache
from cnnlab.data.download import DownloadFailed, RemoteFile, candidate_urls, download_file
from cnnlab.errors import CnnlabWarning, DataError
from cnnlab.paths import data_root

log = logging.getLogger(__name__)


class DataChecksumWarning(CnnlabWarning):
    """A local dataset file differs from the official checksum (its structure was valid)."""


@dataclass(frozen=True)
class OfficialSource:
    """How one official dataset is found and decoded (subclasses in mnist.py, cifar.py)."""

    name: str
    folder: str                   # canonical folder under the data root (download target, mirror path)
    alt_folders: tuple[str, ...]  # other folders searched under the data root ("": the root itself)

    @property
    def remotes(self) -> tuple[RemoteFile, ...]:
        """The official files with their md5 and addresses."""
        raise NotImplementedError

    def find(self, root: Path) -> list[Path] | None:
        """The local files to decode, or None when something is missing."""
        raise NotImplementedError

    def missing(self, root: Path) -> list[RemoteFile]:
        """The remote files that would have to be downloaded."""
        return [] if self.find(root) else list(self.remotes)

    def looked_in(self, root: Path) -> list[Path]:
        """Folders searched (for messages)."""
        return [root / d if d else root for d in (self.folder, *self.alt_folders)]

    def decode(self, files: list[Path]) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Arrays ``<split>_images`` / ``<split>_labels``... and meta (classes, md5_mismatch)."""
        raise NotImplementedError


@dataclass
class Decoded:
    arrays: dict[str, np.ndarray]
    meta: dict[str, Any]
    files: list[Path]


def ensure_files(source: OfficialSource, data_dir: str | os.PathLike | None, download: bool,
                 mirrors: Sequence[str] | str | None = None, quiet: bool = False) -> list[Path]:
    """The local source files, downloading the missing ones when allowed; else a one-line DataError."""
    root = data_root(data_dir)
    files = source.find(root)
    if files is not None:
        return files
    missing = source.missing(root)
    target = root / source.folder
    if not download:
        raise DataError(f"{source.name}: {missing[0].name} not found under {root} "
                        f"({_looked(source, root)}); put the official file at {target / missing[0].name} "
                        f"or allow a download")
    existing = next(p for p in (target, *target.parents) if p.exists())
    if not os.access(existing, os.W_OK) or not existing.stat().st_mode & 0o222:  # read-only, even for root
        raise DataError(f"{source.name}: {missing[0].name} is missing and {existing} is not writable; "
                        f"put the official file at {target / missing[0].name} or use another --data-dir")
    created = not target.exists()
    for remote in missing:
        try:
            download_file(candidate_urls(remote, source.folder, mirrors), target / remote.name, remote.md5,
                          quiet=quiet)
        except (DownloadFailed, DataError) as e:
            if created and target.is_dir() and not any(target.iterdir()):
                target.rmdir()  # leave no empty folder behind
            if isinstance(e, DownloadFailed):
                raise DataError(f"{source.name}: {remote.name} is missing and could not be downloaded ({e}); "
                                f"put the official file at {target / remote.name}") from None
            raise
    files = source.find(root)
    if files is None:  # pragma: no cover - downloaded files are always found
        raise DataError(f"{source.name}: files still missing after download in {target}")
    return files


def decode_cached(source: OfficialSource, files: list[Path], cache: bool | None = None) -> Decoded:
    """Decode ``files`` (or read them from the decoded cache), warning once about checksum mismatches."""
    entry = _cache.entry_dir(source.name, _stat_paths(files)) if _cache.cache_enabled(cache) else None
    hit = _cache.load_entry(entry) if entry is not None else None
    if hit is not None:
        arrays, meta = hit
        log.debug("%s: decoded cache hit %s", source.name, entry)
    else:
        arrays, meta = source.decode(files)
        train = arrays.get("train_images", arrays.get("test_images"))  # official sources all have train
        import torch

        from cnnlab.data.dataset import channel_stats  # stats of the training images, for normalisation

        mean, std = channel_stats(torch.from_numpy(np.require(train, requirements=["C", "W"])))
        meta = {**meta, "mean": list(mean), "std": list(std), "source": [str(f) for f in files]}
        if entry is not None:
            _cache.save_entry(entry, arrays, meta)
    bad = meta.get("md5_mismatch") or []
    if bad:
        shown = ", ".join(bad[:4]) + (", ..." if len(bad) > 4 else "")
        warnings.warn(f"{source.name}: {len(bad)} local file(s) differ from the official md5 ({shown}); "
                      f"their structure is valid, loading them anyway", DataChecksumWarning, stacklevel=4)
    return Decoded(arrays, meta, files)


def _stat_paths(files: list[Path]) -> list[Path]:
    out: list[Path] = []
    for f in files:
        out.extend(sorted(p for p in f.iterdir() if p.is_file()) if f.is_dir() else [f])
    return out


def _looked(source: OfficialSource, root: Path) -> str:
    dirs = source.looked_in(root)
    return "looked in " + ", ".join(str(d.relative_to(root)) + "/" if d != root else "./" for d in dirs)


def check_labels(labels: np.ndarray, num_classes: int, source: str) -> None:
    """Labels must be integers in [0, num_classes)."""
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise DataError(f"{source}: labels out of range [0, {num_classes}) "
                        f"(found {int(labels.min())}..{int(labels.max())})")


def to_array_dataset(source: OfficialSource, decoded: Decoded, split: str, labels_key: str = "labels",
                     classes_key: str = "classes"):
    """Build the ArrayDataset of ``split`` from decoded arrays (no copy when the arrays are writable)."""
    import torch

    from cnnlab.data.dataset import ArrayDataset

    images = np.require(decoded.arrays[f"{split}_images"], requirements=["C", "W"])
    labels = np.require(decoded.arrays[f"{split}_{labels_key}"], dtype=np.int64, requirements=["C", "W"])
    meta = decoded.meta
    return ArrayDataset(torch.from_numpy(images), torch.from_numpy(labels), list(meta[classes_key]),
                        source.name, tuple(meta["mean"]), tuple(meta["std"]),
                        {"split": split, "source": [str(f) for f in decoded.files]})
