"""The textbook's plain CNNs (Keras examples): the MNIST C-C-P-FC net and the CIFAR-10 CNN."""

from __future__ import annotations

from torch import nn

from cnnlab.errors import ModelError
from cnnlab.models.layers import current_layers
from cnnlab.models.registry import register_model
from cnnlab.models.scratch._util import conv_out, require_size


class MnistCNN(nn.Module):
    """conv32 3x3 - conv64 3x3 - maxpool 2 - dropout - dense 128 - dropout - dense (Keras mnist_cnn)."""

    def __init__(self, num_classes: int = 10, in_chans: int = 1, img_size: int = 28,
                 drop_rate: float = 0.5, conv_drop_rate: float = 0.25) -> None:
        super().__init__()
        s = conv_out(conv_out(img_size, 3), 3) // 2
        require_size("mnist_cnn", s, img_size, "needs at least 6 px")
        L = current_layers()
        self.features = nn.Sequential(
            *L.conv_block(in_chans, 32, 3, inplace=True),
            *L.conv_block(32, 64, 3, inplace=True),
            nn.MaxPool2d(2),
            nn.Dropout(conv_drop_rate),
        )
        self.flatten = nn.Flatten()
        self.classifier = nn.Sequential(
            *L.linear_block(64 * s * s, 128, inplace=True),
            nn.Dropout(drop_rate),
            nn.Linear(128, num_classes),
        )

    def forward(self, x):
        return self.classifier(self.flatten(self.features(x)))


_PADDINGS = ("valid", "same", "keras")


class Cifar10CNN(nn.Module):
    """conv32-conv32-pool-dropout-conv64-conv64-pool-dropout-dense512-dropout-dense.

    ``padding``: "valid" (every conv unpadded: 890,410 parameters on 32x32x3, the textbook's 0.89 M),
    "keras" (first conv of each pair "same", second "valid", as in the Keras cifar10_cnn example:
    1,250,858 parameters), "same" (all padded). None picks "valid" when the input is large enough
    (at least 20 px) and "same" otherwise (e.g. 8x8 digits).
    """

    def __init__(self, num_classes: int = 10, in_chans: int = 3, img_size: int = 32,
                 padding: str | None = None, drop_rate: float = 0.5, conv_drop_rate: float = 0.25) -> None:
        super().__init__()
        if padding is None:
            padding = "valid" if img_size >= 20 else "same"
        if padding not in _PADDINGS:
            raise ModelError(f"cifar10_cnn: padding must be one of {', '.join(_PADDINGS)}, got {padding!r}")
        pads = {"valid": (0, 0), "same": (1, 1), "keras": (1, 0)}[padding]
        s = img_size
        for _ in range(2):
            s = conv_out(conv_out(s, 3, 1, pads[0]), 3, 1, pads[1]) // 2
        require_size("cifar10_cnn", s, img_size, "try padding='same'")

        L = current_layers()

        def block(cin: int, cout: int) -> list[nn.Module]:
            return [*L.conv_block(cin, cout, 3, padding=pads[0], inplace=True),
                    *L.conv_block(cout, cout, 3, padding=pads[1], inplace=True),
                    nn.MaxPool2d(2), nn.Dropout(conv_drop_rate)]

        self.features = nn.Sequential(*block(in_chans, 32), *block(32, 64))
        self.flatten = nn.Flatten()
        self.classifier = nn.Sequential(
            *L.linear_block(64 * s * s, 512, inplace=True),
            nn.Dropout(drop_rate),
            nn.Linear(512, num_classes),
        )

    def forward(self, x):
        return self.classifier(self.flatten(self.features(x)))


@register_model(input_size=(1, 28, 28), knobs=True)
def mnist_cnn(num_classes: int = 10, in_chans: int = 3, img_size: int = 32, **kw) -> nn.Module:
    """The textbook C-C-P-FC MNIST CNN: conv32-conv64-pool-dense128 (1.2 M parameters on MNIST)."""
    return MnistCNN(num_classes=num_classes, in_chans=in_chans, img_size=img_size, **kw)


@register_model(knobs=True)
def cifar10_cnn(num_classes: int = 10, in_chans: int = 3, img_size: int = 32, **kw) -> nn.Module:
    """The textbook CIFAR-10 CNN: conv32x2-pool-conv64x2-pool-dense512 (0.89 M parameters)."""
    return Cifar10CNN(num_classes=num_classes, in_chans=in_chans, img_size=img_size, **kw)
