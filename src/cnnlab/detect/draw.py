"""Draw detections on an image: a box, the class name and the score, one colour per class."""

from __future__ import annotations

import colorsys
import os
from pathlib import Path

import numpy as np

from cnnlab.detect.types import Detections
from cnnlab.errors import UserError


def class_color(class_id: int) -> tuple[int, int, int]:
    """A stable, well-separated BGR colour for a class id (golden-ratio hue steps)."""
    hue = (class_id * 0.618033988749895) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.85, 0.95)
    return int(b * 255), int(g * 255), int(r * 255)


def draw_detections(image_bgr: np.ndarray, detections: Detections, thickness: int | None = None,
                    show_scores: bool = True) -> np.ndarray:
    """A copy of ``image_bgr`` with boxes and ``name score`` labels drawn (line width scales with size)."""
    import cv2

    out = image_bgr.copy()
    if out.ndim == 2:
        out = cv2.cvtColor(out, cv2.COLOR_GRAY2BGR)
    h, w = out.shape[:2]
    lw = thickness or max(1, int(round((h + w) / 2 * 0.003)))
    font_scale = max(0.35, lw / 3)
    order = np.argsort(detections.scores, kind="stable")  # best boxes drawn last, on top
    for i in order:
        box, score, cid = detections.boxes[i], detections.scores[i], detections.class_ids[i]
        color = class_color(int(cid))
        x1, y1, x2, y2 = (int(round(float(v))) for v in box)
        cv2.rectangle(out, (x1, y1), (x2, y2), color, lw, cv2.LINE_AA)
        label = detections.name_of(int(cid)) + (f" {float(score):.2f}" if show_scores else "")
        (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, font_scale, max(1, lw - 1))
        top = y1 - th - base - 2 if y1 - th - base - 2 >= 0 else y1
        cv2.rectangle(out, (x1, top), (x1 + tw + 2, top + th + base + 2), color, -1, cv2.LINE_AA)
        luminance = 0.114 * color[0] + 0.587 * color[1] + 0.299 * color[2]
        text_color = (0, 0, 0) if luminance > 140 else (255, 255, 255)
        cv2.putText(out, label, (x1 + 1, top + th + 1), cv2.FONT_HERSHEY_SIMPLEX, font_scale, text_color,
                    max(1, lw - 1), cv2.LINE_AA)
    return out


def write_image(path: str | os.PathLike, image: np.ndarray, jpeg_quality: int = 95) -> Path:
    """Encode ``image`` (BGR) as its file extension says and write it atomically."""
    import cv2

    from cnnlab.io import atomic_write_bytes

    ext = Path(path).suffix
    params = [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality] if ext.lower() in (".jpg", ".jpeg") else []
    ok, buf = cv2.imencode(ext, image, params)
    if not ok:
        raise UserError(f"cannot encode an image as {ext}: {path}")
    return atomic_write_bytes(path, buf.tobytes())
