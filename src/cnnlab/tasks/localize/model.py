"""The localiser: a backbone giving ``features`` values per image, a class head and a box head.

The box head predicts (cx, cy, w, h) as fractions of the image (a sigmoid); ``boxes_xyxy`` turns them
into corners. ``spec`` (plain data, in the checkpoint) rebuilds the same network.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class LocNet(nn.Module):
    """A small CNN from scratch: a stride-2 conv, three conv-BN-ReLU + 2x2 max-pool stages (an
    ``img_size/16`` grid). Its ``features`` are two parts: the flattened grid through a linear layer (it
    keeps where things are, which the box needs) and the channels' global mean and maximum through
    another (what is there, wherever it is and however small, which the class needs)."""

    def __init__(self, features: int = 256, in_chans: int = 3, img_size: int = 64, width: int = 16) -> None:
        super().__init__()
        chans = [width, 2 * width, 4 * width, 4 * width]
        layers: list[nn.Module] = [nn.Conv2d(in_chans, width, 3, stride=2, padding=1, bias=False),
                                   nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
        for cin, cout in zip(chans[:-1], chans[1:], strict=True):
            layers += [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
                       nn.ReLU(inplace=True), nn.MaxPool2d(2)]
        self.convs = nn.Sequential(*layers)
        grid = ((img_size + 1) // 2) // 8
        self.pooled = min(chans[-1], features // 2)
        self.where = nn.Linear(grid * grid * chans[-1], features - self.pooled)
        self.what = nn.Linear(2 * chans[-1], self.pooled)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.convs(x)
        pooled = torch.cat([f.mean((2, 3)), f.amax((2, 3))], dim=1)
        return torch.cat([self.where(f.flatten(1)), self.what(pooled)], dim=1)


def locnet(features: int = 256, in_chans: int = 3, img_size: int = 64, width: int = 16) -> nn.Module:
    """The default localiser backbone (:class:`LocNet`)."""
    return LocNet(features, in_chans, img_size, width)


class Localizer(nn.Module):
    """``forward(x) -> (class logits (B, C), boxes (B, 4) cx, cy, w, h in [0, 1])``."""

    def __init__(self, backbone: nn.Module, features: int, num_classes: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.cls_head = nn.Linear(features, num_classes)
        self.box_head = nn.Linear(features, 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = torch.relu(self.backbone(x))
        return self.cls_head(f), torch.sigmoid(self.box_head(f))


def boxes_xyxy(cxcywh: torch.Tensor) -> torch.Tensor:
    """(cx, cy, w, h) -> (x0, y0, x1, y1)."""
    c, s = cxcywh[..., :2], cxcywh[..., 2:]
    return torch.cat([c - s / 2, c + s / 2], dim=-1)


def build_localizer(spec: dict[str, Any]) -> Localizer:
    """The network of ``spec`` = {"backbone", "features", "num_classes", "in_chans", "img_size"}."""
    name, feats = spec["backbone"], int(spec["features"])
    if name == "locnet":
        backbone = locnet(feats, int(spec["in_chans"]), int(spec["img_size"]))
    else:
        from cnnlab.models import create_model, resolve_model

        reg, kwargs = resolve_model(name)
        backbone = create_model(reg, num_classes=feats, in_chans=int(spec["in_chans"]),
                                img_size=int(spec["img_size"]), **kwargs)
    return Localizer(backbone, feats, int(spec["num_classes"]))
