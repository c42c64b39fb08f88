"""ResNet-18/34 for 32x32 inputs (He et al. 2016, CIFAR variant: 3x3 stem, no max-pool) and the
pre-activation ResNet-18 (He et al. 2016b)."""

from __future__ import annotations

from torch import nn

from cnnlab.models.layers import current_layers
from cnnlab.models.registry import register_model


def _norm(L, channels: int) -> nn.Module:
    """The block's normalisation (batch norm unless the ``norm`` option says otherwise; Identity for none)."""
    return L.norm_layer(channels, "batch") or nn.Identity()


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with an identity (or 1x1 conv-BN) shortcut, ReLU after the sum."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        L = current_layers()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = _norm(L, cout)
        self.relu = L.act(cout, inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = _norm(L, cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), _norm(L, cout))

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))  # the one activation module, used twice (as built before)


class PreActBlock(nn.Module):
    """BN-ReLU-conv twice; the shortcut taps the pre-activated input when it needs a projection."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        L = current_layers()
        self.bn1 = _norm(L, cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2 = _norm(L, cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.relu = L.act(cin)
        self.relu2 = L.act(cout)
        self.shortcut = None
        if stride != 1 or cin != cout:
            self.shortcut = nn.Conv2d(cin, cout, 1, stride, bias=False)

    def forward(self, x):
        out = self.relu(self.bn1(x))
        short = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv1(out)
        out = self.conv2(self.relu2(self.bn2(out)))
        return out + short


class ResNet(nn.Module):
    """Stem conv3x3(64), four stages (64, 128, 256, 512; stride 1, 2, 2, 2), global pool, dropout, fc."""

    def __init__(self, block: type[nn.Module], layers: list[int], num_classes: int = 10, in_chans: int = 3,
                 img_size: int = 32, drop_rate: float = 0.0, preact: bool = False) -> None:
        super().__init__()
        L = current_layers()
        self.preact = preact
        self.conv1 = nn.Conv2d(in_chans, 64, 3, 1, 1, bias=False)
        self.bn1 = nn.Identity() if preact else _norm(L, 64)
        self.relu = nn.Identity() if preact else L.act(64, inplace=True)
        cin = 64
        stages = []
        for i, (width, n) in enumerate(zip((64, 128, 256, 512), layers, strict=True)):
            blocks = []
            for j in range(n):
                blocks.append(block(cin, width, stride=2 if (i > 0 and j == 0) else 1))
                cin = width
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        # pre-activation nets end with BN-ReLU before pooling
        self.final_norm = nn.Sequential(_norm(L, cin), L.act(cin)) if preact else nn.Identity()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.dropout = nn.Dropout(drop_rate)
        self.num_features = cin  # channels reaching the head (timm's convention)
        self.fc = nn.Linear(cin, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = self.flatten(self.pool(self.final_norm(x)))
        return self.fc(self.dropout(x))


@register_model(knobs=True)
def resnet18_cifar(num_classes: int = 10, in_chans: int = 3, img_size: int = 32, **kw) -> nn.Module:
    """ResNet-18 for 32x32 inputs: 3x3 stem, no max-pool (11.2 M parameters)."""
    return ResNet(BasicBlock, [2, 2, 2, 2], num_classes, in_chans, img_size, **kw)


@register_model(knobs=True)
def resnet34_cifar(num_classes: int = 10, in_chans: int = 3, img_size: int = 32, **kw) -> nn.Module:
    """ResNet-34 for 32x32 inputs: 3x3 stem, no max-pool (21.3 M parameters)."""
    return ResNet(BasicBlock, [3, 4, 6, 3], num_classes, in_chans, img_size, **kw)


@register_model(knobs=True)
def preact_resnet18(num_classes: int = 10, in_chans: int = 3, img_size: int = 32, **kw) -> nn.Module:
    """Pre-activation ResNet-18 for 32x32 inputs (BN-ReLU-conv blocks; 11.2 M parameters)."""
    return ResNet(PreActBlock, [2, 2, 2, 2], num_classes, in_chans, img_size, preact=True, **kw)
