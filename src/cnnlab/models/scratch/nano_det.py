"""``cnnlab-nano``: a small anchor-free detector with a decoupled head (NanoDet-Plus / YOLOv8 spirit).

Why this design: on a CPU, depthwise-separable convolutions give the most accuracy per FLOP (NanoDet,
MobileNet); an anchor-free head needs no anchors fitted to the data (nothing to re-cluster for a new
dataset) and, trained with a task-aligned assigner (YOLOv8, TOOD), learns where to put positives
itself; a decoupled head (separate classification and box branches, YOLOX) trains faster and better
than a shared one. Every layer is a plain conv / batch norm / SiLU / upsample / add, so the ONNX export
runs unchanged in ONNX Runtime and OpenCV's DNN module.

Layout (``width_mult`` 1.0, 320 px: about 0.63 GFLOPs, 0.66 M parameters at 80 classes; measured by
``cnnlab summary``)::

    stem 3x3/2 -> 4 stages of depthwise-separable blocks (strides 4, 8, 16, 32)
    PAN neck (1x1 laterals, top-down + bottom-up, ``neck`` channels) on strides 8, 16, 32
    per level: a class branch and a box branch (two depthwise-separable blocks each)
      -> C class logits and 4 distances (left, top, right, bottom) from the cell centre

``forward_raw(x)`` gives one ``(B, 4 + C, H, W)`` map per level (what the loss reads); ``decode``
turns them into Darknet-layout rows ``(B, N, 5 + C)`` — cx, cy, w, h as fractions of the input,
the best class score, class scores — so every detection command post-processes them as it does a
YOLO model's; ``forward`` is both. ``boxes(raw)`` gives xyxy boxes in input pixels.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.models.registry import register_model

STRIDES = (8, 16, 32)


def _ch(c: float, mult: float) -> int:
    return max(8, int(round(c * mult / 8)) * 8)


class ConvBN(nn.Module):
    """Conv (no bias) + batch norm + SiLU; ``fuse()`` folds the norm into the conv for inference."""

    def __init__(self, c_in: int, c_out: int, k: int = 1, s: int = 1, groups: int = 1, act: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, k, s, k // 2, groups=groups, bias=False)
        self.bn: nn.Module = nn.BatchNorm2d(c_out, eps=1e-3)   # momentum 0.1: short CPU runs need fresh stats
        self.act: nn.Module = nn.SiLU(inplace=True) if act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))

    def fuse(self) -> None:
        if not isinstance(self.bn, nn.BatchNorm2d):
            return
        bn, conv = self.bn, self.conv
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        fused = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                          groups=conv.groups, bias=True).to(conv.weight.device)
        with torch.no_grad():
            fused.weight.copy_(conv.weight * scale.view(-1, 1, 1, 1))
            fused.bias.copy_(bn.bias - bn.running_mean * scale)
        self.conv, self.bn = fused, nn.Identity()


class DSBlock(nn.Module):
    """Depthwise 3x3 (stride ``s``) + pointwise 1x1; a residual when the shape is kept."""

    def __init__(self, c_in: int, c_out: int, s: int = 1) -> None:
        super().__init__()
        self.dw = ConvBN(c_in, c_in, 3, s, groups=c_in)
        self.pw = ConvBN(c_in, c_out, 1)
        self.residual = s == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.pw(self.dw(x))
        return x + y if self.residual else y


def _stage(c_in: int, c_out: int, depth: int) -> nn.Sequential:
    return nn.Sequential(DSBlock(c_in, c_out, 2), *[DSBlock(c_out, c_out) for _ in range(depth - 1)])


class PAN(nn.Module):
    """Top-down then bottom-up fusion of strides 8, 16, 32 at ``c`` channels (additions, no concat)."""

    def __init__(self, c_in: tuple[int, int, int], c: int) -> None:
        super().__init__()
        self.lateral = nn.ModuleList(ConvBN(ci, c, 1) for ci in c_in)
        self.td = nn.ModuleList(DSBlock(c, c) for _ in range(2))
        self.down = nn.ModuleList(ConvBN(c, c, 3, 2, groups=c) for _ in range(2))
        self.bu = nn.ModuleList(DSBlock(c, c) for _ in range(2))

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        p3, p4, p5 = (lat(f) for lat, f in zip(self.lateral, feats, strict=True))
        p4 = self.td[0](p4 + F.interpolate(p5, size=p4.shape[2:], mode="nearest"))
        p3 = self.td[1](p3 + F.interpolate(p4, size=p3.shape[2:], mode="nearest"))
        n4 = self.bu[0](p4 + self.down[0](p3))
        n5 = self.bu[1](p5 + self.down[1](n4))
        return [p3, n4, n5]


class DecoupledHead(nn.Module):
    """Per level: a class branch and a box branch; output ``(B, 4 + C, H, W)`` (distances first)."""

    def __init__(self, c: int, num_classes: int, levels: int = 3, depth: int = 2) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.cls = nn.ModuleList(nn.Sequential(*[DSBlock(c, c) for _ in range(depth)]) for _ in range(levels))
        self.reg = nn.ModuleList(nn.Sequential(*[DSBlock(c, c) for _ in range(depth)]) for _ in range(levels))
        self.cls_out = nn.ModuleList(nn.Conv2d(c, num_classes, 1) for _ in range(levels))
        self.reg_out = nn.ModuleList(nn.Conv2d(c, 4, 1) for _ in range(levels))
        self.reset_bias()

    def reset_bias(self) -> None:
        """Class prior 0.01 (few positives among many cells, as RetinaNet); distances start at ~1 stride."""
        for conv in self.cls_out:
            nn.init.normal_(conv.weight, std=0.01)
            nn.init.constant_(conv.bias, -math.log((1 - 0.01) / 0.01))
        for conv in self.reg_out:
            nn.init.normal_(conv.weight, std=0.01)
            nn.init.constant_(conv.bias, math.log(math.e - 1))   # softplus(b) = 1

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        return [torch.cat((ro(r(f)), co(c(f))), 1)
                for f, c, r, co, ro in zip(feats, self.cls, self.reg, self.cls_out, self.reg_out, strict=True)]


class NanoDetector(nn.Module):
    """The ``cnnlab-nano`` detector (see the module docstring). ``layers`` lists its parts in order
    (stem, 4 stages, neck, head) so ``freeze`` can keep the first N fixed."""

    anchor_free = True
    output_format = "darknet"

    def __init__(self, num_classes: int = 80, in_chans: int = 3, img_size: int = 320, width_mult: float = 1.0,
                 neck: int = 96) -> None:
        super().__init__()
        for what, v, lo, hi in (("num_classes", num_classes, 1, 100_000), ("in_chans", in_chans, 1, 64),
                                ("img_size", img_size, 32, 8192), ("width_mult", width_mult, 1e-3, 4.0),
                                ("neck", neck, 8, 1024)):
            if isinstance(v, bool) or not isinstance(v, int | float) or not lo <= v <= hi:
                raise ValueError(f"cnnlab-nano: {what} must be in [{lo}, {hi}], got {v!r}")
        c = [_ch(v, width_mult) for v in (24, 48, 96, 192, 384)]
        cn = _ch(neck, width_mult)
        self.num_classes, self.channels = int(num_classes), int(in_chans)
        self.width = self.height = int(img_size)
        self.strides = STRIDES
        self.source = "cnnlab-nano"
        self.layers = nn.ModuleList([
            ConvBN(in_chans, c[0], 3, 2),
            _stage(c[0], c[1], 2), _stage(c[1], c[2], 3), _stage(c[2], c[3], 4), _stage(c[3], c[4], 2),
            PAN((c[2], c[3], c[4]), cn),
            DecoupledHead(cn, num_classes),
        ])

    # -- forward ----------------------------------------------------------------------------------
    def forward_raw(self, x: torch.Tensor) -> list[torch.Tensor]:
        """One raw ``(B, 4 + C, H, W)`` map per stride (8, 16, 32): distances, then class logits."""
        x = self.layers[0](x)
        x = self.layers[1](x)
        c3 = self.layers[2](x)
        c4 = self.layers[3](c3)
        c5 = self.layers[4](c4)
        return self.layers[6](self.layers[5]([c3, c4, c5]))

    def boxes(self, raw: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """``(boxes (B, N, 4) xyxy in input pixels, class logits (B, N, C))`` of raw maps."""
        out_boxes, out_cls = [], []
        for r, s in zip(raw, self.strides, strict=True):
            b, _, h, w = r.shape
            r = r.flatten(2).transpose(1, 2)                      # B, H*W, 4 + C
            ys = torch.arange(h, device=r.device, dtype=r.dtype)
            xs = torch.arange(w, device=r.device, dtype=r.dtype)
            gy, gx = torch.meshgrid(ys, xs, indexing="ij")
            centre = (torch.stack((gx, gy), -1).reshape(1, h * w, 2) + 0.5) * s
            dist = F.softplus(r[..., :4]) * s
            out_boxes.append(torch.cat((centre - dist[..., :2], centre + dist[..., 2:]), -1))
            out_cls.append(r[..., 4:])
        return torch.cat(out_boxes, 1), torch.cat(out_cls, 1)

    def decode(self, raw: list[torch.Tensor], img_hw: tuple[int, int] | None = None) -> list[torch.Tensor]:
        """Darknet-layout rows ``[(B, N, 5 + C)]``: cx, cy, w, h / input size, best score, class scores."""
        h, w = img_hw if img_hw is not None else (raw[0].shape[2] * self.strides[0], raw[0].shape[3] * self.strides[0])
        xyxy, logits = self.boxes(raw)
        scores = logits.sigmoid()
        size = torch.tensor([w, h, w, h], dtype=xyxy.dtype, device=xyxy.device)
        cxcywh = torch.cat(((xyxy[..., :2] + xyxy[..., 2:]) / 2, xyxy[..., 2:] - xyxy[..., :2]), -1) / size
        return [torch.cat((cxcywh, scores.amax(-1, keepdim=True), scores), -1)]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.decode(self.forward_raw(x), (x.shape[2], x.shape[3]))

    def pixel_rows(self, x: torch.Tensor) -> torch.Tensor:
        """YOLOv5-layout rows ``(B, N, 5 + C)`` for ONNX: cx, cy, w, h in input pixels, 1, class scores."""
        xyxy, logits = self.boxes(self.forward_raw(x))
        cxcywh = torch.cat(((xyxy[..., :2] + xyxy[..., 2:]) / 2, xyxy[..., 2:] - xyxy[..., :2]), -1)
        return torch.cat((cxcywh, torch.ones_like(logits[..., :1]), logits.sigmoid()), -1)

    # -- inference helpers ------------------------------------------------------------------------
    def fuse(self) -> NanoDetector:
        """Fold every batch norm into its convolution (eval mode), in place; returns self."""
        self.eval()
        for m in self.modules():
            if isinstance(m, ConvBN):
                m.fuse()
        return self

    def fused_copy(self) -> NanoDetector:
        return copy.deepcopy(self).fuse()


@register_model(name="cnnlab-nano", task="detect", input_size=(3, 320, 320),
                aliases=("cnnlab_nano", "nano", "yolo-nano-af"),
                test_kwargs={"img_size": 64, "width_mult": 0.25})
def cnnlab_nano(num_classes: int = 80, in_chans: int = 3, img_size: int = 320, width_mult: float = 1.0,
                neck: int = 96, anchors: list[list[float]] | None = None) -> NanoDetector:
    """cnnlab-nano: anchor-free, decoupled head, depthwise-separable backbone + PAN (~0.63 GFLOPs at 320 px)."""
    del anchors   # anchor-free: accepted (and ignored) so the detector builders share one signature
    return NanoDetector(num_classes, in_chans, img_size, width_mult, neck)
