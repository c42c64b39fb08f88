"""Atomic writes and safe loads: files the user keeps are never half-written, loads never run code."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml

from cnnlab.errors import UserError, first_line


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed onto ``path``.

    On an exception the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual permissions
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write bytes to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write text (UTF-8) to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented JSON, atomically."""
    return atomic_write_text(path, json.dumps(obj, indent=2, default=_json_default) + "\n")


def write_yaml(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as block-style YAML, atomically."""
    return atomic_write_text(path, yaml.safe_dump(obj, sort_keys=False, default_flow_style=False))


def read_yaml(path: str | os.PathLike) -> Any:
    """Read a YAML file with the safe loader; a syntax error is a UserError."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"file not found: {path}")
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise UserError(f"{path}: invalid YAML ({str(e).splitlines()[0]})") from None


def read_json(path: str | os.PathLike) -> Any:
    """Read a JSON file; a syntax error is a UserError."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"file not found: {path}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise UserError(f"{path}: invalid JSON ({e})") from None


def plain_data(obj: Any, other: Callable[[Any], Any] | None = None) -> Any:
    """``obj`` as plain data for JSON, YAML and ``weights_only`` loads.

    Dicts get string keys, tuples become lists, numpy scalars numbers, paths strings (recursively);
    any other value goes through ``other`` (default: kept as it is; ``str`` stringifies; a function
    that raises rejects it).
    """
    if isinstance(obj, dict):
        return {str(k): plain_data(v, other) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain_data(v, other) for v in obj]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    np = sys.modules.get("numpy")  # not imported yet: obj cannot be a numpy scalar
    if np is not None and isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    return other(obj) if other is not None else obj


def torch_save_atomic(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` to a temporary file, then rename into place."""
    import torch

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
    return Path(path)


def torch_load_safe(path: str | os.PathLike, map_location: Any = "cpu", mmap: bool = False) -> Any:
    """Load a torch file with ``weights_only=True``: tensors and plain containers only, never code.

    ``mmap`` maps the tensors instead of reading them (a cheap peek at the plain data; zip files only).
    """
    import pickle
    import zipfile

    import torch

    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True,
                          mmap=mmap and zipfile.is_zipfile(path))
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else "unsupported content"
        raise UserError(f"{path}: refused to load (not a plain weights file: {first})") from None
    except (RuntimeError, EOFError, OSError) as e:
        raise UserError(f"{path}: not a readable checkpoint ({first_line(e)})") from None


def _json_default(o: Any) -> Any:
    if isinstance(o, os.PathLike):
        return os.fspath(o)
    if hasattr(o, "tolist"):  # numpy scalars and arrays, tensors
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
