"""VGG-style nets with batch norm for small images (CIFAR), and the course's CIFAR-100 net."""

from __future__ import annotations

from torch import nn

from cnnlab.errors import ModelError
from cnnlab.models.layers import current_layers
from cnnlab.models.registry import register_model

# ints are 3x3 conv widths; "M" max-pool 2, "A" avg-pool 2
CFGS: dict[str, list[int | str]] = {
    "vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg13": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "vgg19": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
              512, 512, 512, 512, "M"],
    # the course's 9.28 M-parameter CIFAR-100 net: VGG-11 widths, max pooling early, average late
    "course": [64, "M", 128, "M", 256, 256, "M", 512, 512, "A", 512, 512, "A"],
}


class VGG(nn.Module):
    """conv3x3-BN-ReLU(-dropout) stacks with 2x2 pooling, global average pool, dropout, linear head.

    ``conv_bias`` keeps a bias in each conv (Keras' default; redundant before BN, so off by default).
    A pooling step is skipped when the maps are already 1 px, so 8x8 and 28x28 inputs work too; on
    32x32 the five pools bring the maps to 1x1 exactly as in the usual CIFAR VGG.
    """

    def __init__(self, cfg: list[int | str], num_classes: int = 10, in_chans: int = 3, img_size: int = 32,
                 drop_rate: float = 0.0, conv_drop_rate: float = 0.0, conv_bias: bool = False) -> None:
        super().__init__()
        L = current_layers()
        layers: list[nn.Module] = []
        cin, size = in_chans, img_size
        for v in cfg:
            if isinstance(v, str):
                if v not in ("M", "A"):
                    raise ModelError(f"vgg: unknown pooling {v!r} in config (use 'M' or 'A')")
                if size >= 2:
                    layers.append(nn.MaxPool2d(2) if v == "M" else nn.AvgPool2d(2))
                    size //= 2
                continue
            layers += L.conv_block(cin, v, 3, padding=1, bias=conv_bias, norm="batch", inplace=True)
            if conv_drop_rate > 0:
                layers.append(nn.Dropout(conv_drop_rate))
            cin = v
        self.features = nn.Sequential(*layers)
        self.num_features = cin  # channels reaching the head (timm's convention)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.dropout = nn.Dropout(drop_rate)
        self.fc = nn.Linear(cin, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        return self.fc(self.dropout(self.flatten(self.pool(self.features(x)))))


def _vgg(key: str, num_classes: int, in_chans: int, img_size: int, **kw) -> VGG:
    return VGG(CFGS[key], num_classes=num_classes, in_chans=in_chans, img_size=img_size, **kw)


@register_model(knobs=True)
def vgg11_bn_cifar(num_classes: int = 10, in_chans: int = 3, img_size: int = 32, **kw) -> nn.Module:
    """VGG-11 with batch norm for 32x32 inputs (9.2 M parameters)."""
    return _vgg("vgg11", num_classes, in_chans, img_size, **kw)


@register_model(knobs=True)
def vgg13_bn_cifar(num_classes: int = 10, in_chans: int = 3, img_size: int = 32, **kw) -> nn.Module:
    """VGG-13 with batch norm for 32x32 inputs (9.4 M parameters)."""
    return _vgg("vgg13", num_classes, in_chans, img_size, **kw)


@register_model(knobs=True)
def vgg16_bn_cifar(num_classes: int = 10, in_chans: int = 3, img_size: int = 32, **kw) -> nn.Module:
    """VGG-16 with batch norm for 32x32 inputs (14.7 M parameters)."""
    return _vgg("vgg16", num_classes, in_chans, img_size, **kw)


@register_model(knobs=True)
def vgg19_bn_cifar(num_classes: int = 10, in_chans: int = 3, img_size: int = 32, **kw) -> nn.Module:
    """VGG-19 with batch norm for 32x32 inputs (20.0 M parameters)."""
    return _vgg("vgg19", num_classes, in_chans, img_size, **kw)


@register_model(aliases=("cifar100_termproject",), knobs=True)
def course_cifar100(num_classes: int = 10, in_chans: int = 3, img_size: int = 32,
                    conv_drop_rate: float = 0.2, **kw) -> nn.Module:
    """The course's CIFAR-100 net: conv 64-128-256-256-512x4, BN, ReLU, dropout 0.2 after each conv,
    max then average pooling (9.28 M parameters with 100 classes, as reported)."""
    kw.setdefault("conv_bias", True)  # Keras Conv2D keeps its bias before BatchNormalization
    return _vgg("course", num_classes, in_chans, img_size, conv_drop_rate=conv_drop_rate, **kw)
