"""Darknet ``.weights`` files: read into / write from a ``DarknetModel``, bounds-checked.

Layout: a header of int32 ``major, minor, revision`` and ``seen`` (int64 when
``major*10 + minor >= 2``, else int32), then float32 values layer by layer. For each
convolutional layer: with batch norm ``beta (bias), gamma (scale), running mean, running var``,
without it the conv bias; then the conv weights ``(filters, in/groups, k, k)``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from cnnlab.darknet.layers import ConvLayer
from cnnlab.errors import DataError, UserError


@dataclass
class WeightsHeader:
    major: int = 0
    minor: int = 2
    revision: int = 0
    seen: int = 0

    @property
    def seen_is_int64(self) -> bool:
        return self.major * 10 + self.minor >= 2 and self.major < 1000 and self.minor < 1000

    @property
    def nbytes(self) -> int:
        return 12 + (8 if self.seen_is_int64 else 4)


def _named_file_tensors(model, cutoff: int | None = None) -> list[tuple[int, str, torch.Tensor]]:
    """(layer index, what, tensor) of the conv/BN tensors of the first ``cutoff`` layers (all when None),
    in file order."""
    return [(i, what, t) for i, m in enumerate(list(model.layers)[:cutoff]) if isinstance(m, ConvLayer)
            for what, t in ([("batch-norm bias", m.bn.bias), ("batch-norm scale", m.bn.weight),
                             ("batch-norm running mean", m.bn.running_mean),
                             ("batch-norm running variance", m.bn.running_var), ("conv weights", m.conv.weight)]
                            if m.bn is not None else [("conv bias", m.conv.bias), ("conv weights", m.conv.weight)])]


def _file_tensors(model, cutoff: int | None = None) -> list[torch.Tensor]:
    """The conv/BN tensors of the first ``cutoff`` layers (all when None), in file order."""
    return [t for _, _, t in _named_file_tensors(model, cutoff)]


def expected_count(model, cutoff: int | None = None) -> int:
    """Number of float32 values the weights file of ``model`` holds (first ``cutoff`` layers)."""
    return sum(t.numel() for t in _file_tensors(model, cutoff))


def read_header(data: bytes, path: Path) -> WeightsHeader:
    """Parse the header at the start of ``data``."""
    if len(data) < 16:
        raise DataError(f"{path}: too short for a Darknet weights file ({len(data)} bytes)")
    h = WeightsHeader(*(int(v) for v in np.frombuffer(data, dtype="<i4", count=3)))
    if len(data) < h.nbytes:
        raise DataError(f"{path}: truncated header ({len(data)} bytes)")
    h.seen = int(np.frombuffer(data, dtype="<i8" if h.seen_is_int64 else "<i4", count=1, offset=12)[0])
    return h


def file_values(path: Path) -> int:
    """Number of float32 values after the header of a Darknet weights file (read from its size)."""
    with open(path, "rb") as f:
        header = read_header(f.read(20), path)
    return (path.stat().st_size - header.nbytes) // 4


def load_darknet_weights(model, path: str | os.PathLike, cutoff: int | None = None) -> WeightsHeader:
    """Fill ``model``'s conv/BN tensors from a Darknet weights file.

    The file must hold exactly the values the cfg needs (only its first ``cutoff`` layers when
    given, e.g. ``darknet53.conv.74``); a truncated or oversized file is a ``DataError`` naming
    both counts, a file with a NaN or infinite value one naming the layer, and nothing is loaded.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"weights file not found: {path}")
    need = expected_count(model, cutoff)
    try:
        with open(path, "rb") as f:
            header = read_header(f.read(20), path)
            body = path.stat().st_size - header.nbytes
            if body % 4:
                raise DataError(f"{path}: {body} bytes after the header is not a whole number of float32 values")
            have = body // 4
            if have != need:  # known from the size alone: nothing more is read
                what = "truncated" if have < need else "oversized"
                raise DataError(f"{path}: {what} weights file: the cfg needs {need} float32 values after the "
                                f"header, the file has {have} (wrong cfg for these weights?)")
            f.seek(header.nbytes)
            data = f.read()
    except OSError as e:
        raise UserError(f"cannot read {path}: {e.strerror}") from None
    if len(data) != 4 * need:
        raise DataError(f"{path}: the file changed while it was read")
    values = np.frombuffer(data, dtype="<f4")
    tensors = _named_file_tensors(model, cutoff)
    _check_values(model, path, values, tensors)
    pos = 0
    with torch.no_grad():
        for _, _, t in tensors:
            t.copy_(torch.from_numpy(values[pos:pos + t.numel()].copy()).view_as(t))
            pos += t.numel()
    return header


def _check_values(model, path: Path, values: np.ndarray, tensors: list[tuple[int, str, torch.Tensor]]) -> None:
    """Refuse NaN or infinite values (and negative batch-norm variances): such a network outputs NaN, i.e.
    no detections at all, silently. Checked before anything is loaded."""
    finite = bool(np.isfinite(values).all())
    pos = 0
    for i, what, t in tensors:
        v = values[pos:pos + t.numel()]
        pos += t.numel()
        problem = ""
        if not finite and not np.isfinite(v).all():
            kinds = " and ".join(k for k, f in (("NaN", np.isnan), ("infinite", np.isinf)) if f(v).any())
            problem = f"{int((~np.isfinite(v)).sum())} of {v.size} values are {kinds}"
        elif what == "batch-norm running variance" and (v < 0).any():
            problem = f"{int((v < 0).sum())} of {v.size} values are negative"
        if problem:
            sections = getattr(model, "sections", None)
            at = f" ({sections[i + 1].where()})" if sections and i + 1 < len(sections) else ""
            raise DataError(f"{path}: layer {i}{at} {what}: {problem} (corrupt or diverged weights); "
                            "nothing loaded")


def darknet_weights_bytes(model, header: WeightsHeader | None = None) -> bytes:
    """The Darknet weights file content of ``model``."""
    if getattr(model, "fused", False):
        raise ValueError("a fused model (batch norm folded into the convolutions) has no Darknet weights layout")
    header = header or WeightsHeader()
    head = np.array([header.major, header.minor, header.revision], dtype="<i4").tobytes()
    head += np.array([header.seen], dtype="<i8" if header.seen_is_int64 else "<i4").tobytes()
    parts = [t.detach().cpu().float().numpy().astype("<f4").ravel() for t in _file_tensors(model)]
    return head + (np.concatenate(parts).tobytes() if parts else b"")


def save_darknet_weights(model, path: str | os.PathLike, header: WeightsHeader | None = None) -> Path:
    """Write ``model`` as a Darknet weights file (version 0.2.0, int64 ``seen``), atomically."""
    from cnnlab.io import atomic_write_bytes

    return atomic_write_bytes(path, darknet_weights_bytes(model, header))
