"""How many random-search trials give a chance ``c`` of at least one in the top ``x`` fraction.

Each random trial lands in the top ``x`` with probability ``x``, so ``n`` trials miss it with
probability ``(1 - x)^n``: ``P(hit) = 1 - (1 - x)^n`` and ``n = ceil(log(1 - c) / log(1 - x))``.
The course's "60 random trials give a 1 - 0.95^60 ≈ 0.95 chance of a top-5 % setting" is this rule
(59 already suffice).
"""

from __future__ import annotations

import math

from cnnlab.errors import UserError


def _check_fraction(name: str, value: float) -> float:
    value = float(value)
    if not 0.0 < value < 1.0:
        raise UserError(f"{name} must be a fraction in (0, 1), got {value}")
    return value


def chance_of_top(n: int, top: float = 0.05) -> float:
    """Probability that at least one of ``n`` random trials lands in the top ``top`` fraction."""
    top = _check_fraction("top", top)
    if n < 0:
        raise UserError(f"number of trials must be >= 0, got {n}")
    return 1.0 - (1.0 - top) ** n


def trials_for_top(top: float = 0.05, confidence: float = 0.95) -> int:
    """Smallest ``n`` with ``1 - (1 - top)^n >= confidence``."""
    top = _check_fraction("top", top)
    confidence = _check_fraction("confidence", confidence)
    n = math.ceil(math.log1p(-confidence) / math.log1p(-top) - 1e-9)
    return max(1, n)


def budget_message(n: int, top: float = 0.05) -> str:
    """One line: the chance that ``n`` random trials include one from the top ``top`` fraction."""
    p = chance_of_top(n, top)
    return (f"random search: {n} trials give a {p:.1%} chance that at least one lands in the top "
            f"{top:.0%} of the space (1 - (1 - {top:g})^{n})")
