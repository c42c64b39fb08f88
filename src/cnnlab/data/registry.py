"""The dataset registry: ``load_dataset(name, split, data_dir, download, **options)`` and friends.

Adding a dataset is one :func:`register_dataset` call (a name, a description, its splits and a loader
``fn(split, data_dir, download, **options)``) plus one test.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnnlab.errors import UserError

Loader = Callable[..., Any]   # (split, data_dir, download, **options) -> ArrayDataset | FolderDataset


@dataclass(frozen=True)
class DatasetEntry:
    """One registered dataset."""

    name: str
    description: str
    splits: tuple[str, ...]
    load: Loader
    source: Any = None            # an OfficialSource for datasets read from official files
    options: tuple[str, ...] = ()  # keyword options the loader understands (for messages and docs)


_REGISTRY: dict[str, DatasetEntry] = {}


def register_dataset(entry: DatasetEntry) -> DatasetEntry:
    """Add (or replace) a dataset in the registry."""
    _REGISTRY[entry.name] = entry
    return entry


def _ensure_builtins() -> None:
    import cnnlab.data.builtin  # noqa: F401  (registers the built-in datasets on first use)


def list_datasets() -> list[str]:
    """Names of the registered datasets."""
    _ensure_builtins()
    return sorted(_REGISTRY)


def get_entry(name: str) -> DatasetEntry:
    """The registry entry of ``name`` (``fashion-mnist`` and ``Fashion_MNIST`` are accepted too)."""
    _ensure_builtins()
    key = str(name).strip().lower().replace("-", "_")
    if key in _REGISTRY:
        return _REGISTRY[key]
    for entry in _REGISTRY.values():  # cifar_10, fashionmnist, ...
        if entry.name.replace("_", "") == key.replace("_", ""):
            return entry
    close = difflib.get_close_matches(key, list(_REGISTRY), n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else f"; known: {', '.join(list_datasets())}"
    raise UserError(f"unknown dataset {name!r}{hint}")


def load_dataset(name: str, split: str = "train", data_dir: str | os.PathLike | None = None,
                 download: bool = True, **options: Any):
    """Load a dataset split as an ArrayDataset (in memory) or, for large image folders, a FolderDataset.

    ``name`` is a registered name (see :func:`list_datasets`) or a path to an image folder. Options:
    ``label_mode`` ("fine"/"coarse", cifar100); ``root``, ``img_size``, ``in_chans``, ``in_memory``
    (folder); ``cache`` (decoded cache on/off), ``mirrors`` (download base URLs), ``quiet``.
    """
    _ensure_builtins()
    if name not in _REGISTRY and ("/" in str(name) or os.sep in str(name) or Path(str(name)).is_dir()):
        options.setdefault("root", name)
        name = "folder"
    entry = get_entry(name)
    split = {"validation": "val", "valid": "val"}.get(str(split).lower(), str(split).lower())
    if split not in entry.splits:
        raise UserError(f"{entry.name} has splits {', '.join(entry.splits)}, not {split!r}"
                        + ("; use validation_split for a validation set" if split == "val" else ""))
    unknown = sorted(set(options) - set(entry.options))
    if unknown:
        raise UserError(f"{entry.name}: unknown option(s) {', '.join(unknown)} "
                        f"(known: {', '.join(entry.options) or 'none'})")
    return entry.load(split=split, data_dir=data_dir, download=download, **options)


def dataset_status(name: str, data_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """Where ``name`` would be read from and whether it is present (no network, no decoding)."""
    from cnnlab.paths import data_root

    entry = get_entry(name)
    row = {"name": entry.name, "description": entry.description, "splits": list(entry.splits)}
    if entry.source is None:
        built_in = entry.name == "digits"
        row.update(location="bundled with scikit-learn" if built_in else "your folder (root=... / --data-dir)",
                   present="built-in" if built_in else "-")
        return row
    root = data_root(data_dir)
    found = entry.source.find(root)
    if found:
        parents = {f.parent for f in found}
        where = f"{found[0].parent}/" if len(found) > 1 and len(parents) == 1 else ", ".join(map(str, found))
        row.update(location=where, present="yes")
    else:
        missing = entry.source.missing(root)
        row.update(location=str(root / entry.source.folder),
                   present="no" if len(missing) == len(entry.source.remotes) else
                   f"partial ({len(missing)} file(s) missing)")
    return row


def download_dataset(name: str, data_dir: str | os.PathLike | None = None, mirrors: Any = None,
                     quiet: bool = False) -> list[Path]:
    """Download the official files of ``name`` when missing, then decode them once to validate them."""
    from cnnlab.data.official import decode_cached, ensure_files

    entry = get_entry(name)
    if entry.source is None:
        raise UserError(f"{entry.name} needs no download ("
                        + ("bundled with scikit-learn)" if entry.name == "digits" else "it reads your own folder)"))
    files = ensure_files(entry.source, data_dir, True, mirrors=mirrors, quiet=quiet)
    decode_cached(entry.source, files)
    return files
