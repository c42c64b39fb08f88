"""Use a trained segmenter: load a run folder or checkpoint, evaluate it, predict masks (and draw them),
export it to ONNX.

    seg = load_segmenter("runs/segment/exp")               # .model (eval), .classes, .img_size
    evaluate_segmenter("runs/segment/exp")                 # its validation data: pixel accuracy, IoU, mIoU
    predict_segmenter("runs/segment/exp", ["a.png"], output="out/")  # class-id masks; overlays into out/
    export_segmenter("runs/segment/exp", "seg.onnx")       # output "logits" (N, K, S, S)
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from cnnlab.engine.checkpoint import FORMAT_CHECKERS, _is_int, check_version, malformed
from cnnlab.errors import UserError
from cnnlab.tasks.segment.model import build_segmenter

# what a real model of this task can have (a larger value is a corrupt or hostile file, not a model to build)
LIMITS = {"features": 65536, "num_classes": 100_000, "in_chans": 3, "img_size": 4096, "width": 1024}
FORMAT = "cnnlab.segment"


def check_fields(ckpt: dict[str, Any], path: str | os.PathLike) -> None:
    """Every field inference reads has the type it expects, or one UserError naming it."""
    check_version(ckpt, path, 1)
    spec = ckpt.get("model_spec")
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
        raise malformed(path, "model_spec", "a mapping with a model name", spec)
    for key in ("num_classes", "in_chans", "width", "img_size"):
        if not (_is_int(spec.get(key)) and 1 <= spec[key] <= LIMITS[key]):
            raise malformed(path, f"model_spec.{key}", f"an integer in [1, {LIMITS[key]}]", spec.get(key))
    classes = ckpt.get("classes")
    if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes) \
            or len(classes) != spec["num_classes"]:
        raise malformed(path, "classes", f"a list of {spec['num_classes']} class names", classes)
    pre = ckpt.get("preprocess")
    if not isinstance(pre, dict) or not all(isinstance(pre.get(k), list) and len(pre[k]) == spec["in_chans"]
                                            and all(isinstance(v, float) for v in pre[k]) for k in ("mean", "std")):
        raise malformed(path, "preprocess", "mean and std lists of floats, one per channel", pre)
    if not isinstance(ckpt.get("model"), dict):
        raise malformed(path, "model", "a state dict", type(ckpt.get("model")).__name__)


FORMAT_CHECKERS[FORMAT] = check_fields


@dataclass
class LoadedSegmenter:
    """A segmenter ready for inference: the network (eval mode) and what its inputs must look like."""

    model: nn.Module
    classes: list[str]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    img_size: int
    spec: dict[str, Any]
    path: Path
    run_dir: Path | None

    def preprocess(self, images_bgr: Sequence[np.ndarray]) -> torch.Tensor:
        """BGR uint8 images -> the normalised (N, 3, S, S) batch (plain resize)."""
        import cv2

        s = self.img_size
        x = np.stack([cv2.resize(im, (s, s), interpolation=cv2.INTER_AREA)[:, :, ::-1].transpose(2, 0, 1)
                      for im in images_bgr])
        t = torch.from_numpy(np.ascontiguousarray(x)).float() / 255.0
        return (t - torch.tensor(self.mean).view(1, -1, 1, 1)) / torch.tensor(self.std).view(1, -1, 1, 1)


def load_segmenter(source: str | os.PathLike, use_ema: bool = True) -> LoadedSegmenter:
    """A segment run folder (its best.pt, else last.pt) or checkpoint -> :class:`LoadedSegmenter`."""
    from cnnlab.engine.checkpoint import load_weights
    from cnnlab.io import torch_load_safe

    p = Path(source).expanduser()
    run_dir = p if p.is_dir() else (p.parent.parent if p.parent.name == "weights" else None)
    if p.is_dir():
        p = next((p / n for n in ("weights/best.pt", "weights/last.pt") if (p / n).is_file()), p / "weights/best.pt")
    if not p.is_file():
        raise UserError(f"model not found: {p} (expected a segment run folder or its .pt checkpoint)")
    ckpt = torch_load_safe(p)
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        what = ckpt.get("format") if isinstance(ckpt, dict) else type(ckpt).__name__
        raise UserError(f"{p}: not a segmentation checkpoint (format {str(what)[:40]!r})")
    check_fields(ckpt, p)
    spec = ckpt["model_spec"]
    model = build_segmenter(spec)
    state = ckpt["ema"] if use_ema and isinstance(ckpt.get("ema"), dict) else ckpt["model"]
    load_weights(model, state, None, str(p))
    pre = ckpt["preprocess"]
    return LoadedSegmenter(model.eval(), list(ckpt["classes"]), tuple(pre["mean"]), tuple(pre["std"]),
                           int(spec["img_size"]), spec, p, run_dir)


def evaluate_segmenter(source: str | os.PathLike, data: str | None = None, batch: int = 16,
                       json: str | os.PathLike | None = None) -> dict[str, Any]:
    """Pixel accuracy, per-class IoU and mIoU (and the loss) of a segmenter on ``data`` (synthetic, an
    images/ + masks/ folder or a VOC folder; default: the run's own validation data)."""
    from cnnlab.config.segment import SegmentConfig
    from cnnlab.runs import read_run_config
    from cnnlab.tasks.segment.data import SegmentLoader, load_train_val
    from cnnlab.tasks.segment.metrics import evaluate, scores

    seg = load_segmenter(source)
    saved = read_run_config(seg.run_dir) if seg.run_dir is not None and (seg.run_dir / "config.yaml").is_file() else {}
    known = set(SegmentConfig.field_names())
    cfg = SegmentConfig.from_dict({k: v for k, v in saved.items() if k in known}, source=str(seg.path))
    cfg = cfg.replace(data=data or cfg.data, imgsz=seg.img_size, model=seg.spec["name"])
    dataset = load_train_val(cfg)[1]
    if len(dataset.classes) != len(seg.classes):
        raise UserError(f"the data has {len(dataset.classes)} classes, the model {len(seg.classes)}")
    loss, matrix = evaluate(seg.model, SegmentLoader(dataset, batch, seg.mean, seg.std), len(seg.classes),
                            torch.device("cpu"))
    result = {"loss": loss, **scores(matrix, seg.classes), "images": len(dataset), "data": cfg.data,
              "confusion_matrix": matrix.tolist()}
    if json is not None:
        from cnnlab.io import write_json

        write_json(json, result)
    return result


@torch.no_grad()
def predict_segmenter(source: str | os.PathLike, images: Sequence[str | os.PathLike | np.ndarray],
                      output: str | os.PathLike | None = None) -> list[np.ndarray]:
    """A class-id mask (H, W uint8, the image's own size) per image; with ``output`` (a folder) each mask
    is written there as ``<stem>_mask.png`` and drawn over the image as ``<stem>_overlay.jpg``."""
    import cv2

    from cnnlab.detect.draw import write_image
    from cnnlab.tasks.segment.plots import overlay

    seg = load_segmenter(source)
    masks = []
    for i, im in enumerate(images):
        if isinstance(im, np.ndarray):
            img, stem = im, f"image{i}"
        else:
            img = cv2.imread(str(im), cv2.IMREAD_COLOR) if Path(im).is_file() else None
            if img is None:
                raise UserError(f"cannot read image {im}")
            stem = Path(im).stem
        logits = seg.model(seg.preprocess([img]))
        small = logits.argmax(1)[0].numpy().astype(np.uint8)
        mask = cv2.resize(small, (img.shape[1], img.shape[0]), interpolation=cv2.INTER_NEAREST)
        masks.append(mask)
        if output is not None:
            write_image(Path(output) / f"{stem}_mask.png", mask)
            write_image(Path(output) / f"{stem}_overlay.jpg",
                        overlay(img[:, :, ::-1].copy(), mask, len(seg.classes))[:, :, ::-1])
    return masks


def export_segmenter(source: str | os.PathLike, output: str | os.PathLike, opset: int = 17) -> dict[str, Any]:
    """Write an ONNX file (input ``images`` normalised NCHW; output ``logits`` (N, K, S, S); metadata:
    classes, mean, std, img_size) and check it against PyTorch with ONNX Runtime."""
    import io
    import json
    import warnings

    import onnx
    import onnxruntime as ort

    from cnnlab.io import atomic_write_bytes

    seg = load_segmenter(source)
    s = seg.img_size
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(seg.model, (torch.zeros(1, 3, s, s),), buf, dynamo=False, opset_version=opset,
                          input_names=["images"], output_names=["logits"],
                          dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}})
    proto = onnx.load_from_string(buf.getvalue())
    onnx.helper.set_model_props(proto, {"cnnlab_task": "segment", "classes": json.dumps(seg.classes),
                                        "mean": json.dumps(list(seg.mean)), "std": json.dumps(list(seg.std)),
                                        "img_size": str(s)})
    proto.producer_name = "cnnlab"
    onnx.checker.check_model(proto)
    data = proto.SerializeToString()
    x = torch.randn(2, 3, s, s, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref = seg.model(x).numpy()
    got = ort.InferenceSession(data, providers=["CPUExecutionProvider"]).run(None, {"images": x.numpy()})[0]
    path = atomic_write_bytes(output, data)
    return {"path": str(path), "max_abs_diff": float(np.abs(ref - got).max()), "classes": seg.classes, "img_size": s}
