"""The model options shared by `detect`, `detect-eval`, `stream` and `sweep` (one definition each)."""

from __future__ import annotations

import typer

CFG = typer.Option(None, "--cfg", help="Darknet .cfg (with --weights).")
WEIGHTS = typer.Option(None, "--weights", help="Darknet .weights (with --cfg).")
MODEL = typer.Option(None, "--model", "-m",
                     help="A .onnx export, a detection checkpoint (.pt) or a run folder holding one.")
NAMES = typer.Option(None, "--names", help="Class names: .names (one per line) or YAML.")
BACKEND = typer.Option("torch", "--backend", "-b", help="torch, opencv or onnxruntime.")
IMGSZ = typer.Option(None, "--imgsz", help="Network input: 320 or WxH like 416x320 (multiples of 32; default: "
                     "the model's).")
CONF = typer.Option(0.25, "--conf", help="Confidence threshold (objectness x class probability).")
IOU = typer.Option(0.45, "--iou", help="IoU threshold of the class-aware NMS.")
LETTERBOX = typer.Option(None, "--letterbox/--no-letterbox",
                         help="Keep the aspect ratio (grey border) or plainly resize (default: what the model "
                              "recorded, else letterbox).")
DEVICE = typer.Option("cpu", "--device", help="cpu or cuda (torch/onnxruntime).")
MAX_DET = typer.Option(300, "--max-det", help="At most this many boxes per image.")
THREADS = typer.Option(None, "--threads", help="CPU threads of the backend (default: library's).")

# evaluation counts low-confidence boxes too (as COCO mAP tools do)
EVAL_CONF = typer.Option(0.001, "--conf", help="Confidence threshold (low, as for mAP).")
EVAL_IOU = typer.Option(0.6, "--iou", help="IoU threshold of the class-aware NMS.")
