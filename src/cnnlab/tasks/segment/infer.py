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
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cnnlab.engine.checkpoint import FORMAT_CHECKERS
from cnnlab.errors import UserError
from cnnlab.tasks.dense import LoadedModel, check_fields, export_onnx, load_model, read_images, saved_config
from cnnlab.tasks.segment.model import build_segmenter

FORMAT = "cnnlab.segment"
FORMAT_CHECKERS[FORMAT] = lambda ckpt, path: check_fields(ckpt, path, "name",
                                                          ("num_classes", "in_chans", "width", "img_size"))
LoadedSegmenter = LoadedModel


def load_segmenter(source: str | os.PathLike, use_ema: bool = True) -> LoadedModel:
    """A segment run folder (its best.pt, else last.pt) or checkpoint -> a :class:`~cnnlab.tasks.dense.LoadedModel`."""
    return load_model(source, "segmentation", FORMAT, build_segmenter, use_ema)


def evaluate_segmenter(source: str | os.PathLike, data: str | None = None, batch: int = 16,
                       json: str | os.PathLike | None = None) -> dict[str, Any]:
    """Pixel accuracy, per-class IoU and mIoU (and the loss) of a segmenter on ``data`` (synthetic, an
    images/ + masks/ folder or a VOC folder; default: the run's own validation data)."""
    from cnnlab.config.segment import SegmentConfig
    from cnnlab.tasks.segment.data import SegmentLoader, load_train_val
    from cnnlab.tasks.segment.metrics import evaluate, scores

    seg = load_segmenter(source)
    cfg = saved_config(SegmentConfig, seg)
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
    for img, name in read_images(images):
        stem = Path(name).stem
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
    seg = load_segmenter(source)
    return export_onnx(seg.model, seg, "segment", output, ["logits"], opset)
