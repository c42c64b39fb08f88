"""Pre- and post-processing shared by every backend: letterbox/resize, output decoding, NMS, box mapping.

Output formats the decoder understands:

- ``darknet``: one ``(N_i, 5+C)`` array per [yolo] layer (torch and OpenCV-Darknet backends):
  cx, cy, w, h as fractions of the network input, objectness, objectness*class probability.
- ``yolov5``: ``(1, N, 5+C)``: cx, cy, w, h in input pixels, objectness, class probabilities
  (YOLOv5/v7 exports and ``cnnlab export-detector``); score = objectness * class probability.
- ``yolov8``: ``(1, 4+C, N)``: cx, cy, w, h in input pixels, class scores (YOLOv8/v11 exports).
- ``boxes``: ``[boxes (1, N, 4) xyxy input pixels, scores (1, N), labels (1, N)]``: detectors that
  decode themselves (the two-stage models of ``cnnlab.detect.twostage`` and their ONNX exports).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cnnlab.detect.types import Detections, ImageSize
from cnnlab.errors import UserError

FORMATS = ("darknet", "yolov5", "yolov8", "boxes")


@dataclass
class ImageMeta:
    """How an image was mapped into the network input, to map boxes back."""

    orig_hw: tuple[int, int]
    input_hw: tuple[int, int]
    scale: tuple[float, float]   # (sx, sy): input pixels per original pixel
    pad: tuple[float, float]     # (left, top) border in input pixels


def as_bgr(image: np.ndarray) -> np.ndarray:
    """An 8-bit 3-channel BGR view of ``image`` (grey and BGRA are converted)."""
    import cv2

    if not isinstance(image, np.ndarray) or image.size == 0:
        raise UserError("expected a non-empty image array (H, W, 3) in BGR order")
    if image.dtype != np.uint8:
        raise UserError(f"expected a uint8 image, got {image.dtype}")
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    if image.ndim == 3 and image.shape[2] == 3:
        return image
    raise UserError(f"expected an image of shape (H, W, 3), got {image.shape}")


def preprocess_image(image_bgr: np.ndarray, imgsz: ImageSize | int | str | tuple[int, int],
                     letterbox: bool = True) -> tuple[np.ndarray, ImageMeta]:
    """Resize to ``imgsz`` (keeping the aspect ratio with a grey border when ``letterbox``), BGR->RGB,
    /255, NCHW."""
    import cv2

    from cnnlab.detect.train.augment import letterbox as fit

    img = as_bgr(image_bgr)
    h0, w0 = img.shape[:2]
    w, h = ImageSize.parse(imgsz)
    if letterbox:
        img, _, r, pad = fit(img, (h, w))
        scale = (max(1, round(w0 * r)) / w0, max(1, round(h0 * r)) / h0)   # the sides fit() resized to
    else:
        img = cv2.resize(img, (w, h), interpolation=cv2.INTER_LINEAR) if (w, h) != (w0, h0) else img
        scale, pad = (w / w0, h / h0), (0.0, 0.0)
    blob = cv2.dnn.blobFromImage(img, scalefactor=1 / 255.0, swapRB=True, crop=False)
    return blob.astype(np.float32, copy=False), ImageMeta((h0, w0), (h, w), scale, pad)


def guess_format(shape: tuple[int, ...], num_classes: int | None = None) -> str:
    """``yolov5`` for (1, N, 5+C), ``yolov8`` for (1, 4+C, N), decided by C when known, else by shape."""
    if len(shape) != 3:
        raise UserError(f"cannot decode a model output of shape {tuple(shape)}: expected (1, N, 5+C) "
                        "or (1, 4+C, N)")
    a, b = int(shape[1]), int(shape[2])
    if num_classes:
        if b == num_classes + 5:
            return "yolov5"
        if a == num_classes + 4:
            return "yolov8"
    return "yolov8" if a < b else "yolov5"


def candidates(raw: list[np.ndarray], fmt: str, meta: ImageMeta, conf: float
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Boxes (xyxy, input pixels), scores and class ids of the predictions scoring above ``conf``.

    Each prediction keeps its best class; score = objectness * class probability where the format
    has an objectness (as Darknet and OpenCV's samples do).
    """
    h, w = meta.input_hw
    if fmt == "boxes":
        boxes = np.asarray(raw[0], np.float32).reshape(-1, 4)
        scores = np.asarray(raw[1], np.float32).reshape(-1)
        class_ids = np.asarray(raw[2]).reshape(-1).astype(np.int64)
        keep = scores > conf
        return boxes[keep], scores[keep], class_ids[keep]
    if fmt == "darknet":
        rows = np.concatenate([np.asarray(r).reshape(-1, np.asarray(r).shape[-1]) for r in raw], axis=0)
        cls = rows[:, 5:]
        xywh = rows[:, :4] * np.array([w, h, w, h], dtype=np.float32)
    elif fmt == "yolov5":
        rows = np.asarray(raw[0]).reshape(-1, np.asarray(raw[0]).shape[-1])
        cls = rows[:, 5:] * rows[:, 4:5]
        xywh = rows[:, :4]
    elif fmt == "yolov8":
        r = np.asarray(raw[0])
        rows = r.reshape(r.shape[-2], r.shape[-1]).T
        cls = rows[:, 4:]
        xywh = rows[:, :4]
    else:
        raise UserError(f"unknown output format {fmt!r} (known: {', '.join(FORMATS)})")
    if cls.shape[1] == 0:
        raise UserError(f"model output has no class columns (shape {rows.shape})")
    class_ids = cls.argmax(axis=1)
    scores = cls[np.arange(len(cls)), class_ids]
    keep = scores > conf
    xywh, scores, class_ids = xywh[keep], scores[keep], class_ids[keep]
    boxes = np.concatenate([xywh[:, :2] - xywh[:, 2:4] / 2, xywh[:, :2] + xywh[:, 2:4] / 2], 1)
    return boxes.astype(np.float32), scores.astype(np.float32), class_ids.astype(np.int64)


def nms(boxes: np.ndarray, scores: np.ndarray, class_ids: np.ndarray, iou: float, max_det: int = 300
        ) -> np.ndarray:
    """Indices kept by class-aware NMS (``torchvision.ops.batched_nms``), best first, at most ``max_det``."""
    import torch
    from torchvision.ops import batched_nms

    if len(boxes) == 0:
        return np.zeros((0,), dtype=np.int64)
    keep = batched_nms(torch.from_numpy(np.ascontiguousarray(boxes, dtype=np.float32)),
                       torch.from_numpy(np.ascontiguousarray(scores, dtype=np.float32)),
                       torch.from_numpy(np.ascontiguousarray(class_ids, dtype=np.int64)), float(iou))
    return keep[:max_det].numpy()


def map_boxes_back(boxes: np.ndarray, meta: ImageMeta) -> np.ndarray:
    """Boxes from network-input pixels to original-image pixels, clipped to the image."""
    h0, w0 = meta.orig_hw
    pad, scale = np.array(meta.pad * 2, np.float32), np.array(meta.scale * 2, np.float32)   # (x, y, x, y)
    out = (boxes.astype(np.float32) - pad) / scale
    return out.clip(0, np.array([w0, h0, w0, h0], np.float32))


def postprocess_output(raw: list[np.ndarray], fmt: str, meta: ImageMeta, names: list[str], conf: float,
                       iou: float, max_det: int = 300) -> Detections:
    """Decode, threshold, class-aware NMS and map back to the original image."""
    boxes, scores, class_ids = candidates(raw, fmt, meta, conf)
    keep = nms(boxes, scores, class_ids, iou, max_det)
    return Detections(map_boxes_back(boxes[keep], meta), scores[keep], class_ids[keep], list(names), {})
