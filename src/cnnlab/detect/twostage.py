"""Two-stage detectors: torchvision's Faster R-CNN models as cnnlab detectors.

``TwoStageDetector`` wraps a torchvision ``FasterRCNN`` so the rest of cnnlab can treat it like a YOLO:
it takes the same blob (float32 (B, 3, H, W), RGB, /255, letterboxed by ``Detector``), runs at the
blob's own size (torchvision's resize is set to the input size on every call, so nothing is rescaled
behind the caller's back) and returns ``[boxes (B, N, 4) xyxy input pixels, scores (B, N), labels
(B, N) 0-based]`` in eval mode (``output_format = "boxes"``, decoded by ``cnnlab.detect.processing``).
In training mode ``model(images, targets)`` returns torchvision's loss dict (the model brings its own
loss). Random initialisation by default (nothing is downloaded); ``load_torchvision_weights`` reads a
local torchvision state_dict (the COCO detector's, or an ImageNet backbone's).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnlab.errors import UserError

#: torchvision builders by cnnlab name (all take num_classes, weights=None, weights_backbone=None)
ARCHS = ("fasterrcnn_mobilenet_v3_large_320_fpn", "fasterrcnn_mobilenet_v3_large_fpn", "fasterrcnn_resnet50_fpn")
OUTPUT_FORMAT = "boxes"


def is_two_stage(name: object) -> bool:
    """True for a torchvision two-stage architecture name (``fasterrcnn_*``)."""
    return isinstance(name, str) and name.strip().lower() in ARCHS


def check_arch(name: str) -> str:
    """The architecture name, or a one-line error with the known ones."""
    key = name.strip().lower()
    if key not in ARCHS:
        import difflib

        close = difflib.get_close_matches(key, ARCHS, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise UserError(f"unknown two-stage model {name!r}{hint}; known: {', '.join(ARCHS)}")
    return key


class TwoStageDetector(nn.Module):
    """A torchvision Faster R-CNN with cnnlab's detector interface (see the module docstring).

    ``num_classes`` excludes torchvision's background class. ``imgsz`` is the size it was trained at
    (``width``/``height``, what a ``Detector`` uses by default). ``score_thresh`` and ``max_det`` are
    torchvision's ``box_score_thresh`` / ``box_detections_per_img`` (low, so mAP sees the whole curve;
    ``Detector`` applies its own ``conf``).
    """

    output_format = OUTPUT_FORMAT
    two_stage = True

    def __init__(self, arch: str, num_classes: int, imgsz: int | tuple[int, int] = 320,
                 score_thresh: float = 0.001, max_det: int = 300) -> None:
        super().__init__()
        import torchvision.models.detection as tvd

        self.arch = check_arch(arch)
        if num_classes < 1:
            raise UserError(f"a detector needs at least one class, got {num_classes}")
        self.num_classes = int(num_classes)
        w, h = (imgsz, imgsz) if isinstance(imgsz, int) else imgsz
        self.width, self.height = int(w), int(h)
        self.channels = 3
        self.source = self.arch
        self.net = getattr(tvd, self.arch)(weights=None, weights_backbone=None, num_classes=self.num_classes + 1,
                                           min_size=min(w, h), max_size=max(w, h),
                                           box_score_thresh=score_thresh, box_detections_per_img=max_det)

    def spec(self) -> dict[str, Any]:
        """What a checkpoint records to rebuild the network (plain data)."""
        return {"arch": self.arch, "num_classes": self.num_classes, "imgsz": [self.width, self.height]}

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> TwoStageDetector:
        imgsz = spec.get("imgsz") or [320, 320]
        return cls(str(spec["arch"]), int(spec["num_classes"]), (int(imgsz[0]), int(imgsz[1])))

    def _fit_input(self, h: int, w: int) -> None:
        """Make torchvision's transform keep an ``h x w`` input at its size (scale 1)."""
        t = self.net.transform
        t.min_size, t.max_size = (min(h, w),), max(h, w)

    def forward(self, images: torch.Tensor | list[torch.Tensor],
                targets: list[dict[str, torch.Tensor]] | None = None) -> Any:
        """Training: the loss dict of ``images`` and ``targets`` (torchvision's format, labels 1..C).
        Eval: ``[boxes (B, N, 4), scores (B, N), labels (B, N)]`` (batch of one: no padding needed;
        a bigger batch is padded with zero-score rows to the longest)."""
        imgs = list(images)
        h, w = imgs[0].shape[-2:]
        self._fit_input(int(h), int(w))
        if self.training:
            return self.net(imgs, targets)
        outs = self.net(imgs)
        n = max(len(o["boxes"]) for o in outs)
        boxes = torch.stack([_pad(o["boxes"], n) for o in outs])
        scores = torch.stack([_pad(o["scores"], n) for o in outs])
        labels = torch.stack([_pad(o["labels"] - 1, n) for o in outs])
        return [boxes, scores, labels]

    def fuse(self) -> TwoStageDetector:
        """Nothing to fold (kept for the backends' interface); returns ``self`` in eval mode."""
        return self.eval()

    def extra_repr(self) -> str:
        return f"arch={self.arch}, classes={self.num_classes}, imgsz={self.width}x{self.height}"


def _pad(t: torch.Tensor, n: int) -> torch.Tensor:
    if len(t) == n:
        return t
    pad = torch.zeros((n - len(t), *t.shape[1:]), dtype=t.dtype, device=t.device)
    return torch.cat([t, pad])


def rows_to_targets(t: torch.Tensor, batch: int, height: int, width: int,
                    device: torch.device) -> list[dict[str, torch.Tensor]]:
    """cnnlab target rows ``[image, class, cx, cy, w, h]`` (normalised) -> torchvision targets
    (``boxes`` xyxy pixels, ``labels`` 1..C); boxes under a pixel wide or high are dropped."""
    scale = torch.tensor([width, height, width, height], dtype=torch.float32)
    out = []
    for k in range(batch):
        r = t[t[:, 0] == k]
        xywh = r[:, 2:6].float() * scale
        boxes = torch.cat([xywh[:, :2] - xywh[:, 2:] / 2, xywh[:, :2] + xywh[:, 2:] / 2], 1)
        keep = (xywh[:, 2] >= 1) & (xywh[:, 3] >= 1)
        out.append({"boxes": boxes[keep].to(device), "labels": (r[keep, 1].long() + 1).to(device)})
    return out


def load_torchvision_weights(model: TwoStageDetector, path: str | os.PathLike) -> dict[str, Any]:
    """Copy the tensors of a local torchvision state_dict whose names and shapes fit (``weights_only``).

    A whole detector (keys ``backbone.``/``rpn.``/``roi_heads.``: e.g. the COCO file, or a cnnlab two-stage
    checkpoint: its EMA weights) fills everything
    but a box predictor of another class count (re-initialised); a classification backbone (ImageNet
    ``features.*`` for MobileNetV3, ``conv1``/``layer1``... for ResNet-50) fills ``backbone.body``.
    Returns ``{"weights": path, "transferred": n, "skipped": m}``; nothing fitting is a UserError.
    """
    from cnnlab.io import torch_load_safe

    p = Path(path).expanduser()
    if not p.is_file():
        raise UserError(f"weights file not found: {path}")
    state = torch_load_safe(p)
    if isinstance(state, dict) and isinstance(state.get("model"), dict):   # a cnnlab checkpoint: its EMA weights
        state = state["ema"] if isinstance(state.get("ema"), dict) else state["model"]
        state = {k.removeprefix("net."): v for k, v in state.items()}
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"{path}: not a torchvision state_dict (a dict of tensors)")
    own = model.net.state_dict()
    detector = any(k.startswith(("backbone.", "rpn.", "roi_heads.")) for k in state)
    new: dict[str, torch.Tensor] = {}
    skipped = 0
    for k, v in state.items():
        keys = [k] if detector else ["backbone.body." + k, "backbone.body." + k.removeprefix("features.")]
        target = next((c for c in keys if c in own and tuple(own[c].shape) == tuple(v.shape)), None)
        if target is None:
            skipped += 1
        else:
            new[target] = v
    if not new:
        raise UserError(f"{path}: no tensor fits {model.arch} (is it a state_dict of this architecture "
                        "or of its ImageNet backbone?)")
    model.net.load_state_dict(new, strict=False)
    return {"weights": str(p), "transferred": len(new), "skipped": skipped,
            "part": "detector" if detector else "backbone"}


def build_two_stage(arch: str, num_classes: int, imgsz: int, weights: str | None = None,
                    seed: int = 0) -> tuple[TwoStageDetector, dict[str, Any]]:
    """A seeded, randomly initialised model (plus ``weights`` when given) and what was loaded."""
    torch.manual_seed(seed)
    model = TwoStageDetector(arch, num_classes, imgsz)
    info: dict[str, Any] = {"init": "random"}
    if weights:
        info = load_torchvision_weights(model, weights)
    return model, info


def onnx_bytes_of_two_stage(model: TwoStageDetector, imgsz: tuple[int, int], names: list[str] | None = None,
                            letterbox: bool = True, opset: int = 17) -> bytes:
    """Export at a fixed ``(width, height)``: input ``images`` (1, 3, H, W), outputs ``boxes`` (1, N, 4),
    ``scores`` (1, N), ``labels`` (1, N) with cnnlab metadata (``cnnlab_format=boxes``)."""
    import copy
    import io
    import json
    import warnings

    import onnx

    w, h = imgsz
    m = copy.deepcopy(model).cpu().eval()
    buf = io.BytesIO()
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(m, (torch.rand(1, 3, h, w),), buf, dynamo=False, opset_version=opset,
                              input_names=["images"], output_names=["boxes", "scores", "labels"])
    except Exception as e:  # torchvision's export support varies by version
        raise UserError(f"{model.arch}: torch.onnx could not export it ({type(e).__name__}: "
                        f"{str(e).splitlines()[0][:120] if str(e) else ''}); use --backend torch") from None
    proto = onnx.load_from_string(buf.getvalue())
    meta = {"cnnlab_format": OUTPUT_FORMAT, "imgsz": json.dumps([w, h]), "letterbox": json.dumps(bool(letterbox)),
            "num_classes": str(model.num_classes), "source": model.arch}
    if names is not None:
        meta["names"] = json.dumps(list(names))
    onnx.helper.set_model_props(proto, meta)
    proto.producer_name = "cnnlab"
    return proto.SerializeToString()
