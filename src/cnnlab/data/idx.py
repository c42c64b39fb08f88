"""The idx file format of MNIST and Fashion-MNIST (``*-idx3-ubyte.gz``), gzipped or plain."""

from __future__ import annotations

import gzip
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
    """Parse idx bytes into an array; a bad header or a size mismatch is a one-line DataError."""
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise DataError(f"{source}: not an idx file (bad magic number)")
    code, ndim = data[2], data[3]
    if code not in _IDX_DTYPES or ndim == 0:
        raise DataError(f"{source}: not an idx file (type code {code:#x}, {ndim} dimensions)")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{source}: truncated idx header")
    dims = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dtype = np.dtype(_IDX_DTYPES[code])
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    found = len(data) - header
    if found != expected:
        what = "truncated" if found < expected else "has trailing bytes"
        raise DataError(f"{source}: {what} (dimensions {dims} need {expected} data bytes, found {found})")
    arr = np.frombuffer(data, dtype=dtype, offset=header).reshape(dims)
    return arr.astype(dtype.newbyteorder("="), copy=False)


def read_idx(path: str | Path) -> np.ndarray:
    """Read one idx file (``.gz`` or plain)."""
    path = Path(path)
    return parse_idx(maybe_gunzip(read_file(path), str(path)), str(path))
