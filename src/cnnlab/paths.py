"""Where data, weights and caches live: ``--data-dir`` > ``$CNNLAB_DATA`` > ``~/.cache/cnnlab``."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """The user cache folder (``$XDG_CACHE_HOME/cnnlab`` or ``~/.cache/cnnlab``)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "cnnlab"


def data_root(data_dir: str | os.PathLike | None = None) -> Path:
    """The data root: the explicit argument, else ``$CNNLAB_DATA``, else the cache folder."""
    if data_dir:
        return Path(data_dir).expanduser()
    env = os.environ.get("CNNLAB_DATA")
    if env:
        return Path(env).expanduser()
    return cache_dir() / "data"


def find_data(spec: str | os.PathLike) -> Path:
    """A dataset path as given when it exists, else the same relative path under the data root
    (``membrane`` -> ``$CNNLAB_DATA/membrane``); the path as given when neither exists."""
    p = Path(spec).expanduser()
    if p.exists() or p.is_absolute():
        return p
    under = data_root() / p
    return under if under.exists() else p
