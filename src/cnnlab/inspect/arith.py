"""Convolution and pooling arithmetic: output size (N + 2P - F) / S + 1 and parameters F^2 C K + K."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

from cnnlab.errors import UserError


@dataclass(frozen=True)
class LayerArith:
    """The numbers of one conv/pool layer on an N x N input (all integers, sizes per side)."""

    kind: str                # "conv" or "pool"
    n: int                   # input size
    f: int                   # kernel size
    s: int                   # stride
    p: int                   # padding per side
    out: int                 # output size (floor, as PyTorch and Keras compute it)
    exact: bool              # (N + 2P - F) divides evenly by S
    remainder: int           # (N + 2P - F) mod S: input rows/columns the last window does not reach
    c: int | None = None     # input channels
    k: int | None = None     # output channels (filters); a pooling layer keeps C
    params: int | None = None  # F*F*C*K + K (with bias) or F*F*C*K; 0 for pooling
    macs: int | None = None  # multiply-accumulates: out^2 * K * F^2 * C
    pad_total: int | None = None  # 'same' padding: total per axis (TensorFlow puts the odd pixel last)

    @property
    def note(self) -> str:
        """A one-line explanation when the stride does not tile the padded input evenly."""
        if self.exact:
            return ""
        span = self.n + 2 * self.p - self.f
        return (f"(N + 2P - F) / S = {span}/{self.s} = {span / self.s:.2f} is not an integer: the last "
                f"{self.remainder} row(s)/column(s) of the padded input are not covered; PyTorch and "
                f"Keras floor the result to {self.out}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["note"] = self.note
        return d


def output_size(n: int, f: int, s: int = 1, p: int = 0) -> int:
    """(N + 2P - F) // S + 1, the output size of a conv or pooling window (floored)."""
    _check(n=n, f=f, s=s)
    if p < 0:
        raise UserError(f"padding must be >= 0, got {p}")
    if f > n + 2 * p:
        raise UserError(f"kernel F={f} is larger than the padded input N + 2P = {n + 2 * p}")
    return (n + 2 * p - f) // s + 1


def same_padding(n: int, f: int, s: int = 1) -> tuple[int, int]:
    """'same' padding as TensorFlow computes it: output ceil(N / S); returns (output, total padding)."""
    _check(n=n, f=f, s=s)
    out = math.ceil(n / s)
    total = max((out - 1) * s + f - n, 0)
    return out, total


def conv_arith(n: int, f: int, s: int = 1, p: int | str = 0, c: int | None = None, k: int | None = None,
               pool: bool = False, bias: bool = True) -> LayerArith:
    """Output size, exactness, parameters and MACs of a conv (or pooling, ``pool=True``) layer.

    ``p`` may be "valid" (0) or "same" (Keras: output ceil(N / S); the padding per side reported is
    half the total, rounded down, like TensorFlow puts the extra pixel at the end).
    """
    if isinstance(p, str):
        mode = p.lower()
        if mode == "valid":
            p = 0
        elif mode == "same":
            out, total = same_padding(n, f, s)
            res = _build("pool" if pool else "conv", n, f, s, total // 2, out, True, 0, c, k, pool, bias)
            return replace(res, pad_total=total)
        else:
            try:
                p = int(mode)
            except ValueError:
                raise UserError(f"padding must be an integer, 'valid' or 'same', got {p!r}") from None
    out = output_size(n, f, s, p)
    span = n + 2 * p - f
    return _build("pool" if pool else "conv", n, f, s, p, out, span % s == 0, span % s, c, k, pool, bias)


def _build(kind: str, n: int, f: int, s: int, p: int, out: int, exact: bool, rem: int, c: int | None,
           k: int | None, pool: bool, bias: bool) -> LayerArith:
    _check(**{name: v for name, v in (("c", c), ("k", k)) if v is not None})
    params = macs = None
    if pool:
        k = c
        params = 0
    elif c is not None and k is not None:
        params = f * f * c * k + (k if bias else 0)
        macs = out * out * k * f * f * c
    return LayerArith(kind, n, f, s, p, out, exact, rem, c, k, params, macs)


def _check(**values: int) -> None:
    for name, v in values.items():
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise UserError(f"{name.upper() if len(name) == 1 else name} must be a positive integer, got {v!r}")
