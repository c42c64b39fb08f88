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
    """Read a YAML file with the safe loader; unreadable, non-UTF-8 or invalid YAML is a UserError."""
    path = Path(path)
    text = _read_text(path)
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise UserError(f"{path}: invalid YAML ({first_line(e)})") from None
    except (ValueError, RecursionError) as e:  # an integer of > 4300 digits, nesting too deep
        raise UserError(f"{path}: invalid YAML ({first_line(e)})") from None


def read_json(path: str | os.PathLike) -> Any:
    """Read a JSON file; unreadable, non-UTF-8 or invalid JSON is a UserError."""
    path = Path(path)
    text = _read_text(path)
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as e:  # JSONDecodeError is a ValueError; so are huge integers
        raise UserError(f"{path}: invalid JSON ({first_line(e)})") from None


def _read_text(path: Path) -> str:
    if not path.is_file():
        raise UserError(f"file not found: {path}")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise UserError(f"{path}: not a UTF-8 text file (byte {e.start}: {e.reason})") from None
    except OSError as e:
        raise UserError(f"{path}: cannot read ({e.strerror or e})") from None


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
    """``torch.save`` to a temporary file, then rename into place. Saved through a file object, so the zip's
    inner folder name is always ``archive`` (not the temporary file's name): the same object gives the
    same bytes, and a published file's sha256 can be reproduced."""
    import torch

    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        torch.save(obj, f)
    return Path(path)


def torch_load_safe(path: str | os.PathLike, map_location: Any = "cpu", mmap: bool = False) -> Any:
    """Load a torch file with ``weights_only=True``: tensors and plain containers only, never code.

    ``mmap`` maps the tensors instead of reading them (a cheap peek at the plain data; zip files only).
    """
    import pickle
    import struct
    import warnings
    import zipfile

    import torch

    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint not found: {path}")
    try:
        with warnings.catch_warnings():  # torch warns about the pickle protocol of some non-checkpoints
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            return torch.load(path, map_location=map_location, weights_only=True,
                              mmap=mmap and zipfile.is_zipfile(path))
    except pickle.UnpicklingError as e:
        raise UserError(f"{path}: refused to load (not a plain weights file: {_unpickling_reason(e)})") from None
    except (RuntimeError, EOFError, OSError, ValueError, KeyError, IndexError, TypeError, AttributeError,
            MemoryError, OverflowError, struct.error, zipfile.BadZipFile) as e:
        # torch reports a corrupt or truncated zip/pickle with any of these, depending on where it broke
        raise UserError(f"{path}: not a readable checkpoint ({first_line(e)})") from None


def _unpickling_reason(e: BaseException) -> str:
    """The useful line of torch's weights_only refusal (after "WeightsUnpickler error:"), else line 1."""
    text = str(e)
    _, found, rest = text.partition("WeightsUnpickler error:")
    lines = [x.strip() for x in (rest if found else text).splitlines() if x.strip()]
    reason = lines[0] if lines else "unsupported content"
    return reason if len(reason) <= 160 else reason[:157] + "..."


def _json_default(o: Any) -> Any:
    if isinstance(o, os.PathLike):
        return os.fspath(o)
    if hasattr(o, "tolist"):  # numpy scalars and arrays, tensors
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
