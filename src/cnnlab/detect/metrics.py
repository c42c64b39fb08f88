"""Box utilities: IoU and format conversions (xyxy, xywh, cxcywh, normalised YOLO).

Functions accept numpy arrays or torch tensors and return the same kind; the heavy lifting is done
by ``torchvision.ops`` (``box_iou``, ``box_convert``, ``box_area``, ``clip_boxes_to_image``).
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _to_tensor(x: Any):
    """(tensor, was_tensor): numpy input becomes a float32 (or float64) (N, 4) tensor."""
    import torch

    if isinstance(x, torch.Tensor):
        return x, True
    arr = np.asarray(x)
    arr = arr.astype(np.float64 if arr.dtype == np.float64 else np.float32, copy=False)
    arr = np.ascontiguousarray(arr.reshape(-1, 4) if arr.size else np.zeros((0, 4), arr.dtype))
    return torch.from_numpy(arr), False


def _back(t: Any, was_tensor: bool):
    return t if was_tensor else t.numpy()


def _convert(boxes: Any, in_fmt: str, out_fmt: str):
    from torchvision.ops import box_convert

    t, was = _to_tensor(boxes)
    return _back(box_convert(t, in_fmt, out_fmt), was)


def xywh2xyxy(boxes: Any):
    """[x, y, w, h] (top-left corner + size, the COCO layout) -> [x1, y1, x2, y2]."""
    return _convert(boxes, "xywh", "xyxy")


def xyxy2xywh(boxes: Any):
    """[x1, y1, x2, y2] -> [x, y, w, h] (top-left corner + size, the COCO layout)."""
    return _convert(boxes, "xyxy", "xywh")


def cxcywh2xyxy(boxes: Any):
    """[cx, cy, w, h] (centre + size, the YOLO layout) -> [x1, y1, x2, y2]."""
    return _convert(boxes, "cxcywh", "xyxy")


def xyxy2cxcywh(boxes: Any):
    """[x1, y1, x2, y2] -> [cx, cy, w, h] (centre + size, the YOLO layout)."""
    return _convert(boxes, "xyxy", "cxcywh")


def yolo2xyxy(boxes: Any, width: int, height: int):
    """Normalised YOLO [cx, cy, w, h] in [0, 1] -> xyxy pixels of a ``width`` x ``height`` image."""
    t, was = _to_tensor(boxes)
    scale = t.new_tensor([width, height, width, height])
    return _back(_convert(t, "cxcywh", "xyxy") * scale, was)


def xyxy2yolo(boxes: Any, width: int, height: int):
    """xyxy pixels -> normalised YOLO [cx, cy, w, h] of a ``width`` x ``height`` image."""
    t, was = _to_tensor(boxes)
    scale = t.new_tensor([width, height, width, height])
    return _back(_convert(t, "xyxy", "cxcywh") / scale, was)


def box_area(boxes: Any):
    """Area of xyxy boxes, shape (N,)."""
    from torchvision.ops import box_area as _area

    t, was = _to_tensor(boxes)
    return _back(_area(t), was)


def box_iou(boxes1: Any, boxes2: Any):
    """Pairwise IoU of two sets of xyxy boxes: an (N, M) matrix (torchvision.ops.box_iou)."""
    from torchvision.ops import box_iou as _iou

    a, was = _to_tensor(boxes1)
    b, _ = _to_tensor(boxes2)
    if a.dtype != b.dtype:
        b = b.to(a.dtype)
    return _back(_iou(a, b), was)


def clip_boxes(boxes: Any, width: int, height: int):
    """Clip xyxy boxes to the image ``[0, width] x [0, height]``."""
    from torchvision.ops import clip_boxes_to_image

    t, was = _to_tensor(boxes)
    return _back(clip_boxes_to_image(t, (int(height), int(width))), was)
