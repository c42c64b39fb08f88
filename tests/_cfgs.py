"""Darknet cfg texts shared by the detection tests (64x64 input, two classes)."""

from __future__ import annotations

NET = "[net]\nwidth=64\nheight=64\nchannels=3\n"


def yolo_head(act: str = "linear", extra: str = "", nc: int = 2) -> str:
    """A 1x1 convolution to 3 x (5 + nc) maps and a [yolo] layer on it (``extra``: more yolo keys)."""
    return f"""
[convolutional]
filters={3 * (5 + nc)}
size=1
stride=1
pad=1
activation={act}

[yolo]
mask=0,1,2
anchors=10,14, 23,27, 37,58
classes={nc}
num=3
{extra}"""


def tiny_cfg(nc: int = 2) -> str:
    """One strided BN conv and a head for ``nc`` classes: the smallest detector the tests run."""
    return NET + """
[convolutional]
batch_normalize=1
filters=8
size=3
stride=2
pad=1
activation=leaky
""" + yolo_head(nc=nc)


TINY_CFG = tiny_cfg()


def v4_tiny_cfg(head_act: str = "logistic", new_coords: int = 1) -> str:
    """A YOLOv4-tiny-style block: CSP split with route groups/group_id, mish, swish, scale_x_y, new_coords."""
    return NET + """
[convolutional]
batch_normalize=1
filters=16
size=3
stride=2
pad=1
activation=mish

[convolutional]
batch_normalize=1
filters=32
size=3
stride=1
pad=1
activation=leaky

[route]
layers=-1
groups=2
group_id=1

[convolutional]
batch_normalize=1
filters=16
size=3
stride=1
pad=1
activation=swish

[route]
layers=-1,-2

[maxpool]
size=2
stride=2
""" + yolo_head(head_act, f"scale_x_y=1.05\nnew_coords={new_coords}\n")
