"""The detector options of `detect`, `stream`, `detect-eval` and `sweep`, defined once (`detector_options`).

Thresholds: the commands that *show* detections (`detect`, `stream`) keep boxes above conf 0.25 and
suppress overlaps above IoU 0.45 (Ultralytics' predict defaults); the commands that *score* mAP
(`detect-eval`, `sweep`) keep everything above conf 0.001 with NMS IoU 0.6 (Ultralytics' / COCO
validation defaults, and what `detect-train` validates with): the precision-recall curve needs the
low-score boxes, so a 0.25 threshold would cut mAP.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from cnnlab.cli.common import DEVICE as DEVICE

CFG = typer.Option(None, "--cfg", help="Darknet .cfg (with --weights).")
WEIGHTS = typer.Option(None, "--weights", help="Darknet .weights (with --cfg).")
MODEL = typer.Option(None, "--model", "-m",
                     help="A .onnx export, a detection checkpoint (.pt) or a run folder holding one.")
NAMES = typer.Option(None, "--names", help="Class names: a .names/.txt file (one per line) or YAML.")
BACKEND = typer.Option("auto", "--backend", help="auto (the fastest installed for the model: opencv for Darknet "
                       "cfgs, onnxruntime for .onnx, else torch), torch, opencv or onnxruntime.")
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

# (name, type, option): the block in the order the commands show it; the names are Detector's arguments
BLOCK = [("cfg", Path | None, CFG), ("weights", Path | None, WEIGHTS), ("model", Path | None, MODEL),
         ("names", Path | None, NAMES), ("backend", str, BACKEND), ("imgsz", str | None, IMGSZ),
         ("conf", float, CONF), ("iou", float, IOU), ("letterbox", bool | None, LETTERBOX),
         ("device", str, DEVICE), ("max_det", int, MAX_DET), ("threads", int | None, THREADS)]


def detector_options(scores_map: bool = False, skip: tuple[str, ...] = ()) -> Callable:
    """Give a command the detector option block right after its first parameter (its argument).

    The command is written as ``fn(detector: dict, <argument>, <own options>)``: ``detector`` holds the
    block's values by `Detector` argument name. ``scores_map``: the mAP thresholds (conf 0.001, IoU 0.6).
    """
    swap = {"conf": EVAL_CONF, "iou": EVAL_IOU} if scores_map else {}
    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    block = [inspect.Parameter(n, kind, annotation=tp, default=swap.get(n, o))
             for n, tp, o in BLOCK if n not in skip]

    def deco(fn: Callable) -> Callable:
        own = list(inspect.signature(fn).parameters.values())[1:]   # (annotations resolved in fn's module)
        params = own[:1] + block + own[1:]

        @functools.wraps(fn)
        def command(**kwargs: Any) -> None:
            fn({p.name: kwargs.pop(p.name) for p in block}, **kwargs)

        command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in params}
        return command

    return deco


def check_show() -> None:
    """``--show`` needs an OpenCV build with GUI support and a display to open a window on; both are
    checked before the model loads (a window that cannot open would otherwise fail, or abort the
    process, only at the first frame)."""
    import os
    import sys

    from cnnlab.detect.pipeline.sinks import gui_available
    from cnnlab.errors import UserError

    if not gui_available():
        raise UserError("--show needs an OpenCV build with GUI support; this one is headless "
                        "(opencv-python-headless). Use --web to watch in a browser, or install "
                        "opencv-python in place of opencv-python-headless")
    if sys.platform.startswith(("linux", "freebsd", "openbsd")) and not (
            os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise UserError("--show needs a display, and neither $DISPLAY nor $WAYLAND_DISPLAY is set (a server or "
                        "an SSH session without X forwarding?); use --web HOST:PORT to watch in a browser")


def make_detector(detector: dict[str, Any], announce: bool = True, **override: Any):
    """A ``cnnlab.detect.Detector`` from the option block (torch is imported here, not at CLI start);
    ``announce``: print its one backend line (backend, why, threads, input)."""
    from cnnlab.detect.detector import Detector

    det = Detector(**{**detector, **override})
    if announce:
        announce_backend(det)
    return det


def announce_backend(det: Any) -> None:
    """The one line naming the detector's backend and threads, on the console (also when piped; stdout,
    so that stderr keeps only the one-line errors)."""
    from cnnlab.cli.common import console

    console.print(det.backend_line(), soft_wrap=True, markup=False, highlight=False)
