"""Interpret a Darknet cfg as a PyTorch module (``DarknetModel``) and load/save its ``.weights``.

    model = load_darknet("yolov3-tiny.cfg", "yolov3-tiny.weights")   # eval mode
    outputs = model(x)            # list of (B, N_i, 5+C) per [yolo] layer, see YoloLayer

Supported layers: convolutional, maxpool, route, shortcut (also between outputs of different sizes),
upsample, dropout, avgpool, softmax, cost, yolo, region, reorg, scale_channels and sam; enough for
YOLOv2(-tiny), YOLOv3(-tiny), YOLOv4(-tiny), Yolo-Fastest and EfficientNet (ENet) cfgs. A cfg that uses
something else raises :class:`UnsupportedCfg` (a ``UserError``), which the OpenCV backend takes as its
cue to read the files itself.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import nn

from cnnlab.darknet.cfg import REQUIRED, Section, UnsupportedCfg, format_cfg, parse_cfg_text, read_cfg
from cnnlab.darknet.layers import (
    ConvLayer,
    MaxPoolLayer,
    RegionLayer,
    ReorgLayer,
    RouteLayer,
    SamLayer,
    ScaleChannelsLayer,
    ShortcutLayer,
    UpsampleLayer,
    YoloLayer,
    conv_out,
    init_conv_like_darknet,
    make_activation,
    pool_out,
)
from cnnlab.errors import UserError

SUPPORTED_LAYERS = ("convolutional", "conv", "maxpool", "max", "route", "shortcut", "upsample", "dropout",
                    "avgpool", "avg", "softmax", "cost", "yolo", "region", "reorg", "scale_channels", "sam")
# layers that read earlier outputs besides the previous one: forward(x, [earlier outputs])
MERGE_LAYERS = (ShortcutLayer, ScaleChannelsLayer, SamLayer)
HEAD_LAYERS = ("yolo", "region")


# Limits checked while a cfg is built, before any tensor is allocated (a hostile or mistyped cfg must be a
# one-line error, not an attempt to allocate petabytes): one spatial size, channel count, kernel size or
# stride; all parameters and buffers together (the largest Darknet cfgs have ~0.1e9); the largest
# activation of one image at the cfg input size (YOLOv4 at 1280x1280 has ~0.1e9 values).
MAX_DIM = 1 << 16
MAX_PARAMS = 2_000_000_000
MAX_ACTIVATION = 1 << 30
MAX_SCALE = 1e4


@dataclass
class Shape:
    """Channels and spatial size of a layer output at the cfg's input size."""

    c: int
    h: int
    w: int


class DarknetModel(nn.Module):
    """A Darknet network as a PyTorch module, built from its cfg sections.

    The output contract has no mode flag:

    - ``forward_raw(x)``: with [yolo] layers, one raw ``(B, A*(5+C), H, W)`` map per [yolo] layer (what
      the training loss reads);
    - ``decode(raw, img_hw)``: those maps as decoded ``(B, H*W*A, 5+C)`` rows (normalised xywh, objectness,
      class scores), by each [yolo] layer;
    - ``forward(x)`` = ``decode(forward_raw(x), x's size)``: the rows inference reads.

    Without [yolo] layers both forwards return the last layer's output (flattened to ``(B, C)`` when it
    is 1x1: classifier cfgs).
    """

    def __init__(self, sections: list[Section], source: str = "<cfg>", *, max_params: int = MAX_PARAMS,
                 max_activation: int = MAX_ACTIVATION) -> None:
        super().__init__()
        if not sections or sections[0].type not in ("net", "network"):
            raise UserError(f"{source}: the first section must be [net]")
        self.source = source
        self.max_params, self.max_activation = max_params, max_activation
        self.sections = [replace(s, options=dict(s.options), key_lines=dict(s.key_lines), source=s.source or source)
                         for s in sections]
        net = self.sections[0]
        self.width = net.get_int("width", 416, 1, MAX_DIM)
        self.height = net.get_int("height", 416, 1, MAX_DIM)
        self.channels = net.get_int("channels", 3, 1, MAX_DIM)
        if self.channels * self.height * self.width > max_activation:
            raise UserError(f"{net.where()}: the input {self.channels}x{self.height}x{self.width} has more "
                            f"than {max_activation:,} values per image; refusing to build")
        self.fused = False
        self.layers = nn.ModuleList()
        self.types: list[str] = []
        self.shapes: list[Shape] = []
        self.yolo_indices: list[int] = []    # [yolo] layers (what training reads)
        self.head_indices: list[int] = []    # [yolo] and [region] layers (what inference decodes)
        self.num_params = 0  # counted (and bounded) before each layer is allocated
        shape = Shape(self.channels, self.height, self.width)
        for i, sec in enumerate(self.sections[1:]):
            layer, shape = self._build(i, sec, shape)
            self.layers.append(layer)
            self.types.append(_canonical(sec.type))
            self.shapes.append(shape)
        # outputs referenced later by route/shortcut are kept during forward, the rest dropped
        self.keep = {j for layer in self.layers if isinstance(layer, (RouteLayer, *MERGE_LAYERS))
                     for j in layer.sources}
        heads = self.head_layers
        self.num_classes = heads[0].classes if heads else (self.shapes[-1].c if self.shapes else 0)
        if heads and any(y.classes != self.num_classes for y in heads):
            raise UserError(f"{source}: [yolo]/[region] layers disagree on the number of classes")

    # -- construction ---------------------------------------------------------------------------
    def _where(self, i: int, sec: Section) -> str:
        return f"{sec.where()} (layer {i}): "

    def _abs_index(self, i: int, ref: int, sec: Section) -> int:
        j = i + ref if ref < 0 else ref
        if not 0 <= j < i:
            raise UserError(f"{self._where(i, sec)}refers to layer {ref}, which is not an earlier layer")
        return j

    def _check_size(self, where: str, what: str, c: int, h: int, w: int) -> None:
        """Refuse an activation of more than ``max_activation`` values per image, before allocating it."""
        if c * h * w > self.max_activation:
            raise UserError(f"{where}{what} would be {c}x{h}x{w} = {c * h * w:,} values per image at the cfg "
                            f"input size {self.width}x{self.height} (limit {self.max_activation:,}); refusing "
                            "to build")

    def _add_params(self, where: str, n: int) -> None:
        """Count ``n`` more parameters/buffers; refuse the cfg beyond ``max_params``, before allocating."""
        if self.num_params + n > self.max_params:
            raise UserError(f"{where}the network would have more than {self.max_params:,} parameters "
                            f"({self.num_params + n:,} up to this layer); refusing to build")
        self.num_params += n

    def _build(self, i: int, sec: Section, inp: Shape) -> tuple[nn.Module, Shape]:
        t = _canonical(sec.type)
        where = self._where(i, sec)
        if t == "convolutional":
            filters = sec.get_int("filters", 1, 1, MAX_DIM)
            size = sec.get_int("size", 1, 1, MAX_DIM)
            stride = sec.get_int("stride", 1, 1, MAX_DIM)
            sx, sy = sec.get_int("stride_x", stride, 1, MAX_DIM), sec.get_int("stride_y", stride, 1, MAX_DIM)
            dilation = sec.get_int("dilation", 1, 1, MAX_DIM)
            dilation = dilation if size > 1 else 1
            pad = sec.get_int("pad", 0, 0, 1)
            padding = sec.get_int("padding", 0, 0, MAX_DIM)
            padding = size // 2 * dilation if pad else padding
            groups = sec.get_int("groups", 1, 1, MAX_DIM)
            bn = sec.get_int("batch_normalize", 0, 0, 1)
            for key in ("xnor", "binary"):
                if sec.get_int(key, 0, 0, 1):
                    raise UnsupportedCfg(f"{where}{key}=1 convolutions are not supported")
            if "share_index" in sec.options:
                raise UserError(f"{sec.where('share_index')}: share_index={_short_value(sec, 'share_index')}"
                                " (a convolution reusing another layer's weights, which the .weights file "
                                "then does not repeat) is not supported (OpenCV ignores it and misreads the weights)")
            if inp.c % groups or filters % groups:
                raise UserError(f"{where}groups={groups} must divide the input channels ({inp.c}) "
                                f"and filters ({filters})")
            activation = sec.get_str("activation", "logistic")
            make_activation(activation, where)  # an unknown name is refused before anything is allocated
            out = Shape(filters, conv_out(inp.h, size, sy, padding, dilation),
                        conv_out(inp.w, size, sx, padding, dilation))
            self._check_output(where, inp, out)
            self._check_size(where, "the padded input", inp.c, inp.h + 2 * padding, inp.w + 2 * padding)
            self._add_params(where, filters * (inp.c // groups) * size * size + (4 * filters + 1 if bn else filters))
            layer = ConvLayer(inp.c, filters, size, (sy, sx), padding, groups, bool(bn), activation, dilation, where)
            init_conv_like_darknet(layer)
        elif t == "maxpool":
            if sec.get_int("maxpool_depth", 0, 0, 1):
                raise UserError(f"{where}maxpool_depth is not supported")
            size = sec.get_int("size", 1, 1, MAX_DIM)
            stride = sec.get_int("stride", 1, 1, MAX_DIM)
            sx, sy = sec.get_int("stride_x", stride, 1, MAX_DIM), sec.get_int("stride_y", stride, 1, MAX_DIM)
            padding = sec.get_int("padding", size - 1, 0, MAX_DIM)
            if sx != sy:
                raise UnsupportedCfg(f"{where}different stride_x and stride_y are not supported for maxpool")
            if padding > 2 * (size - 1):  # a window over padding only would output -inf
                raise UserError(f"{sec.where('padding')}: padding={padding} is too large for size={size} (at most "
                                f"{2 * (size - 1)}: larger paddings make windows that see only padding)")
            out = Shape(inp.c, pool_out(inp.h, size, sy, padding), pool_out(inp.w, size, sx, padding))
            self._check_output(where, inp, out)
            self._check_size(where, "the padded input", inp.c, inp.h + padding, inp.w + padding)
            layer = MaxPoolLayer(size, (sy, sx), padding)
        elif t == "route":
            refs = sec.get_ints("layers", REQUIRED)
            if not refs:
                raise UserError(f"{sec.where('layers')}: 'layers' is empty")
            sources = [self._abs_index(i, r, sec) for r in refs]
            groups = sec.get_int("groups", 1, 1, MAX_DIM)
            group_id = sec.get_int("group_id", 0, 0, groups - 1)
            shapes = [self.shapes[j] for j in sources]
            if any((s.h, s.w) != (shapes[0].h, shapes[0].w) for s in shapes):
                sizes = ", ".join(f"layer {j}: {s.w}x{s.h}" for j, s in zip(sources, shapes, strict=True))
                raise UserError(f"{where}cannot concatenate outputs of different sizes ({sizes})")
            if any(s.c % groups for s in shapes):
                raise UserError(f"{where}groups={groups} does not divide the routed channels")
            out = Shape(sum(s.c // groups for s in shapes), shapes[0].h, shapes[0].w)
            self._check_output(where, inp, out)
            layer = RouteLayer(sources, groups, group_id)
        elif t == "shortcut":
            refs = sec.get_ints("from", REQUIRED)
            if not refs:
                raise UserError(f"{sec.where('from')}: 'from' is empty")
            sources = [self._abs_index(i, r, sec) for r in refs]
            wtype = sec.get_str("weights_type", "none").lower()
            if wtype != "none":
                raise UnsupportedCfg(f"{where}weights_type={wtype} shortcuts are not supported")
            for j in sources:
                s = self.shapes[j]
                big, small = (s, inp) if s.w >= inp.w else (inp, s)
                k = big.w // small.w
                if big.w != k * small.w or big.h != k * small.h:
                    raise UserError(f"{where}from={j - i} has size {s.w}x{s.h}, the previous layer {inp.w}x{inp.h}: "
                                    "a shortcut needs equal sizes or one a whole multiple of the other")
            layer, out = ShortcutLayer(sources, sec.get_str("activation", "linear"), where), inp
        elif t in ("scale_channels", "sam"):
            refs = sec.get_ints("from", REQUIRED)
            if len(refs) != 1:
                raise UserError(f"{sec.where('from')}: 'from' must name one earlier layer")
            j = self._abs_index(i, refs[0], sec)
            s = self.shapes[j]
            if t == "scale_channels":
                if sec.get_int("scale_wh", 0, 0, 1):
                    raise UnsupportedCfg(f"{where}scale_wh=1 is not supported")
                if (inp.h, inp.w) != (1, 1) or inp.c != s.c:
                    raise UserError(f"{where}scales the {s.c} channels of layer {j} by the previous output, which "
                                    f"is {inp.c}x{inp.h}x{inp.w}; expected {s.c}x1x1")
                cls = ScaleChannelsLayer
            else:
                if (s.c, s.h, s.w) != (inp.c, inp.h, inp.w):
                    raise UserError(f"{where}multiplies layer {j} ({s.c}x{s.h}x{s.w}) by the previous output "
                                    f"({inp.c}x{inp.h}x{inp.w}); they must have the same shape")
                cls = SamLayer
            layer, out = cls(j, sec.get_str("activation", "linear"), where), s
        elif t == "reorg":
            stride = sec.get_int("stride", 2, 1, MAX_DIM)
            if sec.get_int("reverse", 0, 0, 1):
                raise UnsupportedCfg(f"{where}reverse=1 is not supported")
            if inp.h % stride or inp.w % stride or inp.c % (stride * stride):
                raise UserError(f"{where}stride={stride} needs the input size ({inp.w}x{inp.h}) divisible by the "
                                f"stride and the channels ({inp.c}) by stride*stride")
            out = Shape(inp.c * stride * stride, inp.h // stride, inp.w // stride)
            self._check_output(where, inp, out)
            layer = ReorgLayer(stride)
        elif t == "region":
            layer, out = self._build_region(i, sec, inp, where), inp
            self.head_indices.append(i)
        elif t == "upsample":
            stride = sec.get_int("stride", 2)
            if stride < 1:
                raise UserError(f"{sec.where('stride')}: stride={stride} must be >= 1 (downsampling upsample "
                                "layers are not supported)")
            stride = sec.get_int("stride", 2, 1, MAX_DIM)
            scale = sec.get_float("scale", 1.0, -MAX_SCALE, MAX_SCALE)
            out = Shape(inp.c, inp.h * stride, inp.w * stride)
            self._check_output(where, inp, out)
            layer = UpsampleLayer(stride, scale)
        elif t == "dropout":
            layer, out = nn.Dropout(sec.get_float("probability", 0.5, 0.0, 1.0)), inp
        elif t == "avgpool":
            layer, out = nn.AdaptiveAvgPool2d(1), Shape(inp.c, 1, 1)
        elif t == "softmax":
            layer, out = nn.Softmax(dim=1), inp
        elif t == "cost":
            layer, out = nn.Identity(), inp
        elif t == "yolo":
            layer, out = self._build_yolo(i, sec, inp, where), inp
            self.yolo_indices.append(i)
            self.head_indices.append(i)
        else:
            raise UnsupportedCfg(f"{where}unknown layer type [{sec.type}] (supported: "
                            f"{', '.join(s for s in SUPPORTED_LAYERS if s not in ('conv', 'max', 'avg'))})")
        return layer, out

    def _check_output(self, where: str, inp: Shape, out: Shape) -> None:
        if out.c < 1 or out.h < 1 or out.w < 1:
            raise UserError(f"{where}output would be empty ({out.w}x{out.h}) at the cfg input size "
                            f"{self.width}x{self.height} (its input is {inp.w}x{inp.h})")
        self._check_size(where, "its output", out.c, out.h, out.w)

    def _build_yolo(self, i: int, sec: Section, inp: Shape, where: str) -> YoloLayer:
        classes = sec.get_int("classes", 20, 1, MAX_DIM)
        flat = sec.get_floats("anchors", [], 0.0, float(MAX_DIM))
        if len(flat) % 2 or not flat:
            raise UserError(f"{sec.where('anchors')}: 'anchors' needs an even, non-empty list of numbers")
        if not all(v > 0 for v in flat):
            raise UserError(f"{sec.where('anchors')}: anchor widths and heights must be > 0")
        all_anchors = [(flat[k], flat[k + 1]) for k in range(0, len(flat), 2)]
        num = sec.get_int("num", len(all_anchors), 1, len(all_anchors))
        mask = sec.get_ints("mask", list(range(num)))
        if not mask or any(not 0 <= m < len(all_anchors) for m in mask):
            raise UserError(f"{sec.where('mask')}: mask {mask} must refer to the {len(all_anchors)} anchors given")
        scale_x_y = sec.get_float("scale_x_y", 1.0, 0.0, MAX_SCALE)
        new_coords = sec.get_int("new_coords", 0, 0, 1)
        expected = len(mask) * (classes + 5)
        if i == 0 or self.types[i - 1] != "convolutional" or inp.c != expected:
            prev = f"the layer before it outputs {inp.c} channels"
            if i > 0 and self.types[i - 1] == "convolutional":
                prev = f"the convolutional layer before it has filters={inp.c}"
            raise UserError(f"{where}{prev}; expected filters = len(mask)*(classes+5) = "
                            f"{len(mask)}*({classes}+5) = {expected}")
        return YoloLayer([all_anchors[m] for m in mask], classes, scale_x_y, bool(new_coords), mask, all_anchors)

    def _build_region(self, i: int, sec: Section, inp: Shape, where: str) -> RegionLayer:
        classes = sec.get_int("classes", 20, 1, MAX_DIM)
        flat = sec.get_floats("anchors", [], 0.0, float(MAX_DIM))
        if len(flat) % 2 or not flat or not all(v > 0 for v in flat):
            raise UserError(f"{sec.where('anchors')}: 'anchors' needs an even, non-empty list of numbers > 0")
        anchors = [(flat[k], flat[k + 1]) for k in range(0, len(flat), 2)]
        num = sec.get_int("num", len(anchors), 1, MAX_DIM)
        if num != len(anchors):
            raise UserError(f"{sec.where('num')}: num={num} but {len(anchors)} anchors are given")
        if sec.get_int("coords", 4) != 4:
            raise UnsupportedCfg(f"{sec.where('coords')}: coords={sec.options['coords']} is not supported (4 only)")
        if "tree" in sec.options or "map" in sec.options:
            raise UnsupportedCfg(f"{where}hierarchical classes (tree=/map=, YOLO9000) are not supported")
        softmax = sec.get_int("softmax", 0, 0, 1)
        expected = num * (classes + 5)
        if inp.c != expected:
            raise UserError(f"{where}the layer before it outputs {inp.c} channels; expected "
                            f"num*(classes+5) = {num}*({classes}+5) = {expected}")
        return RegionLayer(anchors, classes, bool(softmax))

    # -- running ----------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        """Decoded rows per [yolo]/[region] layer (or the last layer's output for cfgs without them)."""
        out = self.forward_raw(x)
        return self.decode(out, (x.shape[2], x.shape[3])) if self.head_indices else out

    def decode(self, raw: list[torch.Tensor], img_hw: tuple[int, int]) -> list[torch.Tensor]:
        """Raw head input maps -> decoded rows, by each [yolo]/[region] layer (``img_hw``: the input's (h, w))."""
        return [layer(r, img_hw) for layer, r in zip(self.head_layers, raw, strict=True)]

    def forward_raw(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        """The undecoded head input maps ``(B, A*(5+C), H, W)``, one per [yolo]/[region] layer."""
        cache: dict[int, torch.Tensor] = {}
        yolo_out: list[torch.Tensor] = []
        for i, (layer, t) in enumerate(zip(self.layers, self.types, strict=True)):
            if t == "route":
                x = layer([cache[j] for j in layer.sources])
            elif t in ("shortcut", "scale_channels", "sam"):
                x = layer(x, [cache[j] for j in layer.sources])
            elif t in HEAD_LAYERS:
                yolo_out.append(x)
            else:
                x = layer(x)
            if i in self.keep:
                cache[i] = x
        if self.head_indices:
            return yolo_out
        return x.flatten(1) if x.dim() == 4 and x.shape[2] == x.shape[3] == 1 else x

    # -- description ------------------------------------------------------------------------------
    @property
    def yolo_layers(self) -> list[YoloLayer]:
        return [self.layers[i] for i in self.yolo_indices]  # type: ignore[misc]

    @property
    def head_layers(self) -> list[YoloLayer | RegionLayer]:
        """The [yolo] and [region] layers, in cfg order (what ``decode`` runs)."""
        return [self.layers[i] for i in self.head_indices]  # type: ignore[misc]

    def fuse(self) -> DarknetModel:
        """Fold every batch norm into its convolution for faster inference (eval mode; not saveable
        as Darknet weights afterwards)."""
        self.eval()
        for layer in self.conv_layers():
            layer.fuse()
        self.fused = True
        return self

    def to_cfg(self) -> str:
        """The cfg text this model was built from."""
        return format_cfg(self.sections)

    def conv_layers(self) -> list[ConvLayer]:
        return [m for m in self.layers if isinstance(m, ConvLayer)]


def _short_value(sec: Section, key: str) -> str:
    raw = sec.options.get(key, "")
    return raw if len(raw) <= 20 else raw[:17] + "..."


def _canonical(t: str) -> str:
    return {"conv": "convolutional", "max": "maxpool", "avg": "avgpool"}.get(t, t)


def model_from_cfg(cfg: str | os.PathLike | list[Section]) -> DarknetModel:
    """Build a ``DarknetModel`` (Darknet-style random init) from a cfg path, cfg text or sections."""
    if isinstance(cfg, list):
        return DarknetModel(cfg)
    if isinstance(cfg, str) and "\n" in cfg:
        return DarknetModel(parse_cfg_text(cfg), source="<cfg text>")
    return DarknetModel(read_cfg(cfg), source=str(cfg))


def load_darknet(cfg: str | os.PathLike | list[Section], weights: str | os.PathLike | None = None,
                 device: str | torch.device = "cpu") -> DarknetModel:
    """Build the network of ``cfg``, load Darknet ``weights`` if given; eval mode on ``device``."""
    from cnnlab.darknet.weights import load_darknet_weights

    model = model_from_cfg(cfg)
    if weights is not None:
        load_darknet_weights(model, Path(weights))
    return model.eval().to(device)
