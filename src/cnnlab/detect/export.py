"""Export a Darknet/YOLO model to a self-contained ONNX file with the decoding inside the graph.

The ONNX takes ``images`` float32 (1, 3, H, W) (RGB, /255) and returns ``output0`` float32
(1, N, 5+C) in the YOLOv5 convention: cx, cy, w, h in input pixels, objectness, class
probabilities; N = sum over [yolo] layers of H_i*W_i*anchors. Metadata (``metadata_props``)
records ``cnnlab_format=yolov5``, ``names`` (JSON, when given), ``num_classes``, ``imgsz`` ([w, h])
and ``letterbox``, so
``Detector(model="m.onnx")`` needs no other file, and any YOLOv5-style consumer can read it.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from cnnlab.darknet.model import DarknetModel
from cnnlab.detect.types import ImageSize
from cnnlab.errors import UserError

DEFAULT_OPSET = 17


class YoloV5Head(nn.Module):
    """Runs a ``DarknetModel`` and concatenates its [yolo] outputs as YOLOv5-style rows; an anchor-free
    detector (``cnnlab-nano``) gives its own YOLOv5-layout rows (``pixel_rows``, objectness 1)."""

    def __init__(self, model: DarknetModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if getattr(self.model, "anchor_free", False):
            return self.model.pixel_rows(x)
        return torch.cat(self.model(x), dim=1)


def _is_anchor_free(model: nn.Module) -> bool:
    return bool(getattr(model, "anchor_free", False))


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Eval mode for the duration; afterwards every submodule gets back its own train/eval flag (an
    export must leave the caller's model as it found it: a model left in training mode would use batch
    statistics and overwrite its batch-norm running statistics on the next forward)."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for m, training in modes:
            m.training = training


@contextlib.contextmanager
def pixel_outputs(model: DarknetModel) -> Iterator[None]:
    """Temporarily switch the [yolo]/[region] layers to YOLOv5-style (pixel) rows (an anchor-free model
    gives them through ``YoloV5Head`` as it is)."""
    if _is_anchor_free(model):
        yield
        return
    layers = model.head_layers
    before = [y.pixel_output for y in layers]
    try:
        for y in layers:
            y.pixel_output = True
        yield
    finally:
        for y, b in zip(layers, before, strict=True):
            y.pixel_output = b


@dataclass
class ExportResult:
    path: Path | None
    onnx_bytes: bytes
    output_shape: tuple[int, ...]
    max_abs_diff: float | None   # ONNX Runtime vs PyTorch on a random image (None when not checked)
    max_abs_output: float | None  # largest |output| of that check (box sizes are in pixels)


def onnx_bytes_of(model: DarknetModel, imgsz: ImageSize | int | str | tuple[int, int],
                  names: list[str] | None = None,
                  letterbox: bool = True, opset: int = DEFAULT_OPSET) -> bytes:
    """Serialise ``model`` (decoding included) to ONNX bytes with cnnlab metadata."""
    import onnx

    if not (_is_anchor_free(model) or model.head_indices):
        raise UserError("the cfg has no [yolo] or [region] layer: nothing to export as a detector")
    if opset < 17:
        raise UserError(f"opset must be >= 17, got {opset}")
    w, h = ImageSize.parse(imgsz)
    if names is not None and len(names) != model.num_classes:
        raise UserError(f"{len(names)} class names given but the model predicts {model.num_classes} classes")
    buf = io.BytesIO()
    with eval_mode(model), pixel_outputs(model), warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(YoloV5Head(model), (torch.zeros(1, model.channels, h, w),), buf, dynamo=False,
                          opset_version=opset, input_names=["images"], output_names=["output0"],
                          do_constant_folding=True)
    proto = onnx.load_from_string(buf.getvalue())
    meta = {"cnnlab_format": "yolov5", "imgsz": json.dumps([w, h]), "letterbox": json.dumps(bool(letterbox)),
            "num_classes": str(model.num_classes), "source": str(getattr(model, "source", ""))}
    if names is not None:
        meta["names"] = json.dumps(list(names))
    onnx.helper.set_model_props(proto, meta)
    proto.producer_name = "cnnlab"
    onnx.checker.check_model(proto)
    return proto.SerializeToString()


def check_against_torch(model: DarknetModel, data: bytes, imgsz: ImageSize | int | str | tuple[int, int],
                        seed: int = 0) -> tuple[float, float, tuple[int, ...]]:
    """(max abs difference, max abs output, shape): ONNX Runtime vs PyTorch on one smooth random image."""
    from cnnlab.deploy.providers import create_session
    from cnnlab.detect.synthetic import random_images

    w, h = ImageSize.parse(imgsz)
    x = random_images(1, h, w, seed)[:, :model.channels]
    with eval_mode(model), pixel_outputs(model), torch.no_grad():
        ref = YoloV5Head(model)(x).numpy()
    sess = create_session(data, "cpu")
    out = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
    if out.shape != ref.shape:
        raise UserError(f"exported ONNX gives shape {out.shape}, PyTorch {ref.shape}")
    return float(np.abs(out - ref).max()), float(np.abs(ref).max()), tuple(out.shape)


def export_detector(cfg: str | os.PathLike | None = None, weights: str | os.PathLike | None = None,
                    output: str | os.PathLike | None = None,
                    imgsz: ImageSize | int | str | tuple[int, int] | None = None,
                    names: list[str] | None = None, letterbox: bool = True, opset: int = DEFAULT_OPSET,
                    check: bool = True, model: str | os.PathLike | None = None) -> ExportResult:
    """Export a Darknet cfg (+ weights), or ``model`` (a detection run folder or checkpoint, YOLO or
    two-stage), to ONNX; check it against PyTorch with ONNX Runtime.

    ``imgsz`` defaults to the cfg's [net] width/height (the run's size); ``output`` to ``<cfg stem>.onnx``
    beside the cfg (``<model stem>.onnx`` beside the checkpoint). The file is written atomically.
    """
    from cnnlab.darknet.model import load_darknet
    from cnnlab.io import atomic_write_bytes
    from cnnlab.paths import find_file

    if (cfg is None) == (model is None):
        raise UserError("give either a Darknet cfg (with --weights) or --model (a detection run or checkpoint)")
    if model is not None:
        return _export_run(model, output, imgsz, names, letterbox, opset, check)

    cfg = find_file(cfg, "cfg", what="cfg file")  # a bare name: the data root's yolo/ (cnnlab.paths)
    weights = find_file(weights, "weights", what="weights file") if weights is not None else None
    model = load_darknet(cfg, weights)
    size = ImageSize.parse(imgsz if imgsz is not None else (model.width, model.height))
    data = onnx_bytes_of(model, size, names, letterbox, opset)
    diff, biggest, shape = check_against_torch(model, data, size) if check else (None, None, ())
    path = Path(output) if output is not None else Path(cfg).with_suffix(".onnx")
    if path.suffix.lower() != ".onnx":
        raise UserError(f"output must end in .onnx, got {path}")
    atomic_write_bytes(path, data)
    return ExportResult(path, data, shape, diff, biggest)


def _export_run(source: str | os.PathLike, output: str | os.PathLike | None,
                imgsz: ImageSize | int | str | tuple[int, int] | None, names: list[str] | None,
                letterbox: bool | None, opset: int, check: bool) -> ExportResult:
    """A detection run folder or checkpoint to ONNX: a Darknet model or ``cnnlab-nano`` as ``export_detector``
    does, a two-stage (Faster R-CNN) one at a fixed input size with outputs ``boxes``/``scores``/``labels``.
    ``letterbox`` None: the run's own preprocessing."""
    from cnnlab.io import atomic_write_bytes
    from cnnlab.sources import resolve

    src = resolve(source, task="detect", classes=names)
    if letterbox is None:
        letterbox = src.letterbox is not False
    if src.model is None:
        raise UserError(f"{src.describe()} is already an ONNX file")
    size = ImageSize.parse(imgsz if imgsz is not None else src.imgsz)
    names = list(src.classes)
    path = Path(output) if output is not None else (src.path or Path(str(source))).with_suffix(".onnx")
    if path.suffix.lower() != ".onnx":
        raise UserError(f"output must end in .onnx, got {path}")
    if not getattr(src.model, "two_stage", False):
        data = onnx_bytes_of(src.model, size, names, letterbox, opset)
        diff, biggest, shape = check_against_torch(src.model, data, size) if check else (None, None, ())
    else:
        from cnnlab.detect.twostage import onnx_bytes_of_two_stage

        data = onnx_bytes_of_two_stage(src.model, tuple(size), names, letterbox, opset)
        diff, biggest, shape = _check_two_stage(src.model, data, size) if check else (None, None, ())
    atomic_write_bytes(path, data)
    return ExportResult(path, data, shape, diff, biggest)


def _check_two_stage(model: nn.Module, data: bytes, imgsz: ImageSize) -> tuple[float, float, tuple[int, ...]]:
    """(max abs difference of the boxes, largest box coordinate, boxes shape): ONNX Runtime vs PyTorch on a
    smooth random image; each PyTorch box is matched to its nearest ONNX box (equal scores may come in
    another order)."""
    from cnnlab.deploy.providers import create_session
    from cnnlab.detect.synthetic import random_images

    w, h = imgsz
    x = random_images(1, h, w, 0)
    with eval_mode(model), torch.no_grad():
        ref = model(x)[0].numpy()
    out = create_session(data, "cpu").run(None, {"images": x.numpy()})[0]
    if out.shape != ref.shape:
        raise UserError(f"exported ONNX gives {out.shape[1]} boxes, PyTorch {ref.shape[1]}")
    a, b = ref.reshape(-1, 4), out.reshape(-1, 4)
    diff = float(np.abs(a[:, None] - b[None]).max(-1).min(1).max()) if len(a) else 0.0
    return diff, float(np.abs(a).max()) if len(a) else 0.0, tuple(out.shape)


def export_trained_detector(source: str | os.PathLike, output: str | os.PathLike | None = None,
                            imgsz: ImageSize | int | str | tuple[int, int] | None = None,
                            opset: int = DEFAULT_OPSET, check: bool = True) -> ExportResult:
    """Export a detection run folder or checkpoint (any trained detector: Darknet family, ``cnnlab-nano``,
    Faster R-CNN) to ONNX with its class names, input size and letterbox; ``output`` defaults to
    ``<checkpoint>.onnx`` beside it. Checked against PyTorch with ONNX Runtime."""
    return _export_run(source, output, imgsz, None, None, opset, check)
