"""Wide ResNets (Zagoruyko & Komodakis 2016): WRN-d-k with (d - 4) / 6 pre-activation blocks per
group, widths 16k, 32k, 64k, and dropout between the two convs of a block."""

from __future__ import annotations

from torch import nn

from cnnlab.errors import ModelError
from cnnlab.models.layers import current_layers
from cnnlab.models.registry import register_model


class WideBlock(nn.Module):
    """BN-ReLU-conv3x3-dropout-BN-ReLU-conv3x3 with an identity or 1x1 projection shortcut."""

    def __init__(self, cin: int, cout: int, stride: int, drop_rate: float) -> None:
        super().__init__()
        L = current_layers()
        self.bn1 = L.norm_layer(cin, "batch") or nn.Identity()
        self.relu1 = L.act(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2 = L.norm_layer(cout, "batch") or nn.Identity()
        self.relu2 = L.act(cout)
        self.dropout = nn.Dropout(drop_rate)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.shortcut = None
        if stride != 1 or cin != cout:
            self.shortcut = nn.Conv2d(cin, cout, 1, stride, bias=False)

    def forward(self, x):
        out = self.relu1(self.bn1(x))
        short = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv1(out)
        out = self.conv2(self.dropout(self.relu2(self.bn2(out))))
        return out + short


class WideResNet(nn.Module):
    """WRN-depth-widen_factor for 32x32 inputs: stem conv 16, three groups (stride 1, 2, 2), BN-ReLU,
    global pool, linear head."""

    def __init__(self, depth: int = 28, widen_factor: int = 10, num_classes: int = 10, in_chans: int = 3,
                 img_size: int = 32, drop_rate: float = 0.0) -> None:
        super().__init__()
        if not isinstance(depth, int) or depth < 10 or (depth - 4) % 6:
            raise ModelError(f"wrn: depth must be 6n + 4 (10, 16, 22, 28, 40, ...), got {depth!r}")
        if not isinstance(widen_factor, int) or widen_factor < 1:
            raise ModelError(f"wrn: widen_factor must be a positive integer, got {widen_factor!r}")
        n = (depth - 4) // 6
        widths = [16, 16 * widen_factor, 32 * widen_factor, 64 * widen_factor]
        self.conv1 = nn.Conv2d(in_chans, widths[0], 3, 1, 1, bias=False)
        groups = []
        cin = widths[0]
        for g, width in enumerate(widths[1:]):
            blocks = []
            for j in range(n):
                blocks.append(WideBlock(cin, width, 2 if (g > 0 and j == 0) else 1, drop_rate))
                cin = width
            groups.append(nn.Sequential(*blocks))
        self.block1, self.block2, self.block3 = groups
        L = current_layers()
        self.bn = L.norm_layer(cin, "batch") or nn.Identity()
        self.relu = L.act(cin)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.num_features = cin  # channels reaching the head (timm's convention)
        self.fc = nn.Linear(cin, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def forward(self, x):
        x = self.block3(self.block2(self.block1(self.conv1(x))))
        return self.fc(self.flatten(self.pool(self.relu(self.bn(x)))))


@register_model(knobs=True)
def wrn_d_k(num_classes: int = 10, in_chans: int = 3, img_size: int = 32, depth: int = 16,
            widen_factor: int = 4, **kw) -> nn.Module:
    """Wide ResNet of any depth/width: options depth (6n + 4), widen_factor, drop_rate."""
    return WideResNet(depth, widen_factor, num_classes, in_chans, img_size, **kw)


@register_model(knobs=True)
def wrn16_8(num_classes: int = 10, in_chans: int = 3, img_size: int = 32, **kw) -> nn.Module:
    """WRN-16-8 (11.0 M parameters)."""
    return WideResNet(16, 8, num_classes, in_chans, img_size, **kw)


@register_model(knobs=True)
def wrn28_10(num_classes: int = 10, in_chans: int = 3, img_size: int = 32, **kw) -> nn.Module:
    """WRN-28-10 (36.5 M parameters)."""
    return WideResNet(28, 10, num_classes, in_chans, img_size, **kw)
