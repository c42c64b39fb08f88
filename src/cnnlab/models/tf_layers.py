"""Layers with TensorFlow/Keras semantics, for models imported from Keras or mirroring Keras ones."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def tf_same_padding(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """TF 'same' padding (before, after) along one axis: the extra pixel goes after (bottom/right)."""
    effective = (kernel - 1) * dilation + 1
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + effective - size, 0)
    return total // 2, total - total // 2


class TFSamePad(nn.Module):
    """Pads an NCHW tensor the way TensorFlow's ``padding='same'`` does for the given kernel/stride."""

    def __init__(self, kernel: int | tuple[int, int], stride: int | tuple[int, int],
                 dilation: int | tuple[int, int] = 1, value: float = 0.0) -> None:
        super().__init__()
        self.kernel = pair(kernel)
        self.stride = pair(stride)
        self.dilation = pair(dilation)
        self.value = value

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        top, bottom = tf_same_padding(x.shape[-2], self.kernel[0], self.stride[0], self.dilation[0])
        left, right = tf_same_padding(x.shape[-1], self.kernel[1], self.stride[1], self.dilation[1])
        if top == bottom == left == right == 0:
            return x
        return F.pad(x, (left, right, top, bottom), value=self.value)

    def extra_repr(self) -> str:
        return f"kernel={self.kernel}, stride={self.stride}"


class TFAvgPool2d(nn.Module):
    """Average pooling with TF 'same' padding: padded cells are excluded from each average."""

    def __init__(self, kernel: int | tuple[int, int], stride: int | tuple[int, int]) -> None:
        super().__init__()
        self.kernel, self.stride = pair(kernel), pair(stride)
        self.pad = TFSamePad(kernel, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ones = torch.ones_like(x[:, :1])
        total = F.avg_pool2d(self.pad(x), self.kernel, self.stride, divisor_override=1)
        count = F.avg_pool2d(self.pad(ones), self.kernel, self.stride, divisor_override=1)
        return total / count


class ChannelsLastFlatten(nn.Module):
    """Flatten in Keras order (H, W, C) so Dense weights from a channels-last model apply unchanged."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 4:
            x = x.permute(0, 2, 3, 1)
        return x.flatten(1)


def pair(v: int | float | tuple[int, int] | list[int]) -> tuple[int, int]:
    """A size for both axes (Keras writes kernel sizes, strides and pools as one number or two)."""
    return (int(v), int(v)) if isinstance(v, (int, float)) else (int(v[0]), int(v[1]))
