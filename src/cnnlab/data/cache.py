"""Decoded-dataset cache: arrays decoded from slow official files (xz archives) kept as .npy files.

An entry lives in ``cache_dir()/decoded/<name>-<key>/`` where the key hashes the source files' paths,
sizes and modification times, so a changed source is decoded again. Files are written atomically and
``meta.json`` last, so a half-written entry is never read.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from cnnlab.io import atomic_path, write_json
from cnnlab.paths import cache_dir

log = logging.getLogger(__name__)
FORMAT_VERSION = 1


def source_key(paths: list[Path]) -> str:
    """A short hash of the sources' resolved paths, sizes and mtimes."""
    h = hashlib.sha1(f"v{FORMAT_VERSION}".encode())
    for p in sorted(paths):
        st = p.stat()
        h.update(f"{p.resolve()}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def entry_dir(name: str, sources: list[Path]) -> Path:
    """The cache folder for ``name`` decoded from ``sources``."""
    return cache_dir() / "decoded" / f"{name}-{source_key(sources)}"


def load_entry(entry: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]] | None:
    """The arrays and metadata of a complete cache entry, or None (missing or unreadable)."""
    meta_path = entry / "meta.json"
    if not meta_path.is_file():
        return None
    try:
        meta = json.loads(meta_path.read_text())
        arrays = {k: np.load(entry / f"{k}.npy", allow_pickle=False) for k in meta["arrays"]}
    except (OSError, ValueError, KeyError) as e:
        log.info("ignoring unreadable cache entry %s (%s)", entry, e)
        return None
    return arrays, meta


def save_entry(entry: Path, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> bool:
    """Write an entry (arrays first, meta.json last); False when the cache folder is not writable."""
    try:
        entry.mkdir(parents=True, exist_ok=True)
        for k, arr in arrays.items():
            with atomic_path(entry / f"{k}.npy") as tmp, open(tmp, "wb") as f:
                np.save(f, np.ascontiguousarray(arr), allow_pickle=False)
        write_json(entry / "meta.json", {**meta, "arrays": sorted(arrays)})
    except OSError as e:
        log.info("could not write the decoded cache %s (%s)", entry, e)
        return False
    return True


def cache_enabled(option: bool | None) -> bool:
    """The ``cache`` option, else ``$CNNLAB_DATA_CACHE`` (0 disables), else on."""
    if option is not None:
        return bool(option)
    return os.environ.get("CNNLAB_DATA_CACHE", "1") not in ("0", "false", "no", "off")
