"""Image preprocessing in NumPy/OpenCV for exported models: what the metadata's ``preprocess`` describes."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from cnnlab.deploy.metadata import Preprocess
from cnnlab.errors import UserError


def read_image_rgb(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as HxWx3 uint8 RGB; a missing or unreadable file is a UserError."""
    import cv2

    from cnnlab.paths import find_file

    p = find_file(path, "image", what="image")
    if not p.is_file():
        raise UserError(f"image not found: {p} (a folder)")
    img = cv2.imread(str(p), cv2.IMREAD_COLOR)
    if img is None:
        raise UserError(f"{p}: not a readable image")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def as_rgb(img: np.ndarray) -> np.ndarray:
    """An image array (HxW, HxWx1/3/4; uint8, or float in [0, 1] or [0, 255]) as HxWx3 uint8 RGB."""
    arr = np.asarray(img)
    arr = arr[:, :, None] if arr.ndim == 2 else arr
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4):
        raise UserError(f"expected an HxWxC image, got shape {tuple(np.shape(img))}")
    arr = np.repeat(arr, 3, axis=2) if arr.shape[2] == 1 else arr[:, :, :3]
    if arr.dtype != np.uint8:
        arr = np.clip(arr * (255.0 if arr.max() <= 1.0 else 1.0), 0, 255).astype(np.uint8)
    return arr


def _resize(img: np.ndarray, size: tuple[int, int], interpolation: str) -> np.ndarray:
    """Resize to (width, height); INTER_AREA when shrinking (anti-aliased, like PIL), else the named one."""
    import cv2

    h, w = img.shape[:2]
    if (w, h) == size:
        return img
    if size[0] < w and size[1] < h:
        flag = cv2.INTER_AREA
    else:
        flag = {"nearest": cv2.INTER_NEAREST, "bicubic": cv2.INTER_CUBIC}.get(interpolation, cv2.INTER_LINEAR)
    return cv2.resize(img, size, interpolation=flag)


def preprocess_image(img: np.ndarray, pre: Preprocess) -> np.ndarray:
    """One HxWxC uint8 RGB image -> float32 CxHxW (or HxWxC for NHWC models), normalised."""
    import cv2

    rgb = as_rgb(img)
    size = pre.img_size
    if size:
        if pre.resize:
            h, w = rgb.shape[:2]
            s = pre.resize / min(h, w)
            rgb = _resize(rgb, (max(size, round(w * s)), max(size, round(h * s))), pre.interpolation)
            h, w = rgb.shape[:2]
            top, left = (h - size) // 2, (w - size) // 2
            rgb = rgb[top:top + size, left:left + size]
        else:
            rgb = _resize(rgb, (size, size), pre.interpolation)
    if pre.in_chans == 1:
        x = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)[:, :, None]
    elif pre.in_chans == 3:
        x = rgb[:, :, ::-1] if pre.channel_order == "BGR" else rgb
    else:
        raise UserError(f"cannot feed RGB images to a model with {pre.in_chans} input channels")
    x = x.astype(np.float32) * np.float32(pre.scale)
    x = (x - np.asarray(pre.mean, np.float32)) / np.asarray(pre.std, np.float32)
    return np.ascontiguousarray(x if pre.layout == "NHWC" else x.transpose(2, 0, 1))


def preprocess_batch(images: Sequence[np.ndarray | str | os.PathLike], pre: Preprocess) -> np.ndarray:
    """Images (arrays or file paths) -> one float32 batch; images must share a size when img_size is unknown."""
    arrays = [read_image_rgb(i) if isinstance(i, (str, os.PathLike)) else i for i in images]
    if not arrays:
        raise UserError("no images given")
    xs = [preprocess_image(a, pre) for a in arrays]
    if len({x.shape for x in xs}) > 1:
        raise UserError("images have different sizes and the model does not fix its input size; "
                        "resize them first")
    return np.stack(xs)
