"""Class names: the one parser (``parse_names``) for lists, ``{id: name}`` mappings, data.yaml, ``.names`` and YAML files."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

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


def parse_names(names: Any, source: str = "names") -> list[str]:
    """The one class-names parser: a list, an ``{id: name}`` mapping, a mapping with a ``names`` key
    (data.yaml), or a file (``.names``/``.txt`` one per line, ``.yaml``/``.yml``).

    Ids of a mapping must run 0..N-1: a gap (``{0: a, 2: c}``) is refused, since filling it would
    invent a class and shift nothing back into place.
    """
    if isinstance(names, (str, os.PathLike)):
        return load_names(names)
    if isinstance(names, dict) and "names" in names:
        names = names["names"]
    if isinstance(names, (list, tuple)):
        if not names:
            raise UserError(f"{source}: no class names")
        return [str(n) for n in names]
    if isinstance(names, dict) and names:
        try:
            table = {int(k): str(v) for k, v in names.items()}
        except (TypeError, ValueError):
            raise UserError(f"{source}: class ids must be integers (got {list(names)[:3]})") from None
        ids = sorted(table)
        if ids != list(range(len(ids))):
            missing = sorted(set(range(max(ids[-1] + 1, 0))) - set(ids))[:3]
            detail = f"missing {', '.join(map(str, missing))}" if missing else f"got {ids[0]}"
            raise UserError(f"{source}: class ids must be 0..{len(ids) - 1} without gaps ({detail})")
        return [table[i] for i in ids]
    raise UserError(f"{source}: expected a list of class names or a mapping {{id: name}}")


def load_names(path: str | os.PathLike) -> list[str]:
    """Read class names: ``.names``/``.txt`` one per line; YAML as a list, ``{id: name}`` or ``names:``."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise UserError(f"class names file not found: {path}")
    if path.suffix.lower() in (".yaml", ".yml"):
        from cnnlab.io import read_yaml

        return parse_names(read_yaml(path), str(path))
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"cannot read class names from {path}: {e}") from None
    names = [line.strip() for line in text.splitlines() if line.strip()]
    if not names:
        raise UserError(f"{path}: no class names in the file")
    return names
