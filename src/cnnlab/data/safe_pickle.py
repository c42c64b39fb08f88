"""A restricted unpickler for the CIFAR python-version files: plain containers and numpy arrays only."""

from __future__ import annotations

import io
import pickle
from typing import Any

from cnnlab.errors import DataError, first_line

# The only globals the official CIFAR pickles (and numpy array pickles in general) reference.
ALLOWED_GLOBALS = frozenset({
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("_codecs", "encode"),  # how Python 3 pickles bytes at protocol 2
})


class RestrictedUnpickler(pickle.Unpickler):
    """Refuses every global outside :data:`ALLOWED_GLOBALS`, so a data file cannot run code."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"global '{module}.{name}' is not allowed")


def safe_loads(data: bytes, source: str = "pickle") -> Any:
    """Unpickle ``data`` (latin1 strings, as the Python 2 CIFAR files need) with the restricted unpickler.

    Only :data:`ALLOWED_GLOBALS` can be called, so a hostile file runs no code; whatever else goes wrong
    while reading the untrusted bytes (a truncated stream, an opcode whose length overflows, an unknown
    codec name for ``_codecs.encode``, numpy refusing a forged array or dtype state) is a one-line
    DataError naming the file.
    """
    try:
        return RestrictedUnpickler(io.BytesIO(data), encoding="latin1").load()
    except pickle.UnpicklingError as e:
        msg = first_line(e)
        if "is not allowed" in msg:
            raise DataError(f"{source}: refused to unpickle ({msg}; data files may hold arrays only)") from None
        raise DataError(f"{source}: corrupt pickle ({msg})") from None
    except Exception as e:  # noqa: BLE001 - any failure of the allowed constructors on forged input
        raise DataError(f"{source}: corrupt or truncated pickle ({first_line(e)})") from None
