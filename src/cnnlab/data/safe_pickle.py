"""A restricted unpickler for the CIFAR python-version files: plain containers and numeric arrays only.

Nothing in the file is trusted: no global outside a short list is resolved, numpy's own constructors are
never called with the file's arguments (stand-ins check the declared shape and dtype against the bytes
really present, then build the array with ``np.frombuffer``), and every length an opcode declares is
checked against the data before the C unpickler allocates it.
"""

from __future__ import annotations

import io
import pickle
import pickletools
from typing import Any

import numpy as np

from cnnlab.errors import DataError, first_line

_NUMERIC_KINDS = "biuf"            # bool, signed, unsigned, float: what data files hold
_MAX_DEPTH = 16                    # containers nested deeper than this are not a data file
_REFUSED_OPCODES = frozenset({"PERSID", "BINPERSID", "EXT1", "EXT2", "EXT4", "NEXT_BUFFER", "READONLY_BUFFER"})


class _Forged(Exception):
    """A value the file declares that cannot be a real array, dtype or string."""


class _Dtype:
    """Stands in for ``numpy.dtype(name, align, copy)`` and its ``__setstate__``: numeric dtypes only."""

    def __init__(self, name: Any, align: Any = False, copy: Any = False) -> None:
        if not isinstance(name, str) or len(name) > 8:
            raise _Forged(f"dtype name {name!r:.40}")
        try:
            dtype = np.dtype(name)
        except (TypeError, ValueError):
            raise _Forged(f"dtype {name!r}") from None
        if dtype.kind not in _NUMERIC_KINDS:
            raise _Forged(f"non-numeric dtype {name!r}")
        self.dtype = dtype

    def __setstate__(self, state: Any) -> None:
        # numpy's state: (version, byte order, subarray, names, fields, elsize, alignment, flags)
        if not isinstance(state, tuple) or len(state) < 2 or state[1] not in ("<", ">", "|", "="):
            raise _Forged("dtype state")
        if state[1] in "<>" and self.dtype.itemsize > 1:
            self.dtype = self.dtype.newbyteorder(state[1])


class _NdarrayType:
    """Stands in for ``numpy.ndarray``: only ever an argument of ``_reconstruct``, never constructed."""

    def __init__(self, *_: Any) -> None:
        raise _Forged("a direct ndarray construction")


class _Array:
    """Stands in for ``numpy.core.multiarray._reconstruct(ndarray, shape, code)`` and its state."""

    def __init__(self, *_: Any) -> None:
        self.array: np.ndarray | None = None

    def __setstate__(self, state: Any) -> None:
        # numpy's state: (version, shape, dtype, is_fortran, raw bytes)
        if not isinstance(state, tuple) or len(state) != 5:
            raise _Forged("array state")
        _, shape, dtype, fortran, raw = state
        self.array = _from_bytes(raw, dtype, shape, "F" if fortran is True else "C")


def _from_bytes(raw: Any, dtype: Any, shape: Any, order: Any) -> np.ndarray:
    """An array from bytes the file really holds, its declared shape checked against their length."""
    if not isinstance(dtype, _Dtype):
        raise _Forged("array without a numeric dtype")
    if isinstance(raw, str):              # a Python 2 pickle's str, read as latin1 (the official CIFAR files)
        try:
            raw = raw.encode("latin1")
        except UnicodeEncodeError:
            raise _Forged("array data is not latin1 bytes") from None
    if not isinstance(raw, (bytes, bytearray)):
        raise _Forged("array data is not bytes")
    if (not isinstance(shape, tuple) or len(shape) > 8
            or not all(isinstance(n, int) and not isinstance(n, bool) and 0 <= n < 1 << 40 for n in shape)):
        raise _Forged(f"array shape {shape!r:.60}")
    count = 1
    for n in shape:
        count *= n
    if count * dtype.dtype.itemsize != len(raw):
        raise _Forged(f"array of shape {shape} needs {count * dtype.dtype.itemsize} bytes, the file holds {len(raw)}")
    flat = np.frombuffer(bytes(raw), dtype=dtype.dtype)
    return flat.reshape(shape, order="F" if order == "F" else "C").copy()


def _frombuffer(raw: Any, dtype: Any, shape: Any, order: Any = "C") -> _Array:
    """Stands in for ``numpy.core.numeric._frombuffer`` (numpy's protocol-5 array pickles)."""
    out = _Array()
    out.array = _from_bytes(raw, dtype, shape, order)
    return out


def _scalar(dtype: Any, raw: Any) -> Any:
    """Stands in for ``numpy.core.multiarray.scalar``: one numeric value."""
    if not isinstance(dtype, _Dtype) or not isinstance(raw, bytes) or len(raw) != dtype.dtype.itemsize:
        raise _Forged("scalar")
    return np.frombuffer(raw, dtype=dtype.dtype)[0]


def _encode(text: Any, encoding: Any = "latin1") -> bytes:
    """Stands in for ``_codecs.encode``: how Python 3 pickles bytes at protocol 2 (latin1 only)."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise _Forged("bytes encoded other than as latin1")
    return text.encode("latin1")


def _bytes(*args: Any) -> bytes:
    """Stands in for ``bytes()``: how protocol 2 pickles an empty bytes object."""
    if args:
        raise _Forged("bytes() with arguments")
    return b""


# The only globals the official CIFAR pickles (and numpy array pickles in general) reference.
_STAND_INS: dict[tuple[str, str], Any] = {
    **{(m, "_reconstruct"): _Array for m in ("numpy.core.multiarray", "numpy._core.multiarray")},
    **{(m, "scalar"): _scalar for m in ("numpy.core.multiarray", "numpy._core.multiarray")},
    **{(m, "_frombuffer"): _frombuffer for m in ("numpy.core.numeric", "numpy._core.numeric")},
    ("numpy", "ndarray"): _NdarrayType,
    ("numpy", "dtype"): _Dtype,
    ("_codecs", "encode"): _encode,
    ("__builtin__", "bytes"): _bytes,
    ("builtins", "bytes"): _bytes,
}
ALLOWED_GLOBALS = frozenset(_STAND_INS)


class RestrictedUnpickler(pickle.Unpickler):
    """Resolves only :data:`ALLOWED_GLOBALS`, each to a checking stand-in, so a data file cannot run code."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _STAND_INS:
            return _STAND_INS[(module, name)]
        raise pickle.UnpicklingError(f"global '{module}.{name}' is not allowed")


def _check_opcodes(data: bytes) -> None:
    """Walk the opcodes once: every declared length must fit in the data and every memo index must be one a
    pickler could have written (the C unpickler allocates both first: a forged ``LONG_BINPUT 2**32-1`` alone
    asks for 64 GB), and opcodes data files never use are refused."""
    try:
        for count, (op, arg, _) in enumerate(pickletools.genops(io.BytesIO(data))):
            if op.name in _REFUSED_OPCODES:
                raise _Forged(f"opcode {op.name}")
            if op.name in ("PUT", "BINPUT", "LONG_BINPUT") and not (isinstance(arg, int) and 0 <= arg <= count):
                raise _Forged(f"memo index {arg!r:.30}")
    except (ValueError, TypeError, OverflowError, UnicodeDecodeError) as e:
        raise _Forged(first_line(e)) from None


def _resolve(obj: Any, depth: int = 0) -> Any:
    """The unpickled value with each array stand-in replaced by its array (containers rebuilt)."""
    if depth > _MAX_DEPTH:
        raise _Forged(f"containers nested deeper than {_MAX_DEPTH}")
    if isinstance(obj, _Array):
        if obj.array is None:
            raise _Forged("array without data")
        return obj.array
    if isinstance(obj, _Dtype) or obj is _NdarrayType:
        raise _Forged("a bare dtype or array type")
    if isinstance(obj, dict):
        return {_resolve(k, depth + 1): _resolve(v, depth + 1) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_resolve(v, depth + 1) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_resolve(v, depth + 1) for v in obj)
    return obj


def safe_loads(data: bytes, source: str = "pickle") -> Any:
    """Unpickle ``data`` (latin1 strings, as the Python 2 CIFAR files need) with the restricted unpickler.

    Only :data:`ALLOWED_GLOBALS` resolve (to stand-ins), so a hostile file runs no code and cannot make
    numpy allocate what its bytes do not hold; whatever else goes wrong with the untrusted bytes (a
    truncated stream, an opcode whose length overflows, a forged array or dtype state, an unhashable key)
    is a one-line DataError naming the file.
    """
    try:
        _check_opcodes(data)
        return _resolve(RestrictedUnpickler(io.BytesIO(data), encoding="latin1").load())
    except _Forged as e:
        raise DataError(f"{source}: corrupt pickle (forged {first_line(e)})") from None
    except pickle.UnpicklingError as e:
        msg = first_line(e)
        if "is not allowed" in msg:
            raise DataError(f"{source}: refused to unpickle ({msg}; data files may hold arrays only)") from None
        raise DataError(f"{source}: corrupt pickle ({msg})") from None
    except Exception as e:  # noqa: BLE001 - any other failure on forged input (e.g. an unhashable dict key)
        raise DataError(f"{source}: corrupt or truncated pickle ({first_line(e)})") from None
