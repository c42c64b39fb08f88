"""Class names: the one parser (``parse_names``) for lists, ``{id: name}`` mappings, data.yaml, ``.names`` and YAML files."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from cnnlab.errors import DataError, UserError, first_line

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
    invent a class and shift nothing back into place. A name must be text or a number: ``None``, a
    list or a mapping as a name is refused, and so is a boolean (YAML reads an unquoted ``no``/``yes``
    as one, so the name as written is lost).
    """
    if isinstance(names, (str, os.PathLike)):
        return load_names(names)
    if isinstance(names, dict) and "names" in names:
        names = names["names"]
    if isinstance(names, (list, tuple)):
        if not names:
            raise UserError(f"{source}: no class names")
        return [_name(n, f"{source}[{i}]") for i, n in enumerate(names)]
    if isinstance(names, dict) and names:
        table = {}
        for k, v in names.items():
            cid = _class_id(k)
            if cid is None:
                raise UserError(f"{source}: class ids must be integers (got {_short(k)})")
            if cid in table:
                raise UserError(f"{source}: class id {_short(cid)} given twice")
            table[cid] = _name(v, f"{source}[{_short(cid)}]")
        ids = sorted(table)
        if ids != list(range(len(ids))):
            missing = next((i for i in range(len(ids)) if i not in table), None)
            detail = f"missing {missing}" if missing is not None else f"got {_short(ids[0])}"
            raise UserError(f"{source}: class ids must be 0..{len(ids) - 1} without gaps ({detail})")
        return [table[i] for i in ids]
    raise UserError(f"{source}: expected a list of class names or a mapping {{id: name}}, "
                    f"got {type(names).__name__}")


_INT_TEXT = re.compile(r"[+-]?[0-9]{1,18}")


def _class_id(key: Any) -> int | None:
    """A mapping key as a class id: an int (not a bool) or the text of one; None otherwise."""
    if isinstance(key, bool):
        return None
    if isinstance(key, int):
        return key
    if isinstance(key, str) and _INT_TEXT.fullmatch(key.strip()):
        return int(key)
    return None


def _name(value: Any, where: str) -> str:
    """One class name as text: strings and numbers are kept; None, booleans and containers refused."""
    if isinstance(value, bool):
        raise UserError(f"{where}: class name is the boolean {value} (YAML reads unquoted yes/no/on/off "
                        "as booleans: quote the name)")
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        return str(value)
    raise UserError(f"{where}: a class name must be text, got {type(value).__name__}")


def _short(value: Any) -> str:
    """A value for an error message, never long (a key may be a huge YAML structure)."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 10**30:
        return "an integer too large"   # (str() of a huge int may itself raise)
    text = repr(value) if isinstance(value, (str, int, float, bool)) or value is None else type(value).__name__
    return text if len(text) <= 40 else text[:37] + "..."


def read_yaml_file(path: str | os.PathLike) -> Any:
    """A YAML file with the safe loader; every way it can fail (syntax, a bad date, nesting too deep,
    bytes that are not UTF-8) is a one-line `DataError` naming the file."""
    from cnnlab.io import read_yaml

    try:
        return read_yaml(path)
    except DataError:
        raise
    except UserError as e:
        raise DataError(str(e)) from None
    except (ValueError, TypeError, OverflowError, RecursionError, UnicodeDecodeError, OSError) as e:
        raise DataError(f"{path}: invalid YAML ({type(e).__name__}: {first_line(e)})") from None


def load_names(path: str | os.PathLike) -> list[str]:
    """Read class names: ``.names``/``.txt`` one per line; YAML as a list, ``{id: name}`` or ``names:``."""
    from cnnlab.paths import find_path

    path = find_path(path, "names") or Path(path).expanduser()
    try:
        found = path.is_file()
    except (OSError, ValueError):   # a name too long for the file system
        found = False
    if not found:
        raise UserError(f"class names file not found: {path}")
    if path.suffix.lower() in (".yaml", ".yml"):
        return parse_names(read_yaml_file(path), str(path))
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"cannot read class names from {path}: {e}") from None
    names = [line.strip() for line in text.splitlines() if line.strip()]
    if not names:
        raise UserError(f"{path}: no class names in the file")
    return names
