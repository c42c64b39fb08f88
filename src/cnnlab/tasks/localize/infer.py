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
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from cnnlab.engine.checkpoint import FORMAT_CHECKERS
from cnnlab.errors import UserError
from cnnlab.tasks.dense import LoadedModel, check_fields, export_onnx, load_model, read_images, saved_config
from cnnlab.tasks.localize.model import Localizer, boxes_xyxy, build_localizer

FORMAT = "cnnlab.localize"
FORMAT_CHECKERS[FORMAT] = lambda ckpt, path: check_fields(ckpt, path, "backbone",
                                                          ("features", "num_classes", "in_chans", "img_size"))
LoadedLocalizer = LoadedModel  # .model is a Localizer


def load_localizer(source: str | os.PathLike, use_ema: bool = True) -> LoadedModel:
    """A localize run folder (its best.pt, else last.pt) or checkpoint -> a :class:`~cnnlab.tasks.dense.LoadedModel`."""
    return load_model(source, "localize", FORMAT, build_localizer, use_ema,
                      hint="; classifiers run with cnnlab predict, detectors with cnnlab detect")


def evaluate_localizer(source: str | os.PathLike, data: str | None = None, split: str = "val",
                       objects: str | None = None, batch: int = 128, json: str | os.PathLike | None = None
                       ) -> dict[str, Any]:
    """Top-1 accuracy, mean IoU and "correct" rate (and losses) of a localiser.

    ``data``: a detection dataset (data.yaml / YOLO / COCO / VOC; ``split`` of a data.yaml) or
    ``synthetic``; default: the run's own validation data (its config.yaml). ``objects``: largest | single
    (default: the run's).
    """
    from cnnlab.config.localize import LocalizeConfig
    from cnnlab.tasks.localize.data import LocalizeLoader, from_detection, load_train_val
    from cnnlab.tasks.localize.metrics import evaluate

    loc = load_localizer(source)
    cfg = saved_config(LocalizeConfig, loc)
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


@torch.no_grad()
def predict_localizer(source: str | os.PathLike, images: Sequence[str | os.PathLike | np.ndarray],
                      output: str | os.PathLike | None = None) -> list[dict[str, Any]]:
    """The class, its probability and the box (xyxy in the image's pixels) of each image; with ``output``
    (a folder) each image is also written there with its box drawn."""
    from cnnlab.detect.draw import class_color, write_image
    from cnnlab.tasks.localize.plots import draw_box

    loc = load_localizer(source)
    read = read_images(images)
    arrays, names = [im for im, _ in read], [name for _, name in read]
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
    loc = load_localizer(source)
    return export_onnx(_OnnxHead(loc.model), loc, "localize", output, ["logits", "boxes"], opset)
