"""Native YOLOv3 and YOLOv3-tiny builders that produce (and can write) their own Darknet cfg.

    model = yolov3(num_classes=80, img_size=416)        # DarknetModel, Darknet-style random init
    write_cfg("yolov3.cfg", yolov3_sections(80, 416))   # or model.to_cfg()

The layer indices match the official ``yolov3.cfg`` / ``yolov3-tiny.cfg``, so official weights
load into these models and the cfgs they write are read by Darknet and OpenCV.
"""

from __future__ import annotations

from cnnlab.darknet.cfg import Section, section
from cnnlab.darknet.darknet53 import conv, darknet53_sections
from cnnlab.darknet.model import DarknetModel

YOLOV3_ANCHORS = [(10, 13), (16, 30), (33, 23), (30, 61), (62, 45), (59, 119), (116, 90), (156, 198),
                  (373, 326)]
YOLOV3_TINY_ANCHORS = [(10, 14), (23, 27), (37, 58), (81, 82), (135, 169), (344, 319)]


def _yolo(mask: list[int], anchors: list[tuple[int, int]], num_classes: int, scale_x_y: float | None = None
          ) -> Section:
    return section("yolo", mask=mask, anchors=[v for a in anchors for v in a], classes=num_classes,
                   num=len(anchors), jitter=0.3, ignore_thresh=0.7, truth_thresh=1, random=1,
                   scale_x_y=scale_x_y)


def _net(img_size: int, in_chans: int) -> Section:
    return section("net", batch=64, subdivisions=16, width=img_size, height=img_size, channels=in_chans,
                   momentum=0.9, decay=0.0005, learning_rate=0.001, burn_in=1000, max_batches=500200,
                   policy="steps", steps=[400000, 450000], scales=[0.1, 0.1])


def yolov3_sections(num_classes: int = 80, img_size: int = 416, in_chans: int = 3,
                    anchors: list[tuple[int, int]] | None = None, width_mult: float = 1.0) -> list[Section]:
    """The cfg of YOLOv3: Darknet-53 (layers 0-74) and detection at strides 32, 16 and 8 (107 layers)."""
    anchors = anchors or YOLOV3_ANCHORS
    if len(anchors) != 9:
        raise ValueError("YOLOv3 needs 9 anchors (3 per scale)")
    out = 3 * (num_classes + 5)

    def w(c: int) -> int:
        return max(8, int(round(c * width_mult)))

    def head(c: int) -> list[Section]:
        return [conv(w(c // 2), 1), conv(w(c), 3), conv(w(c // 2), 1), conv(w(c), 3), conv(w(c // 2), 1),
                conv(w(c), 3), conv(out, 1, activation="linear", bn=False)]

    secs = [_net(img_size, in_chans), *darknet53_sections(width_mult)]
    secs += head(1024) + [_yolo([6, 7, 8], anchors, num_classes)]               # layers 75-82
    secs += [section("route", layers=-4), conv(w(256), 1), section("upsample", stride=2),
             section("route", layers=[-1, 61])]                                 # layers 83-86
    secs += head(512) + [_yolo([3, 4, 5], anchors, num_classes)]                # layers 87-94
    secs += [section("route", layers=-4), conv(w(128), 1), section("upsample", stride=2),
             section("route", layers=[-1, 36])]                                 # layers 95-98
    secs += head(256) + [_yolo([0, 1, 2], anchors, num_classes)]                # layers 99-106
    return secs


def yolov3_tiny_sections(num_classes: int = 80, img_size: int = 416, in_chans: int = 3,
                         anchors: list[tuple[int, int]] | None = None, width_mult: float = 1.0
                         ) -> list[Section]:
    """The cfg of YOLOv3-tiny: 7 convs with max pooling (the last one size 2 stride 1), two scales."""
    anchors = anchors or YOLOV3_TINY_ANCHORS
    if len(anchors) != 6:
        raise ValueError("YOLOv3-tiny needs 6 anchors (3 per scale)")
    out = 3 * (num_classes + 5)

    def w(c: int) -> int:
        return max(4, int(round(c * width_mult)))

    secs = [_net(img_size, in_chans)]
    for i, c in enumerate((16, 32, 64, 128, 256, 512)):                         # layers 0-11
        secs += [conv(w(c), 3), section("maxpool", size=2, stride=2 if i < 5 else 1)]
    secs += [conv(w(1024), 3), conv(w(256), 1), conv(w(512), 3), conv(out, 1, activation="linear", bn=False),
             _yolo([3, 4, 5], anchors, num_classes)]                            # layers 12-16
    secs += [section("route", layers=-4), conv(w(128), 1), section("upsample", stride=2),
             section("route", layers=[-1, 8]), conv(w(256), 3),
             conv(out, 1, activation="linear", bn=False), _yolo([0, 1, 2], anchors, num_classes)]  # 17-23
    return secs


def yolov3(num_classes: int = 80, img_size: int = 416, in_chans: int = 3, **kw) -> DarknetModel:
    """YOLOv3 (Darknet-53 backbone, three scales) as a ``DarknetModel`` with Darknet-style init."""
    return DarknetModel(yolov3_sections(num_classes, img_size, in_chans, **kw), source="yolov3")


def yolov3_tiny(num_classes: int = 80, img_size: int = 416, in_chans: int = 3, **kw) -> DarknetModel:
    """YOLOv3-tiny as a ``DarknetModel`` with Darknet-style init."""
    return DarknetModel(yolov3_tiny_sections(num_classes, img_size, in_chans, **kw), source="yolov3-tiny")


BUILDERS = {"yolov3": yolov3_sections, "yolov3-tiny": yolov3_tiny_sections}


def build_sections(name: str, **kw) -> list[Section]:
    """The cfg sections of a named native architecture (``yolov3``, ``yolov3-tiny``)."""
    from cnnlab.errors import UserError

    key = name.lower().replace("_", "-")
    if key not in BUILDERS:
        raise UserError(f"unknown YOLO architecture {name!r} (known: {', '.join(BUILDERS)})")
    return BUILDERS[key](**kw)
