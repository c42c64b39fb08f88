"""Small helpers shared by the from-scratch architectures."""

from __future__ import annotations

from cnnlab.errors import ModelError


def conv_out(n: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
    """Spatial output size of a convolution or pooling: floor((n + 2p - f) / s) + 1."""
    return (n + 2 * padding - kernel) // stride + 1


def require_size(model: str, size: int, img_size: int, hint: str = "") -> None:
    """Refuse an input too small for the architecture with a one-line ModelError."""
    if size < 1:
        more = f" ({hint})" if hint else ""
        raise ModelError(f"{model}: input size {img_size} is too small for this architecture{more}")
