"""Figures without a display: matplotlib on the Agg backend, saved atomically as PNG, then closed."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend (imported on first use; no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: str | os.PathLike, dpi: int = 110) -> Path:
    """Write ``fig`` to ``path`` as a PNG atomically and close it; returns the path."""
    from cnnlab.io import atomic_path

    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=dpi, format="png")
    finally:
        pyplot().close(fig)
    return Path(path)


def fresh_path(path: str | os.PathLike, overwrite: bool = False) -> Path:
    """``path`` itself when it is free (or ``overwrite``), else the first free ``stem-2``, ``stem-3``...
    beside it, so a second run never replaces the first picture silently."""
    path = Path(path)
    if overwrite or not path.exists():
        return path
    n = 2
    while (candidate := path.with_name(f"{path.stem}-{n}{path.suffix}")).exists():
        n += 1
    return candidate
