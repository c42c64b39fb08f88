"""Reading detection images: BGR arrays as OpenCV gives them, with a warning naming the file when an
image is damaged but still usable, and a check that ``cnnlab data check`` runs on every image.

libjpeg reports a truncated JPEG ("Premature end of JPEG file") on stderr without the file's name, or
OpenCV refuses it outright depending on how it is read. Here a JPEG without its end marker is found
before decoding, decoded by Pillow (whose libjpeg stays quiet) with the missing part left grey, and
reported as one `ImageWarning` line that names the file. Other damage libjpeg only warns about
("Corrupt JPEG data: 545 extraneous bytes before marker 0xd9") is caught from its stderr while a JPEG
is decoded and reported the same way.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from cnnlab.errors import UserError

JPEG_START, JPEG_END = b"\xff\xd8", b"\xff\xd9"
DAMAGED = "damaged JPEG data"   # an image that decodes, with libjpeg's warnings: a warning, not an error


class ImageWarning(UserWarning):
    """A damaged image that could still be decoded (e.g. a truncated JPEG)."""


def jpeg_truncated(data: bytes | np.ndarray) -> bool:
    """True for a JPEG whose end-of-image marker is missing (the file was cut short).

    The marker may be followed by padding or trailer bytes, so the last 4 KiB are searched (inside the
    compressed data a 0xFF byte is always escaped, so 0xFFD9 there is the marker).
    """
    head = bytes(data[:2])
    return head == JPEG_START and JPEG_END not in bytes(data[-4096:])


def read_image(path: str | Path) -> np.ndarray:
    """An image file as a BGR uint8 array (EXIF rotation applied, as ``cv2.imread``).

    A truncated JPEG is decoded as far as it goes (an `ImageWarning` names the file); a missing or
    undecodable file is a UserError naming it.
    """
    import cv2

    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except OSError as e:
        raise UserError(f"cannot read image {path}: {e.strerror}") from None
    if data.size and jpeg_truncated(data):
        img = _decode_truncated_jpeg(data)
        if img is not None:
            warnings.warn(f"{path}: truncated JPEG (premature end of file); decoded what is there, the rest "
                          "is grey", ImageWarning, stacklevel=2)
            return img
    if data.size and bytes(data[:2]) == JPEG_START:
        img, said = libjpeg_messages(lambda: cv2.imdecode(data, cv2.IMREAD_COLOR))
        if img is not None and said:
            warnings.warn(f"{path}: damaged JPEG data (libjpeg: {said}); decoded anyway", ImageWarning, stacklevel=2)
    else:
        img = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if img is None:
        raise UserError(f"cannot read image {path}: not a decodable image file")
    return img


def libjpeg_messages(fn: Callable[[], Any]) -> tuple[Any, str]:
    """``(fn(), what it wrote to the stderr file descriptor)``: libjpeg prints its warnings there itself,
    without naming the file. The text is kept to its first line; when the descriptor cannot be
    redirected, ``fn`` just runs."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
        read_end, write_end = os.pipe()
    except (OSError, ValueError):
        return fn(), ""
    try:
        os.dup2(write_end, 2)
        try:
            result = fn()
        finally:
            os.dup2(saved, 2)
            os.close(write_end)
        os.set_blocking(read_end, False)
        try:
            text = os.read(read_end, 4096).decode("utf-8", "replace")
        except BlockingIOError:
            text = ""
    finally:
        os.close(read_end)
        os.close(saved)
    return result, (text.strip().splitlines() or [""])[0][:200]


def _decode_truncated_jpeg(data: np.ndarray) -> np.ndarray | None:
    """Pillow decodes a JPEG given its end marker back, without printing libjpeg's warnings."""
    import io

    from PIL import Image, ImageOps

    try:
        with Image.open(io.BytesIO(data.tobytes() + JPEG_END)) as im:
            im = ImageOps.exif_transpose(im).convert("RGB")
            return np.ascontiguousarray(np.asarray(im)[:, :, ::-1])
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return None


def image_problem(path: str | Path) -> str | None:
    """What is wrong with an image file (one line naming it), or None when it decodes whole. A JPEG
    that decodes with libjpeg's complaints says ``damaged JPEG data`` (see `DAMAGED`)."""
    import cv2

    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except OSError as e:
        return f"{path}: cannot read the image ({e.strerror})"
    if not data.size:
        return f"{path}: empty image file"
    if jpeg_truncated(data):
        return f"{path}: truncated JPEG (the file ends before its end-of-image marker)"
    img, said = libjpeg_messages(lambda: cv2.imdecode(data, cv2.IMREAD_REDUCED_COLOR_2))
    if img is None:
        return f"{path}: not a decodable image file"
    if said and bytes(data[:2]) == JPEG_START:
        return f"{path}: {DAMAGED} (libjpeg: {said})"
    return None
