"""Segmentation networks: a U-Net and FCN-8s / FCN-32s from scratch, torchvision's models by name.

Every model maps ``(B, C, H, W)`` images to ``(B, K, H, W)`` class scores. ``spec`` (plain data, in
the checkpoint) rebuilds the same network.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.errors import UserError

TORCHVISION = ("fcn_resnet50", "fcn_resnet101", "deeplabv3_mobilenet_v3_large", "deeplabv3_resnet50",
               "lraspp_mobilenet_v3_large")


def _block(cin: int, cout: int) -> nn.Sequential:
    """Two 3x3 conv-BN-ReLU."""
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                         nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class UNet(nn.Module):
    """U-Net (Ronneberger et al. 2015), small: four 2x downsamplings, skip connections by concatenation,
    transposed-convolution upsampling, padded convolutions (output size = input size)."""

    def __init__(self, num_classes: int, in_chans: int = 3, width: int = 16) -> None:
        super().__init__()
        ch = [width * 2 ** i for i in range(5)]
        self.down = nn.ModuleList([_block(in_chans, ch[0])] + [_block(ch[i], ch[i + 1]) for i in range(4)])
        self.up = nn.ModuleList([nn.ConvTranspose2d(ch[i + 1], ch[i], 2, stride=2) for i in reversed(range(4))])
        self.merge = nn.ModuleList([_block(2 * ch[i], ch[i]) for i in reversed(range(4))])
        self.head = nn.Conv2d(ch[0], num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        for up, merge, skip in zip(self.up, self.merge, reversed(skips[:-1]), strict=True):
            x = merge(torch.cat([up(x), skip], dim=1))
        return self.head(x)


class FCN(nn.Module):
    """FCN (Long et al. 2015) on a small VGG-style encoder from scratch: five conv blocks each followed by
    a 2x max-pool (strides 2..32). FCN-32s upsamples the stride-32 scores 32x; FCN-8s adds the scores of
    the stride-16 and stride-8 features on the way up (the skip architecture of the paper)."""

    def __init__(self, num_classes: int, in_chans: int = 3, width: int = 16, variant: str = "fcn8s") -> None:
        super().__init__()
        ch = [width * min(2 ** i, 8) for i in range(5)]
        self.blocks = nn.ModuleList([_block(in_chans, ch[0])] + [_block(ch[i], ch[i + 1]) for i in range(4)])
        self.variant = variant
        self.score32 = nn.Conv2d(ch[4], num_classes, 1)
        if variant == "fcn8s":
            self.score16 = nn.Conv2d(ch[3], num_classes, 1)
            self.score8 = nn.Conv2d(ch[2], num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[2:]
        feats = []
        for block in self.blocks:
            x = F.max_pool2d(block(x), 2)
            feats.append(x)
        score = self.score32(feats[4])
        if self.variant == "fcn8s":
            score = F.interpolate(score, scale_factor=2.0, mode="bilinear", align_corners=False) + self.score16(feats[3])
            score = F.interpolate(score, scale_factor=2.0, mode="bilinear", align_corners=False) + self.score8(feats[2])
        return F.interpolate(score, size=size, mode="bilinear", align_corners=False)


class TorchvisionSegmenter(nn.Module):
    """A torchvision segmentation model returning its ``out`` map only."""

    def __init__(self, name: str, num_classes: int) -> None:
        super().__init__()
        from torchvision.models import segmentation

        kwargs: dict[str, Any] = {"weights": None, "weights_backbone": None, "num_classes": num_classes}
        if not name.startswith("lraspp"):
            kwargs["aux_loss"] = False
        self.net = getattr(segmentation, name)(**kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)["out"]


def build_segmenter(spec: dict[str, Any]) -> nn.Module:
    """The network of ``spec`` = {"name", "num_classes", "in_chans", "width"}."""
    name, k, c = spec["name"], int(spec["num_classes"]), int(spec["in_chans"])
    if name == "unet":
        return UNet(k, c, int(spec["width"]))
    if name in ("fcn8s", "fcn32s"):
        return FCN(k, c, int(spec["width"]), name)
    if name in TORCHVISION:
        if c != 3:
            raise UserError(f"{name} takes 3-channel images")
        return TorchvisionSegmenter(name, k)
    raise UserError(f"unknown segmentation model {name!r}")


def load_local_weights(model: nn.Module, path: str) -> str:
    """A torchvision state-dict file (e.g. ``fcn_resnet50_coco-1167a1af.pth``) into ``model``: tensors
    whose names and shapes fit (a classifier for another class count is left at its initialisation)."""
    from pathlib import Path

    from cnnlab.io import torch_load_safe

    if not Path(path).is_file():
        raise UserError(f"weights file not found: {path}")
    state = torch_load_safe(path)
    if not isinstance(state, dict):
        raise UserError(f"{path}: not a state dict")
    target = model.net if isinstance(model, TorchvisionSegmenter) else model
    own = target.state_dict()
    fit = {k: v for k, v in state.items() if k in own and isinstance(v, torch.Tensor) and v.shape == own[k].shape}
    if not fit:
        raise UserError(f"{path}: no tensor fits {type(target).__name__} (wrong architecture?)")
    target.load_state_dict(fit, strict=False)
    return f"{len(fit)}/{len(own)} tensors from {path}"
