"""Images for the visualisations: default sample photos, grids and PNG output."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from cnnlab.errors import UserError
from cnnlab.paths import SAMPLE_IMAGES  # noqa: F401  (bundled with scikit-learn: everything works offline)
from cnnlab.plots import pyplot

GRID_GAP = 2  # pixels between grid tiles and around the border


def load_image(image: str | Path | np.ndarray | None = None) -> np.ndarray:
    """An RGB uint8 HxWx3 array from a file, an array, or a scikit-learn sample photo.

    None gives ``china.jpg``; ``china``/``china.jpg``/``flower``/``flower.jpg`` (when no such file
    exists) give scikit-learn's bundled photos.
    """
    if isinstance(image, np.ndarray):
        from cnnlab.deploy.preprocess import as_rgb

        return np.ascontiguousarray(as_rgb(image))
    from cnnlab.paths import find_file

    path = find_file("china.jpg" if image is None else image, "image", what="image")
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB")).copy()
    except (UnidentifiedImageError, OSError) as e:
        raise UserError(f"{path}: not a readable image ({e.__class__.__name__})") from None


def normalise(a: np.ndarray) -> np.ndarray:
    """Min-max scale to [0, 1] (a constant array becomes zeros)."""
    a = a.astype(np.float32)
    lo, hi = float(a.min()), float(a.max())
    return (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)


def grid_shape(n: int, tile_h: int, tile_w: int, cols: int | None = None) -> tuple[int, int, int, int]:
    """(rows, cols, height, width) of a grid of ``n`` tiles with GRID_GAP pixels between and around."""
    cols = cols or math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    return rows, cols, rows * tile_h + (rows + 1) * GRID_GAP, cols * tile_w + (cols + 1) * GRID_GAP


def make_grid(tiles: list[np.ndarray], scale: int = 1, background: float = 1.0) -> np.ndarray:
    """Arrange HxWx3 float tiles in [0, 1] (all the same size) in a near-square grid, each enlarged by
    ``scale`` (nearest neighbour); returns an RGB float array."""
    if not tiles:
        raise UserError("nothing to draw")
    th, tw = tiles[0].shape[0] * scale, tiles[0].shape[1] * scale
    rows, cols, height, width = grid_shape(len(tiles), th, tw)
    canvas = np.full((height, width, 3), background, dtype=np.float32)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, cols)
        y, x = GRID_GAP + r * (th + GRID_GAP), GRID_GAP + c * (tw + GRID_GAP)
        big = np.repeat(np.repeat(tile, scale, axis=0), scale, axis=1)
        canvas[y:y + th, x:x + tw] = big
    return canvas


def colorize(a: np.ndarray, cmap: str = "viridis") -> np.ndarray:
    """A 2-D array in [0, 1] to an RGB float image through a matplotlib colormap."""
    import matplotlib

    return matplotlib.colormaps[cmap](np.clip(a, 0.0, 1.0))[..., :3].astype(np.float32)


def save_png(path: str | Path, rgb: np.ndarray) -> Path:
    """Save an RGB image (uint8, or float in [0, 1]) as a PNG of exactly its pixel size, atomically."""
    from cnnlab.io import atomic_path

    path = Path(path)
    if path.suffix.lower() != ".png":
        raise UserError(f"output must be a .png file, got {path.name}")
    arr = rgb.astype(np.float32) / 255.0 if rgb.dtype == np.uint8 else np.clip(rgb, 0.0, 1.0)
    with atomic_path(path) as tmp:
        pyplot().imsave(tmp, arr, format="png")
    return path
