"""Parameter counts as Keras reports them, and short human forms of counts (``30M``, ``890.4K``)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from cnnlab.errors import UserError

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn


def count_params(model: nn.Module, recurse: bool = True) -> tuple[int, int]:
    """``(trainable, non_trainable)`` element counts, matching Keras' ``model.summary()``.

    Trainable: parameters with ``requires_grad``. Non-trainable: frozen parameters plus the
    floating-point buffers kept in the state_dict (BatchNorm running mean/var, Keras' "moving"
    statistics). Integer buffers such as ``num_batches_tracked`` do not count. Shared tensors count once.
    ``recurse=False`` counts only what ``model`` holds itself, not its submodules.
    """
    seen: set[int] = set()
    counts = [0, 0]
    for m in model.modules() if recurse else [model]:
        skip = getattr(m, "_non_persistent_buffers_set", ())
        buffers = [b for n, b in m._buffers.items() if b is not None and n not in skip and b.is_floating_point()]
        for t, trains in [(p, p.requires_grad) for p in m.parameters(recurse=False)] + [(b, False) for b in buffers]:
            if id(t) not in seen:
                seen.add(id(t))
                counts[0 if trains else 1] += t.numel()
    return counts[0], counts[1]


_SUFFIX = {"": 1, "K": 10**3, "M": 10**6, "G": 10**9, "B": 10**9}


def parse_count(value: int | float | str) -> int:
    """Parse a count such as ``30M``, ``1.5m``, ``500K``, ``2G``, ``30_000_000`` or ``1,000`` to an int."""
    if isinstance(value, bool):
        raise UserError(f"invalid count {value!r}")
    if isinstance(value, (int, float)):
        if value < 0 or value != value:
            raise UserError(f"invalid count {value!r}: must be a non-negative number")
        return int(value)
    text = str(value).strip().upper().replace("_", "").replace(",", "")
    m = re.fullmatch(r"(\d+(?:\.\d*)?|\.\d+)\s*([KMGB]?)", text)
    if not m:
        raise UserError(f"invalid count {value!r}: expected a number with an optional K/M/G suffix, e.g. 30M")
    return int(round(float(m.group(1)) * _SUFFIX[m.group(2)]))


def format_count(n: int) -> str:
    """Short human form of a count: 890410 -> '890.4K', 11173962 -> '11.17M'."""
    for suffix, scale, digits in (("G", 10**9, 2), ("M", 10**6, 2), ("K", 10**3, 1)):
        if n >= scale:
            return f"{n / scale:.{digits}f}{suffix}"
    return str(n)
