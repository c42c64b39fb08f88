"""Use a trained localiser: load a run folder or checkpoint, evaluate it, predict (and draw) boxes, export
it to ONNX.

    loc = load_localizer("runs/localize/exp")              # .model (eval), .classes, .img_size
    evaluate_localizer("runs/localize/exp")                # its validation data: accuracy, iou, correct
    predict_localizer("runs/localize/exp", ["a.jpg"], output="out/")   # boxes in pixels, drawn into out/
    export_localizer("runs/localize/exp", "loc.onnx")      # outputs "logits" and "boxes" (xyxy fractions)
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
from cnnlab.tasks.localize.model import Localizer, boxes_xyxy, build_localizer

# what a real model of this task can have (a larger value is a corrupt or hostile file, not a model to build)
LIMITS = {"features": 65536, "num_classes": 100_000, "in_chans": 3, "img_size": 4096, "width": 1024}
FORMAT = "cnnlab.localize"


def check_fields(ckpt: dict[str, Any], path: str | os.PathLike) -> None:
    """Every field inference reads has the type it expects, or one UserError naming it."""
    check_version(ckpt, path, 1)
    spec = ckpt.get("model_spec")
    if not isinstance(spec, dict):
        raise malformed(path, "model_spec", "a mapping", spec)
    if not isinstance(spec.get("backbone"), str) or not spec["backbone"]:
        raise malformed(path, "model_spec.backbone", "a model name", spec.get("backbone"))
    for key in ("features", "num_classes", "in_chans", "img_size"):
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
class LoadedLocalizer:
    """A localiser ready for inference: the network (eval mode) and what its inputs must look like."""

    model: Localizer
    classes: list[str]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    img_size: int
    spec: dict[str, Any]
    path: Path
    run_dir: Path | None

    def preprocess(self, images_bgr: Sequence[np.ndarray]) -> torch.Tensor:
        """BGR uint8 images -> the normalised (N, 3, S, S) batch the model takes (plain resize)."""
        import cv2

        s = self.img_size
        x = np.stack([cv2.resize(im, (s, s), interpolation=cv2.INTER_AREA)[:, :, ::-1].transpose(2, 0, 1)
                      for im in images_bgr])
        t = torch.from_numpy(np.ascontiguousarray(x)).float() / 255.0
        return (t - torch.tensor(self.mean).view(1, -1, 1, 1)) / torch.tensor(self.std).view(1, -1, 1, 1)


def _checkpoint_path(source: str | os.PathLike) -> tuple[Path, Path | None]:
    p = Path(source).expanduser()
    if p.is_dir():
        for name in ("weights/best.pt", "weights/last.pt"):
            if (p / name).is_file():
                return p / name, p
        raise UserError(f"{p}: no weights/best.pt or weights/last.pt (not a finished localize run?)")
    if not p.is_file():
        raise UserError(f"model not found: {p} (expected a localize run folder or its .pt checkpoint)")
    return p, p.parent.parent if p.parent.name == "weights" else None


def load_localizer(source: str | os.PathLike, use_ema: bool = True) -> LoadedLocalizer:
    """A localize run folder (its best.pt, else last.pt) or checkpoint -> :class:`LoadedLocalizer`."""
    from cnnlab.engine.checkpoint import load_weights
    from cnnlab.io import torch_load_safe

    path, run_dir = _checkpoint_path(source)
    ckpt = torch_load_safe(path)
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        what = ckpt.get("format") if isinstance(ckpt, dict) else type(ckpt).__name__
        raise UserError(f"{path}: not a localize checkpoint (format {str(what)[:40]!r}); classifiers run with "
                        "cnnlab predict, detectors with cnnlab detect")
    check_fields(ckpt, path)
    spec = ckpt["model_spec"]
    model = build_localizer(spec)
    state = ckpt["ema"] if use_ema and isinstance(ckpt.get("ema"), dict) else ckpt["model"]
    load_weights(model, state, None, str(path))
    pre = ckpt["preprocess"]
    return LoadedLocalizer(model.eval(), list(ckpt["classes"]), tuple(pre["mean"]), tuple(pre["std"]),
                           int(spec["img_size"]), spec, path, run_dir)


def evaluate_localizer(source: str | os.PathLike, data: str | None = None, split: str = "val",
                       objects: str | None = None, batch: int = 128, json: str | os.PathLike | None = None
                       ) -> dict[str, Any]:
    """Top-1 accuracy, mean IoU and "correct" rate (and losses) of a localiser.

    ``data``: a detection dataset (data.yaml / YOLO / COCO / VOC; ``split`` of a data.yaml) or
    ``synthetic``; default: the run's own validation data (its config.yaml). ``objects``: largest | single
    (default: the run's).
    """
    from cnnlab.tasks.localize.data import LocalizeLoader, from_detection, load_train_val
    from cnnlab.tasks.localize.metrics import evaluate

    loc = load_localizer(source)
    cfg = _run_config(loc)
    objects = objects or cfg.objects
    if data is None or data == "synthetic" or (data == cfg.data and split == "val"):
        cfg = cfg.replace(data=data or cfg.data, imgsz=loc.img_size, objects=objects)
        dataset = load_train_val(cfg)[1]
    else:
        dataset = from_detection(data, split, loc.img_size, objects)
    if dataset.classes != loc.classes:
        raise UserError(f"the data's classes {dataset.classes[:5]} differ from the model's {loc.classes[:5]}")
    loader = LocalizeLoader(dataset, batch, loc.mean, loc.std)
    logs, _ = evaluate(loc.model, loader, torch.device("cpu"), (cfg.cls_gain, cfg.box_gain, cfg.giou_gain))
    result = {**logs, "images": len(dataset), "data": data or cfg.data, "split": split}
    if json is not None:
        from cnnlab.io import write_json

        write_json(json, result)
    return result


def _run_config(loc: LoadedLocalizer):
    from cnnlab.config.localize import LocalizeConfig
    from cnnlab.runs import read_run_config

    saved: dict[str, Any] = {}
    if loc.run_dir is not None and (loc.run_dir / "config.yaml").is_file():
        saved = read_run_config(loc.run_dir)
    known = set(LocalizeConfig.field_names())
    return LocalizeConfig.from_dict({k: v for k, v in saved.items() if k in known}, source=str(loc.path))


@torch.no_grad()
def predict_localizer(source: str | os.PathLike, images: Sequence[str | os.PathLike | np.ndarray],
                      output: str | os.PathLike | None = None) -> list[dict[str, Any]]:
    """The class, its probability and the box (xyxy in the image's pixels) of each image; with ``output``
    (a folder) each image is also written there with its box drawn."""
    import cv2

    from cnnlab.detect.draw import class_color, write_image
    from cnnlab.tasks.localize.plots import draw_box

    loc = load_localizer(source)
    arrays, names = [], []
    for i, im in enumerate(images):
        if isinstance(im, np.ndarray):
            arrays.append(im)
            names.append(f"image{i}.png")
            continue
        p = Path(im)
        img = cv2.imread(str(p), cv2.IMREAD_COLOR) if p.is_file() else None
        if img is None:
            raise UserError(f"cannot read image {p}")
        arrays.append(img)
        names.append(p.name)
    if not arrays:
        raise UserError("no images given")
    results = []
    for k in range(0, len(arrays), 64):
        chunk = arrays[k:k + 64]
        logits, box = loc.model(loc.preprocess(chunk))
        prob = logits.softmax(1)
        for img, name, pr, b in zip(chunk, names[k:k + 64], prob, boxes_xyxy(box).clamp(0, 1), strict=True):
            h, w = img.shape[:2]
            c = int(pr.argmax())
            px = (b * torch.tensor([w, h, w, h])).tolist()
            results.append({"image": name, "class": loc.classes[c], "class_id": c, "score": float(pr[c]),
                            "box": [round(v, 2) for v in px]})
            if output is not None:
                drawn = draw_box(img.copy(), px, f"{loc.classes[c]} {float(pr[c]):.2f}", class_color(c))
                write_image(Path(output) / (Path(name).stem + ".jpg"), drawn)
    return results


class _OnnxHead(nn.Module):
    """What the ONNX graph computes: logits and xyxy boxes (fractions of the image)."""

    def __init__(self, model: Localizer) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits, box = self.model(x)
        return logits, boxes_xyxy(box)


def export_localizer(source: str | os.PathLike, output: str | os.PathLike, opset: int = 17) -> dict[str, Any]:
    """Write an ONNX file (input ``images`` normalised NCHW; outputs ``logits``, ``boxes`` xyxy fractions;
    metadata: classes, mean, std, img_size) and check it against PyTorch with ONNX Runtime."""
    import io
    import json
    import warnings

    import onnx
    import onnxruntime as ort

    from cnnlab.io import atomic_write_bytes

    loc = load_localizer(source)
    s = loc.img_size
    buf = io.BytesIO()
    head = _OnnxHead(loc.model).eval()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(head, (torch.zeros(1, 3, s, s),), buf, dynamo=False, opset_version=opset,
                          input_names=["images"], output_names=["logits", "boxes"],
                          dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}, "boxes": {0: "batch"}})
    proto = onnx.load_from_string(buf.getvalue())
    onnx.helper.set_model_props(proto, {"cnnlab_task": "localize", "classes": json.dumps(loc.classes),
                                        "mean": json.dumps(list(loc.mean)), "std": json.dumps(list(loc.std)),
                                        "img_size": str(s)})
    proto.producer_name = "cnnlab"
    onnx.checker.check_model(proto)
    data = proto.SerializeToString()
    x = torch.randn(2, 3, s, s, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref = [t.numpy() for t in head(x)]
    got = ort.InferenceSession(data, providers=["CPUExecutionProvider"]).run(None, {"images": x.numpy()})
    diff = max(float(np.abs(a - b).max()) for a, b in zip(ref, got, strict=True))
    path = atomic_write_bytes(output, data)
    return {"path": str(path), "max_abs_diff": diff, "classes": loc.classes, "img_size": s}
