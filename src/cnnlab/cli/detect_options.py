"""The detector options of `detect`, `stream`, `detect-eval` and `sweep`, defined once (and `make_detector`).

Thresholds: the commands that *show* detections (`detect`, `stream`) keep boxes above conf 0.25 and
suppress overlaps above IoU 0.45 (Ultralytics' predict defaults); the commands that *score* mAP
(`detect-eval`, `sweep`) keep everything above conf 0.001 with NMS IoU 0.6 (Ultralytics' / COCO
validation defaults, and what `detect-train` validates with): the precision-recall curve needs the
low-score boxes, so a 0.25 threshold would cut mAP.
"""

from __future__ import annotations

from pathlib import Path

import typer

from cnnlab.cli.common import DEVICE as DEVICE

CFG = typer.Option(None, "--cfg", help="Darknet .cfg (with --weights).")
WEIGHTS = typer.Option(None, "--weights", help="Darknet .weights (with --cfg).")
MODEL = typer.Option(None, "--model", "-m",
                     help="A .onnx export, a detection checkpoint (.pt) or a run folder holding one.")
NAMES = typer.Option(None, "--names", help="Class names: a .names/.txt file (one per line) or YAML.")
BACKEND = typer.Option("torch", "--backend", help="torch, opencv or onnxruntime.")
IMGSZ = typer.Option(None, "--imgsz", help="Network input: 320 or WxH like 416x320 (multiples of 32; default: "
                     "the model's).")
CONF = typer.Option(0.25, "--conf", help="Confidence threshold (objectness x class probability).")
IOU = typer.Option(0.45, "--iou", help="IoU threshold of the class-aware NMS.")
LETTERBOX = typer.Option(None, "--letterbox/--no-letterbox",
                         help="Keep the aspect ratio (grey border) or plainly resize (default: what the model "
                              "recorded, else letterbox).")
MAX_DET = typer.Option(300, "--max-det", help="At most this many boxes per image.")
THREADS = typer.Option(None, "--threads", help="CPU threads of the backend (default: library's).")

# scoring mAP counts low-confidence boxes too (as the COCO tools and Ultralytics' val do)
EVAL_CONF = typer.Option(0.001, "--conf", help="Confidence threshold: low for mAP, whose precision-recall "
                                               "curve needs the low-score boxes (0.25 would cut mAP).")
EVAL_IOU = typer.Option(0.6, "--iou", help="IoU threshold of the class-aware NMS (0.6: the validation "
                                           "default of Ultralytics and of detect-train).")


def make_detector(cfg: Path | None, weights: Path | None, model: Path | None, names: Path | None, backend: str,
                  imgsz: str | int | None, conf: float, iou: float, letterbox: bool | None, device: str, max_det: int,
                  threads: int | None = None):
    """A ``cnnlab.detect.Detector`` from the options above (torch is imported here, not at CLI start)."""
    from cnnlab.detect.detector import Detector

    return Detector(cfg=cfg, weights=weights, model=model, names=names, backend=backend, imgsz=imgsz,
                    conf=conf, iou=iou, letterbox=letterbox, device=device, max_det=max_det, threads=threads)
