"""Class names from a Darknet ``.names`` file (one per line) or a YAML (list, {id: name}, or data.yaml)."""

from __future__ import annotations

import os
from pathlib import Path

from cnnlab.errors import UserError

# The 80 COCO class names (Darknet's coco.names), used when an 80-class model comes without names.
COCO80 = ("person", "bicycle", "car", "motorbike", "aeroplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog",
    "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag",
    "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite", "baseball bat",
    "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle", "wine glass", "cup", "fork",
    "knife", "spoon", "bowl", "banana", "apple", "sandwich", "orange", "broccoli", "carrot", "hot dog",
    "pizza", "donut", "cake", "chair", "sofa", "pottedplant", "bed", "diningtable", "toilet",
    "tvmonitor", "laptop", "mouse", "remote", "keyboard", "cell phone", "microwave", "oven", "toaster",
    "sink", "refrigerator", "book", "clock", "vase", "scissors", "teddy bear", "hair drier",
    "toothbrush")


def load_names(path: str | os.PathLike) -> list[str]:
    """Read class names: ``.names``/``.txt`` one per line; YAML as a list, ``{id: name}`` or ``names:``."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"class names file not found: {path}")
    if path.suffix.lower() in (".yaml", ".yml"):
        from cnnlab.io import read_yaml

        return names_from_yaml_obj(read_yaml(path), str(path))
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"cannot read class names from {path}: {e}") from None
    names = [line.strip() for line in text.splitlines() if line.strip()]
    if not names:
        raise UserError(f"{path}: no class names in the file")
    return names


def names_from_yaml_obj(obj: object, source: str = "<yaml>") -> list[str]:
    """Names from a parsed YAML: a list, a ``{id: name}`` mapping, or a mapping with a ``names`` key."""
    if isinstance(obj, dict) and "names" in obj:
        obj = obj["names"]
    if isinstance(obj, list) and obj and all(isinstance(n, (str, int, float)) for n in obj):
        return [str(n) for n in obj]
    if isinstance(obj, dict) and obj:
        try:
            table = {int(k): str(v) for k, v in obj.items()}
        except (TypeError, ValueError):
            raise UserError(f"{source}: class ids must be integers (got {list(obj)[:3]})") from None
        n = max(table) + 1
        if min(table) < 0:
            raise UserError(f"{source}: negative class id")
        return [table.get(i, str(i)) for i in range(n)]
    raise UserError(f"{source}: expected a list of class names or a mapping {{id: name}}")
