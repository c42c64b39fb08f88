"""Darknet-53 (YOLOv3's backbone, Redmon & Farhadi 2018) as Darknet cfg sections.

The classifier (``cnnlab.models`` name ``darknet53``) and the YOLOv3 builder (``cnnlab.darknet.yolo``)
share this one definition, so both can write their ``.cfg``.
"""

from __future__ import annotations

from cnnlab.darknet.cfg import Section, section

# (filters of the stride-2 conv, residual blocks after it) for the five stages
DARKNET53_STAGES = ((64, 1), (128, 2), (256, 8), (512, 8), (1024, 4))


def conv(filters: int, size: int, stride: int = 1, activation: str = "leaky", bn: bool = True) -> Section:
    """A ``[convolutional]`` section with 'same' padding."""
    return section("convolutional", batch_normalize=1 if bn else None, filters=filters, size=size,
                   stride=stride, pad=1, activation=activation)


def darknet53_sections(width_mult: float = 1.0, stages: tuple = DARKNET53_STAGES) -> list[Section]:
    """The 75 layers of Darknet-53 (no [net]): stem conv, then per stage a stride-2 conv and residuals.

    Layer 36 ends the 256-channel stage (stride 8) and layer 61 the 512-channel stage (stride 16),
    the two taps YOLOv3 routes from.
    """
    def w(c: int) -> int:
        return max(8, int(round(c * width_mult)))

    secs = [conv(w(32), 3)]
    for filters, blocks in stages:
        secs.append(conv(w(filters), 3, stride=2))
        for _ in range(blocks):
            secs += [conv(w(filters // 2), 1), conv(w(filters), 3),
                     section("shortcut", **{"from": -3}, activation="linear")]
    return secs


def darknet53_classifier_sections(num_classes: int = 1000, in_chans: int = 3, img_size: int = 256,
                                  width_mult: float = 1.0) -> list[Section]:
    """Darknet-53 classifier cfg: backbone, global average pool, 1x1 conv to ``num_classes`` logits."""
    net = section("net", width=img_size, height=img_size, channels=in_chans)
    head = [section("avgpool"), section("convolutional", filters=num_classes, size=1, stride=1, pad=1,
                                        activation="linear")]
    return [net, *darknet53_sections(width_mult), *head]
