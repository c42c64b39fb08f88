"""MobileNet v1 (Howard et al. 2017): depthwise + pointwise convolutions with a width multiplier.

Module names and padding follow Keras' ``keras.applications.MobileNet`` (``conv1``, ``conv_dw_1``,
``conv_pw_1_bn``, TF 'same' padding, BatchNorm epsilon 1e-3), so Keras' ImageNet weights load by name
(``cnnlab.models.keras_import.load_keras_weights``). Preprocessing for those weights: x/127.5 - 1.
"""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from cnnlab.models.registry import register_model
from cnnlab.models.tf_layers import TFSamePad

# (pointwise filters at alpha=1, depthwise stride) for the 13 depthwise-separable blocks
BLOCKS = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), (512, 1), (512, 1), (512, 1),
          (512, 1), (512, 1), (1024, 2), (1024, 1)]
KERAS_BN_EPS = 1e-3


def _bn(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, eps=KERAS_BN_EPS)  # Keras epsilon; torch momentum (stats settle in few steps)


class MobileNetV1(nn.Module):
    """MobileNet v1 with width multiplier ``alpha``; ``features`` ends at ``conv_pw_13_relu``."""

    def __init__(self, num_classes: int = 1000, in_chans: int = 3, alpha: float = 1.0,
                 depth_multiplier: int = 1, drop_rate: float = 1e-3) -> None:
        super().__init__()
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        c = int(32 * alpha)
        layers["conv1_pad"] = TFSamePad(3, 2)
        layers["conv1"] = nn.Conv2d(in_chans, c, 3, stride=2, bias=False)
        layers["conv1_bn"] = _bn(c)
        layers["conv1_relu"] = nn.ReLU6(inplace=True)
        for i, (filters, stride) in enumerate(BLOCKS, start=1):
            dw = c * depth_multiplier
            layers[f"conv_dw_{i}_pad"] = TFSamePad(3, stride)
            layers[f"conv_dw_{i}"] = nn.Conv2d(c, dw, 3, stride=stride, groups=c, bias=False)
            layers[f"conv_dw_{i}_bn"] = _bn(dw)
            layers[f"conv_dw_{i}_relu"] = nn.ReLU6(inplace=True)
            c = int(filters * alpha)
            layers[f"conv_pw_{i}"] = nn.Conv2d(dw, c, 1, bias=False)
            layers[f"conv_pw_{i}_bn"] = _bn(c)
            layers[f"conv_pw_{i}_relu"] = nn.ReLU6(inplace=True)
        self.features = nn.Sequential(layers)
        # where each resolution begins (for freezing "all but the last stage")
        self.stage_starts = ["conv1"] + [f"conv_dw_{i}" for i, (_, st) in enumerate(BLOCKS, 1) if st == 2]
        self.num_features = c
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(drop_rate)
        self.classifier = nn.Linear(c, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        x = self.pool(self.features(x)).flatten(1)
        return self.classifier(self.dropout(x))


@register_model(input_size=(3, 224, 224), test_kwargs={"img_size": 32, "alpha": 0.25})
def mobilenet_v1(num_classes: int = 10, in_chans: int = 3, img_size: int = 224, alpha: float = 1.0,
                 depth_multiplier: int = 1, drop_rate: float = 1e-3) -> MobileNetV1:
    """MobileNet v1 (width multiplier ``alpha``: 1.0, 0.75, 0.5, 0.25), Keras-compatible layer names."""
    return MobileNetV1(num_classes, in_chans, alpha, depth_multiplier, drop_rate)


def _width(alpha: float, doc: str):
    def build(num_classes: int = 10, in_chans: int = 3, img_size: int = 224, depth_multiplier: int = 1,
              drop_rate: float = 1e-3) -> MobileNetV1:
        return MobileNetV1(num_classes, in_chans, alpha, depth_multiplier, drop_rate)

    build.__doc__ = doc
    return build


# the widths Keras ships ImageNet weights for (mobilenet_<alpha>_<size>_tf[_no_top].h5)
for _alpha, _suffix in ((0.25, "025"), (0.5, "050"), (0.75, "075")):
    _fn = _width(_alpha, f"MobileNet v1 with width multiplier {_alpha} (Keras-compatible layer names).")
    _fn.__name__ = _fn.__qualname__ = f"mobilenet_v1_{_suffix}"
    register_model(input_size=(3, 224, 224), test_kwargs={"img_size": 32})(_fn)
