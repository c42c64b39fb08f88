"""airbench-style CIFAR nets (Keller Jordan's airbench94 layout): a 2x2 patch-whitening convolution,
then three conv groups (conv - maxpool - BN - GELU - conv - BN - GELU), a global max pool and a
linear head scaled by 1/9. Small, BatchNorm-heavy and fast to train; ``widths`` scales it (the CPU
recipe ``cifar10-fast`` uses a narrower one than airbench94's 64-256-256).

The first convolution is meant to be initialised from the training images' patch covariance
(``TrainConfig.whiten_init``, :mod:`cnnlab.models.patch_whitening`); with a random init it still trains.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from cnnlab.errors import ModelError
from cnnlab.models.registry import register_model

_ACTS = {"gelu": nn.GELU, "relu": nn.ReLU, "silu": nn.SiLU}


class ShiftOnlyBatchNorm(nn.BatchNorm2d):
    """BatchNorm whose scale stays 1 (only the shift trains), airbench's choice; ``momentum`` is torch's
    (airbench's 0.6 running-average keep rate is torch momentum 0.4)."""

    def __init__(self, num_features: int, momentum: float = 0.4, eps: float = 1e-12) -> None:
        super().__init__(num_features, eps=eps, momentum=momentum)
        self.weight.requires_grad_(False)


class ConvGroup(nn.Module):
    """conv3x3 - maxpool 2 (when the maps are >= 2 px) - BN - act - conv3x3 - BN - act."""

    def __init__(self, cin: int, cout: int, pool: bool, act: str, bn_momentum: float) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.pool = nn.MaxPool2d(2) if pool else nn.Identity()
        self.norm1 = ShiftOnlyBatchNorm(cout, bn_momentum)
        self.act1 = _ACTS[act]()
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.norm2 = ShiftOnlyBatchNorm(cout, bn_momentum)
        self.act2 = _ACTS[act]()
        for conv in (self.conv1, self.conv2):  # airbench: identity (dirac) init of the first filters
            w = conv.weight.data
            nn.init.dirac_(w[:w.size(1)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act1(self.norm1(self.pool(self.conv1(x))))
        return self.act2(self.norm2(self.conv2(x)))


class AirNet(nn.Module):
    """Whitening conv (``2 * in_chans * k * k`` maps, k = ``whiten_kernel``) + GELU, conv groups of
    ``widths``, global max pool, linear head (no bias) times ``scale``."""

    def __init__(self, num_classes: int = 10, in_chans: int = 3, img_size: int = 32,
                 widths: Sequence[int] = (64, 256, 256), whiten_kernel: int = 2, act: str = "gelu",
                 bn_momentum: float = 0.4, scale: float = 1 / 9) -> None:
        super().__init__()
        widths = [int(w) for w in widths]
        if not widths or min(widths) < 1:
            raise ModelError(f"airbench: widths must be positive channel counts, got {list(widths)}")
        if act not in _ACTS:
            raise ModelError(f"airbench: act must be one of {', '.join(_ACTS)}, got {act!r}")
        if img_size < whiten_kernel:
            raise ModelError(f"airbench: input size {img_size} is smaller than the {whiten_kernel}px whitening kernel")
        whiten_width = 2 * in_chans * whiten_kernel ** 2
        self.whiten = nn.Conv2d(in_chans, whiten_width, whiten_kernel, padding=0, bias=True)
        self.whiten_act = _ACTS[act]()
        size, cin, groups = img_size - whiten_kernel + 1, whiten_width, []
        for w in widths:
            groups.append(ConvGroup(cin, w, pool=size >= 2, act=act, bn_momentum=bn_momentum))
            size, cin = (size // 2 if size >= 2 else size), w
        self.layers = nn.Sequential(*groups)
        self.pool = nn.AdaptiveMaxPool2d(1)
        self.flatten = nn.Flatten()
        self.head = nn.Linear(cin, num_classes, bias=False)
        self.scale = float(scale)
        self.num_features = cin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layers(self.whiten_act(self.whiten(x)))
        return self.head(self.flatten(self.pool(x))) * self.scale


@register_model(test_kwargs={"widths": [8, 16, 16]})
def airbench(num_classes: int = 10, in_chans: int = 3, img_size: int = 32, **kw) -> nn.Module:
    """airbench94's net: 2x2 whitening conv, conv groups 64-256-256 (BN shift only, GELU), max pool, head x 1/9 (1.97 M parameters)."""
    return AirNet(num_classes=num_classes, in_chans=in_chans, img_size=img_size, **kw)
