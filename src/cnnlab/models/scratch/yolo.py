"""YOLOv3 and YOLOv3-tiny detectors (``task="detect"``); their cfgs are built in ``cnnlab.darknet.yolo``.

``create_model("yolov3-tiny", num_classes=3, img_size=320)`` is a ``DarknetModel``: ``forward`` gives
decoded ``(B, N, 5 + C)`` rows per scale, ``forward_raw`` the raw maps the training loss reads.
"""

from __future__ import annotations

from cnnlab.models.registry import register_model

_SMALL = {"img_size": 64, "width_mult": 0.125}  # the test suite's build: 1/8 of the channels, 64 px


@register_model(name="yolov3", task="detect", input_size=(3, 416, 416), aliases=("YOLOv3",),
                test_kwargs=_SMALL)
def yolov3(num_classes: int = 80, in_chans: int = 3, img_size: int = 416,
           anchors: list[list[int]] | None = None, width_mult: float = 1.0):
    """YOLOv3: Darknet-53 backbone, detection at strides 32, 16 and 8 (61.9 M parameters on COCO)."""
    from cnnlab.darknet.yolo import yolov3 as build

    return build(num_classes, img_size, in_chans, anchors=_pairs(anchors), width_mult=width_mult)


@register_model(name="yolov3-tiny", task="detect", input_size=(3, 416, 416), aliases=("yolov3_tiny",),
                test_kwargs=_SMALL)
def yolov3_tiny(num_classes: int = 80, in_chans: int = 3, img_size: int = 416,
                anchors: list[list[int]] | None = None, width_mult: float = 1.0):
    """YOLOv3-tiny: seven convs with max pooling, detection at strides 32 and 16 (8.9 M parameters on COCO)."""
    from cnnlab.darknet.yolo import yolov3_tiny as build

    return build(num_classes, img_size, in_chans, anchors=_pairs(anchors), width_mult=width_mult)


def _pairs(anchors: list[list[int]] | None) -> list[tuple[int, int]] | None:
    return [(int(round(w)), int(round(h))) for w, h in anchors] if anchors is not None else None
