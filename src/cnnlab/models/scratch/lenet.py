"""LeNet-5 (LeCun et al. 1998) as the textbook builds it in Keras: conv6 5x5 / pool / conv16 5x5 /
pool / dense 120 / dense 84 / classes."""

from __future__ import annotations

from torch import nn

from cnnlab.models.layers import current_layers
from cnnlab.models.registry import register_model
from cnnlab.models.scratch._util import conv_out, require_size


class LeNet5(nn.Module):
    """LeNet-5. The first conv pads by 2 on inputs under 32 px (so 28x28 MNIST gives the classic
    28x28x6 maps, like Keras' ``padding="same"``); the second pads by 2 only when its input is under
    10 px (8x8 digits). Flatten size follows from ``img_size``."""

    def __init__(self, num_classes: int = 10, in_chans: int = 1, img_size: int = 28,
                 act: str = "relu", pool: str = "max", drop_rate: float = 0.0) -> None:
        super().__init__()
        acts = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}
        pools = {"max": nn.MaxPool2d, "avg": nn.AvgPool2d}
        if act not in acts or pool not in pools:
            from cnnlab.errors import ModelError

            raise ModelError(f"lenet5: act must be one of {sorted(acts)}, pool one of {sorted(pools)}")
        pad1 = 2 if img_size < 32 else 0
        s = conv_out(img_size, 5, 1, pad1) // 2
        pad2 = 2 if s < 10 else 0
        s = conv_out(s, 5, 1, pad2) // 2
        require_size("lenet5", s, img_size)
        L, pool_cls = current_layers(), pools[pool]
        self.features = nn.Sequential(
            *L.conv_block(in_chans, 6, 5, padding=pad1, act=act), pool_cls(2),
            *L.conv_block(6, 16, 5, padding=pad2, act=act), pool_cls(2),
        )
        self.flatten = nn.Flatten()
        self.classifier = nn.Sequential(
            *L.linear_block(16 * s * s, 120, act=act),
            *L.linear_block(120, 84, act=act),
            nn.Dropout(drop_rate),
            nn.Linear(84, num_classes),
        )

    def forward(self, x):
        return self.classifier(self.flatten(self.features(x)))


@register_model(input_size=(1, 28, 28), knobs=True)
def lenet5(num_classes: int = 10, in_chans: int = 3, img_size: int = 32, **kw) -> nn.Module:
    """LeNet-5: conv6-pool-conv16-pool-120-84 (61,706 parameters on MNIST)."""
    return LeNet5(num_classes=num_classes, in_chans=in_chans, img_size=img_size, **kw)
