"""A plain deep CNN (no shortcuts, no normalisation by default): the lecture notes' test bed for
activations, initialisation and normalisation (vanishing gradients show up from ~8 layers)."""

from __future__ import annotations

from torch import nn

from cnnlab.errors import ModelError
from cnnlab.models.layers import current_layers
from cnnlab.models.registry import register_model


class PlainCNN(nn.Module):
    """``depth`` conv3x3 blocks in three stages (widths ``width``, 2x, 4x; 2x2 max-pool between stages),
    global average pool, linear head. Every conv block is conv [-> norm] -> activation, so the
    ``activation``/``norm``/``init`` options change every layer."""

    def __init__(self, num_classes: int = 10, in_chans: int = 1, img_size: int = 28, depth: int = 8,
                 width: int = 16) -> None:
        super().__init__()
        if not isinstance(depth, int) or depth < 3:
            raise ModelError(f"plain_cnn: depth must be an integer >= 3, got {depth!r}")
        if not isinstance(width, int) or width < 1:
            raise ModelError(f"plain_cnn: width must be a positive integer, got {width!r}")
        L = current_layers()
        stages = [depth // 3 + (1 if i < depth % 3 else 0) for i in range(3)]
        layers: list[nn.Module] = []
        cin, size = in_chans, img_size
        for s, n in enumerate(stages):
            cout = width * 2 ** s
            for _ in range(n):
                layers += L.conv_block(cin, cout, 3, padding=1)
                cin = cout
            if s < 2 and size >= 2:
                layers.append(nn.MaxPool2d(2))
                size //= 2
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.num_features = cin
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x):
        return self.fc(self.flatten(self.pool(self.features(x))))


@register_model(input_size=(1, 28, 28), knobs=True)
def plain_cnn(num_classes: int = 10, in_chans: int = 3, img_size: int = 32, depth: int = 8, width: int = 16,
              **kw) -> nn.Module:
    """Plain deep CNN: ``depth`` conv3x3 layers (default 8, widths 16-32-64), no norm, global pool."""
    return PlainCNN(num_classes, in_chans, img_size, depth, width, **kw)
