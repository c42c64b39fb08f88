"""PyTorch modules for Darknet layer types (convolutional, maxpool, route, shortcut, upsample, yolo, ...)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.darknet.cfg import UnsupportedCfg

# BN epsilon inside the square root. OpenCV's Darknet importer uses 1e-6 (measured: 1e-5 would differ
# from it by ~1e-3 on channels with small running variance); Darknet forks use 1e-5 or 1e-6.
DARKNET_BN_EPS = 1e-6


def make_activation(name: str, where: str = "", inplace: bool = False) -> nn.Module:
    """The module for a Darknet ``activation=`` value (``inplace`` for the ReLU family)."""
    name = name.strip().lower()
    table = {
        "linear": nn.Identity,
        "leaky": lambda: nn.LeakyReLU(0.1, inplace=inplace),
        "relu": lambda: nn.ReLU(inplace=inplace),
        "relu6": lambda: nn.ReLU6(inplace=inplace),
        "mish": nn.Mish,
        "swish": nn.SiLU,
        "logistic": nn.Sigmoid,
        "tanh": nn.Tanh,
        "elu": nn.ELU,
        "selu": nn.SELU,
        "gelu": nn.GELU,
        "hardswish": nn.Hardswish,
    }
    if name not in table:
        raise UnsupportedCfg(f"{where}unsupported activation {name!r} (supported: {', '.join(sorted(table))})")
    return table[name]()


class ConvLayer(nn.Module):
    """``[convolutional]``: conv (bias only without BN) -> BatchNorm -> activation."""

    def __init__(self, in_ch: int, filters: int, size: int, stride: tuple[int, int], padding: int,
                 groups: int, batch_normalize: bool, activation: str, dilation: int = 1,
                 where: str = "") -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_ch, filters, size, stride=stride, padding=padding, groups=groups,
                              dilation=dilation, bias=not batch_normalize)
        self.bn = nn.BatchNorm2d(filters, eps=DARKNET_BN_EPS) if batch_normalize else None
        self.act = make_activation(activation, where, inplace=True)  # acts on the conv's fresh output

    def fuse(self) -> None:
        """Fold the batch norm into the convolution (inference only; as OpenCV does)."""
        if self.bn is not None:
            from torch.nn.utils.fusion import fuse_conv_bn_eval

            self.conv = fuse_conv_bn_eval(self.conv.eval(), self.bn.eval())
            self.bn = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if self.bn is not None:
            x = self.bn(x)
        return self.act(x)


class MaxPoolLayer(nn.Module):
    """``[maxpool]`` with Darknet's padding: ``padding`` (default size-1) split as ``pad//2`` before.

    ``size=2 stride=1`` (YOLOv3-tiny) therefore pads one row/column at the bottom/right only, so the
    output keeps the input size.
    """

    def __init__(self, size: int, stride: tuple[int, int], padding: int) -> None:
        super().__init__()
        self.size, self.stride, self.padding = size, stride, padding
        self.before = padding // 2
        self.after = padding - self.before

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.before == self.after and self.before <= self.size // 2:
            return F.max_pool2d(x, self.size, self.stride, padding=self.before)
        x = F.pad(x, (self.before, self.after, self.before, self.after), value=float("-inf"))
        return F.max_pool2d(x, self.size, self.stride)


class RouteLayer(nn.Module):
    """``[route]``: concatenate earlier outputs along channels, optionally taking one of ``groups`` slices."""

    def __init__(self, sources: list[int], groups: int = 1, group_id: int = 0) -> None:
        super().__init__()
        self.sources, self.groups, self.group_id = sources, groups, group_id

    def forward(self, inputs: list[torch.Tensor]) -> torch.Tensor:
        if self.groups > 1:
            inputs = [t.chunk(self.groups, dim=1)[self.group_id] for t in inputs]
        return inputs[0] if len(inputs) == 1 else torch.cat(inputs, dim=1)


class ShortcutLayer(nn.Module):
    """``[shortcut]``: add earlier outputs to the previous one, then activate.

    As Darknet's ``shortcut_cpu``: over the channels both have (extra channels of the previous output
    pass through); an earlier output ``k`` times larger is sampled every ``k``-th pixel, one ``k`` times
    smaller is added at every ``k``-th pixel of the previous output (the strided shortcut of Darknet's
    ResNet-style cfgs).
    """

    def __init__(self, sources: list[int], activation: str = "linear", where: str = "") -> None:
        super().__init__()
        self.sources = sources
        self.act = make_activation(activation, where)

    def forward(self, x: torch.Tensor, others: list[torch.Tensor]) -> torch.Tensor:
        for o in others:
            if o.shape[2:] == x.shape[2:] and o.shape[1] == x.shape[1]:
                x = x + o
                continue
            c = min(o.shape[1], x.shape[1])
            stride, sample = max(o.shape[3] // x.shape[3], 1), max(x.shape[3] // o.shape[3], 1)
            add = o[:, :c, ::stride, ::stride]
            h, w = min(add.shape[2], x.shape[2] // sample), min(add.shape[3], x.shape[3] // sample)
            x = x.clone()
            x[:, :c, :h * sample:sample, :w * sample:sample] += add[:, :, :h, :w]
        return self.act(x)


class ScaleChannelsLayer(nn.Module):
    """``[scale_channels]`` (squeeze-and-excitation): an earlier ``(B, C, H, W)`` output times the previous
    ``(B, C, 1, 1)`` one, per channel, then the activation."""

    def __init__(self, source: int, activation: str = "linear", where: str = "") -> None:
        super().__init__()
        self.sources = [source]
        self.act = make_activation(activation, where)

    def forward(self, x: torch.Tensor, others: list[torch.Tensor]) -> torch.Tensor:
        return self.act(others[0] * x)


class SamLayer(nn.Module):
    """``[sam]`` (spatial attention, YOLOv4-style): an earlier output times the previous one,
    element-wise (same shape), then the activation."""

    def __init__(self, source: int, activation: str = "linear", where: str = "") -> None:
        super().__init__()
        self.sources = [source]
        self.act = make_activation(activation, where)

    def forward(self, x: torch.Tensor, others: list[torch.Tensor]) -> torch.Tensor:
        return self.act(others[0] * x)


class ReorgLayer(nn.Module):
    """``[reorg]`` (YOLOv2's passthrough): ``(B, C, H, W)`` -> ``(B, C*s*s, H/s, W/s)``.

    Darknet's reorg layer runs ``reorg_cpu(..., forward=0)``, which is not the space-to-depth its name
    suggests: it reads the input buffer as ``(C/s², H*s, W*s)``. The released YOLOv2 weights were trained
    with that order, and OpenCV reproduces it; so does this layer (needs ``C`` divisible by ``s*s``).
    """

    def __init__(self, stride: int) -> None:
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        s = self.stride
        v = x.reshape(b, c // (s * s), h, s, w, s)          # the buffer as (C/s², H*s, W*s), split
        v = v.permute(0, 3, 5, 1, 2, 4)                      # (dy, dx, c', j, i)
        return v.reshape(b, c * s * s, h // s, w // s)


class UpsampleLayer(nn.Module):
    """``[upsample]``: nearest-neighbour upsampling by ``stride`` (values times ``scale``)."""

    def __init__(self, stride: int, scale: float = 1.0) -> None:
        super().__init__()
        self.stride, self.scale = stride, scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=float(self.stride), mode="nearest")
        return x * self.scale if self.scale != 1.0 else x


def _cells(x: torch.Tensor, num_anchors: int, classes: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A head's raw map ``(B, A*(5+C), H, W)`` as ``(B, H, W, A, 5+C)`` rows, the cell offsets
    ``(1, H, W, 1, 2)`` (x, y) and the grid size ``(W, H)``."""
    b, _, h, w = x.shape
    p = x.view(b, num_anchors, classes + 5, h, w).permute(0, 3, 4, 1, 2)
    gy, gx = torch.meshgrid(torch.arange(h, dtype=x.dtype, device=x.device),
                            torch.arange(w, dtype=x.dtype, device=x.device), indexing="ij")
    grid = torch.stack((gx, gy), dim=-1).view(1, h, w, 1, 2)
    return p, grid, torch.tensor([w, h], dtype=x.dtype, device=x.device)


class YoloLayer(nn.Module):
    """``[yolo]``: decode one detection scale into ``(B, H*W*A, 5+C)`` rows, in OpenCV's layout.

    Row order is (cell y, cell x, anchor); columns are cx, cy, w, h (fractions of the network input),
    objectness, then objectness * class probability for each class (what OpenCV's Darknet importer
    outputs). ``new_coords=1`` (scaled-YOLOv4) expects already-logistic inputs and uses
    ``wh = (2*t)^2 * anchor``.
    """

    def __init__(self, anchors: list[tuple[float, float]], classes: int, scale_x_y: float = 1.0,
                 new_coords: bool = False, mask: list[int] | None = None,
                 all_anchors: list[tuple[float, float]] | None = None) -> None:
        super().__init__()
        self.classes, self.scale_x_y, self.new_coords = classes, scale_x_y, new_coords
        self.mask = mask or list(range(len(anchors)))
        self.all_anchors = all_anchors or anchors
        self.num_anchors = len(anchors)
        self.pixel_output = False  # True: YOLOv5-style rows (pixels, objectness, class probabilities)
        self.register_buffer("anchors", torch.tensor(anchors, dtype=torch.float32), persistent=False)

    def forward(self, x: torch.Tensor, img_hw: tuple[int, int]) -> torch.Tensor:
        p, grid, size = _cells(x, self.num_anchors, self.classes)
        img = torch.tensor([img_hw[1], img_hw[0]], dtype=x.dtype, device=x.device)
        s = self.scale_x_y
        if self.new_coords:
            xy = p[..., 0:2] * s - 0.5 * (s - 1)
            wh = (p[..., 2:4] * 2) ** 2 * self.anchors
            obj, cls = p[..., 4:5], p[..., 5:]
        else:
            xy = torch.sigmoid(p[..., 0:2]) * s - 0.5 * (s - 1)
            wh = torch.exp(p[..., 2:4]) * self.anchors
            obj, cls = torch.sigmoid(p[..., 4:5]), torch.sigmoid(p[..., 5:])
        if self.pixel_output:
            out = torch.cat(((xy + grid) / size * img, wh, obj, cls), dim=-1)
        else:
            out = torch.cat(((xy + grid) / size, wh / img, obj, obj * cls), dim=-1)
        return out.reshape(x.shape[0], x.shape[2] * x.shape[3] * self.num_anchors, self.classes + 5)


def conv_out(size: int, k: int, s: int, p: int, d: int = 1) -> int:
    """Output length of a convolution."""
    return (size + 2 * p - d * (k - 1) - 1) // s + 1


def pool_out(size: int, k: int, s: int, padding: int) -> int:
    """Output length of a Darknet maxpool (total padding ``padding``)."""
    return (size + padding - k) // s + 1


def init_conv_like_darknet(layer: ConvLayer) -> None:
    """Darknet's initialisation: uniform(-scale, scale) with scale = sqrt(2 / (k*k*c/groups))."""
    w = layer.conv.weight
    fan_in = w.shape[1] * w.shape[2] * w.shape[3]
    scale = math.sqrt(2.0 / fan_in)
    nn.init.uniform_(w, -scale, scale)
    if layer.conv.bias is not None:
        nn.init.zeros_(layer.conv.bias)


class RegionLayer(nn.Module):
    """``[region]`` (YOLOv2): decode ``(B, A*(5+C), H, W)`` into ``(B, H*W*A, 5+C)`` rows, as
    Darknet's ``get_region_boxes`` and OpenCV's Region layer do.

    Anchors are in grid cells: ``w = exp(tw) * anchor_w / W``; x, y and objectness are logistic; the
    class scores are a softmax over the classes (``softmax=1``, else logistic), times the objectness.
    Rows and columns are those of :class:`YoloLayer` (cx, cy, w, h as fractions of the input).
    (OpenCV divides ``w`` by H and ``h`` by W: the same on square grids only.)
    """

    def __init__(self, anchors: list[tuple[float, float]], classes: int, softmax: bool = True) -> None:
        super().__init__()
        self.classes, self.softmax = classes, softmax
        self.num_anchors = len(anchors)
        self.mask = list(range(len(anchors)))
        self.all_anchors = anchors
        self.pixel_output = False  # True: YOLOv5-style rows (pixels, objectness, class probabilities)
        self.register_buffer("anchors", torch.tensor(anchors, dtype=torch.float32), persistent=False)

    def forward(self, x: torch.Tensor, img_hw: tuple[int, int]) -> torch.Tensor:
        p, grid, size = _cells(x, self.num_anchors, self.classes)
        xy = (torch.sigmoid(p[..., 0:2]) + grid) / size
        wh = torch.exp(p[..., 2:4]) * self.anchors / size
        obj = torch.sigmoid(p[..., 4:5])
        cls = torch.softmax(p[..., 5:], dim=-1) if self.softmax else torch.sigmoid(p[..., 5:])
        if self.pixel_output:
            img = torch.tensor([img_hw[1], img_hw[0]], dtype=x.dtype, device=x.device)
            out = torch.cat((xy * img, wh * img, obj, cls), dim=-1)
        else:
            out = torch.cat((xy, wh, obj, obj * cls), dim=-1)
        return out.reshape(x.shape[0], x.shape[2] * x.shape[3] * self.num_anchors, self.classes + 5)
