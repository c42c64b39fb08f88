"""The idx file format of MNIST and Fashion-MNIST (``*-idx3-ubyte.gz``), gzipped or plain."""

from __future__ import annotations

import gzip
import math
import zlib
from pathlib import Path

import numpy as np

from cnnlab.errors import DataError

# idx type code -> big-endian numpy dtype
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_file(path: Path) -> bytes:
    """A data file's bytes; an unreadable file is a one-line DataError."""
    try:
        return path.read_bytes()
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror or e})") from None


def maybe_gunzip(raw: bytes, source: str) -> bytes:
    """Gunzip ``raw`` when it starts with the gzip magic; corrupt data is a DataError."""
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return gzip.decompress(raw)
    except (EOFError, gzip.BadGzipFile, zlib.error, OSError) as e:
        raise DataError(f"{source}: corrupt or truncated gzip data ({str(e) or type(e).__name__})") from None


def parse_idx(data: bytes, source: str = "idx data") -> np.ndarray:
    """Parse idx bytes into an array; a bad header or a size mismatch is a one-line DataError.

    The header is checked before anything is allocated: magic ``00 00``, a known type code, 1..255
    dimensions, none of them zero, and exactly ``prod(dims) * itemsize`` data bytes after the header
    (computed with Python integers, so dimensions whose product overflows int64 are refused, not wrapped).
    """
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise DataError(f"{source}: not an idx file (bad magic number)")
    code, ndim = data[2], data[3]
    if code not in _IDX_DTYPES:
        raise DataError(f"{source}: not an idx file (unknown type code {code:#04x}; "
                        f"known: {', '.join(f'{c:#04x}' for c in _IDX_DTYPES)})")
    if ndim == 0:
        raise DataError(f"{source}: not an idx file (0 dimensions)")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{source}: truncated idx header ({ndim} dimensions need {header} header bytes, "
                        f"found {len(data)})")
    dims = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    shown = _dims_text(dims)
    if 0 in dims:
        raise DataError(f"{source}: idx dimensions {shown} include a zero (an empty or corrupt header)")
    dtype = np.dtype(_IDX_DTYPES[code])
    expected = math.prod(dims) * dtype.itemsize  # exact: Python integers never overflow
    found = len(data) - header
    if found != expected:
        what = "truncated" if found < expected else "has trailing bytes"
        raise DataError(f"{source}: {what} (dimensions {shown} need {_bytes_text(expected)} of data, "
                        f"found {found} bytes)")
    arr = np.frombuffer(data, dtype=dtype, offset=header).reshape(dims)
    return arr.astype(dtype.newbyteorder("="), copy=False)


def _dims_text(dims: tuple[int, ...]) -> str:
    text = "x".join(str(d) for d in dims[:8])
    return text + (f"x... ({len(dims)} dimensions)" if len(dims) > 8 else "")


def _bytes_text(n: int) -> str:
    return f"{n} bytes" if n < 10**15 else f"about 10^{len(str(n)) - 1} bytes"


def read_idx(path: str | Path) -> np.ndarray:
    """Read one idx file (``.gz`` or plain)."""
    path = Path(path)
    return parse_idx(maybe_gunzip(read_file(path), str(path)), str(path))
