"""One- vs two-stage detection: Faster R-CNN (MobileNetV3 320) vs the YOLO models, mAP and FPS, on synthetic
scenes (both trained from scratch: a set they can learn on a CPU) and on coco128.

    OMP_NUM_THREADS=2 nice -n 10 .venv/bin/python benchmarks/two_stage.py --smoke   # ~1 min, docs untouched
    OMP_NUM_THREADS=2 nice -n 10 .venv/bin/python benchmarks/two_stage.py           # writes docs/benchmarks.md

Synthetic scenes (``--shapes-epochs``, 0 skips them): ``--shapes-train`` / ``--shapes-val`` images of
``--shapes-size`` px, Faster R-CNN and yolov3-tiny trained from random weights with the same schedule.
coco128 (``$CNNLAB_DATA/coco128``), images sorted by name: the first ``--train`` labelled images train,
the last ``--val`` are held out. Every model is scored by the same code (``detect_eval``: COCO mAP, conf
0.001, NMS IoU 0.6, letterboxed at ``--imgsz``) and timed by the same ``Detector`` loop (torch backend,
conf 0.25, ``--threads`` CPU threads, preprocess + inference + postprocess per image):

- ``fasterrcnn_mobilenet_v3_large_320_fpn`` trained by ``detect-train`` for ``--epochs`` epochs (random
  init: no torchvision weights here; ``--rcnn-weights coco.pth`` fine-tunes a local torchvision file);
- ``yolov3-tiny`` trained from scratch with the same data, schedule and epochs;
- Yolo-Fastest-1.1 and -XL with their COCO weights as they are (trained on COCO train2017, which holds
  the coco128 images: their mAP here is optimistic).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from _coco128 import coco128_split  # noqa: E402
from _report import markdown_table, write_section  # noqa: E402

RCNN = "fasterrcnn_mobilenet_v3_large_320_fpn"
COLUMNS = ["data", "model", "stages", "init", "params_M", "epochs", "train_s", "mAP50", "mAP50_95", "ms_per_image",
           "FPS"]


def data_root(arg: str | None) -> Path | None:
    for cand in (arg, os.environ.get("CNNLAB_DATA"), REPO.parent / "shared" / "data"):
        if cand and (Path(cand) / "coco128").is_dir() and (Path(cand) / "yolo").is_dir():
            return Path(cand)
    return None


def time_detector(det: Any, images: list[Any], warmup: int) -> float:
    """Mean milliseconds per image of ``det(image)`` (the three stages) after ``warmup`` calls."""
    for img in images[:warmup]:
        det(img)
    times = []
    for img in images:
        t0 = time.perf_counter()
        det(img)
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.fmean(times)


def score(data: Path, images: list[Any], imgsz: int, warmup: int, **source: Any) -> dict[str, float]:
    """mAP on the held-out split and the per-image time of one detector source (model= or cfg=/weights=)."""
    from cnnlab.detect.detector import Detector
    from cnnlab.detect.evaluate import detect_eval

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ev = detect_eval(data, imgsz=imgsz, save=False, plots=False, verbose=False, **source)
        det = Detector(imgsz=imgsz, conf=0.25, iou=0.45, device="cpu", backend="torch", **source)
    ms = time_detector(det, images, warmup)
    params = sum(p.numel() for p in det.source.model.parameters()) / 1e6
    return {"mAP50": float(ev["mAP50"]), "mAP50_95": float(ev["mAP50_95"]), "ms_per_image": ms,
            "FPS": 1000.0 / ms, "params_M": params}


def train_and_score(data: Path, images: list[Any], work: Path, args: argparse.Namespace, tag: str, imgsz: int,
                    epochs: int) -> list[dict[str, Any]]:
    """Faster R-CNN and yolov3-tiny trained with the same schedule on ``data``; mAP and speed of each."""
    from cnnlab.tasks.detect.run import train_detector

    schedule = {"imgsz": imgsz, "epochs": epochs, "batch": args.batch, "optimizer": "sgd", "lr": args.lr,
                "momentum": 0.9, "warmup_epochs": 1.0, "mosaic": 0.0, "ema_warmup": 50, "verbose": 2,
                "plots": False, "seed": 0}
    rows = []
    trained = [(RCNN, 2, RCNN, args.rcnn_weights, "local torchvision weights, fine-tuned" if args.rcnn_weights
                else "random init (scratch)"),
               ("yolov3-tiny", 1, "yolov3-tiny", None, "random init (scratch)")]
    for label, stages, model, weights, init in trained:
        t0 = time.perf_counter()
        res = train_detector(data, model=model, weights=weights, project=str(work / "runs"), name=f"{tag}-{label}",
                             **schedule)
        print(f"{tag} {label}: trained in {time.perf_counter() - t0:.0f}s")
        rows.append({"data": tag, "model": label, "stages": stages, "init": init, "epochs": epochs,
                     "train_s": res.metrics["train_seconds"],
                     **score(data, images, imgsz, args.warmup, model=str(res.run_dir))})
    return rows


def run(root: Path, work: Path, args: argparse.Namespace) -> list[dict[str, Any]]:
    import cv2

    rows = []
    if args.shapes_epochs > 0:   # synthetic scenes: a set both architectures can learn within a CPU budget
        from cnnlab.detect.train.scenes import write_scene_dataset

        shapes = write_scene_dataset(work / "shapes", n_train=args.shapes_train, n_val=args.shapes_val,
                                     size=args.shapes_size)
        images = [cv2.imread(str(p)) for p in sorted((shapes.parent / "images" / "val").glob("*.png"))]
        rows += train_and_score(shapes, images, work, args, "shapes", args.shapes_size, args.shapes_epochs)
    data = coco128_split(root, work, args.train, args.val)
    images = [cv2.imread(line) for line in (work / "coco128_val.txt").read_text().split()]
    rows += train_and_score(data, images, work, args, "coco128", args.imgsz, args.epochs)
    for stem in ("yolo-fastest-1.1", "yolo-fastest-1.1-xl"):
        rows.append({"data": "coco128", "model": stem, "stages": 1, "init": "COCO weights as they are", "epochs": 0,
                     "train_s": 0.0,
                     **score(data, images, args.imgsz, args.warmup, cfg=str(root / "yolo" / f"{stem}.cfg"),
                             weights=str(root / "yolo" / f"{stem}.weights"))})
    return rows


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="8/4 images, 64 px, 1 epoch; does not write the docs")
    ap.add_argument("--data-dir", default=None, help="shared data root (default $CNNLAB_DATA or ../shared/data)")
    ap.add_argument("--train", type=int, default=96, help="training images (the first, by name)")
    ap.add_argument("--val", type=int, default=30, help="held-out images (the last, by name)")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--imgsz", type=int, default=320)
    ap.add_argument("--warmup", type=int, default=3, help="untimed calls before timing each detector")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rcnn-weights", default=None, help="a local torchvision Faster R-CNN state_dict (.pth)")
    ap.add_argument("--shapes-epochs", type=int, default=12, help="epochs on the synthetic scenes (0: skip them)")
    ap.add_argument("--shapes-train", type=int, default=240)
    ap.add_argument("--shapes-val", type=int, default=60)
    ap.add_argument("--shapes-size", type=int, default=128)
    ap.add_argument("--workdir", default=None, help="keep the run folders here (default: a temporary folder)")
    args = ap.parse_args(argv)
    if args.smoke:
        args.train, args.val, args.epochs, args.imgsz, args.batch, args.warmup = 8, 4, 1, 64, 4, 1
        args.shapes_epochs, args.shapes_train, args.shapes_val, args.shapes_size = 1, 8, 4, 64
    root = data_root(args.data_dir)
    if root is None:
        raise SystemExit("coco128 and yolo/ not found: pass --data-dir or set CNNLAB_DATA")
    import torch

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="cnnlab-two-stage-") as tmp:
        work = Path(args.workdir) if args.workdir else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        rows = run(root, work, args)
    table = markdown_table(rows, COLUMNS)
    print(table)
    if args.smoke:
        print("(--smoke: docs/benchmarks.md not written)")
        return rows
    body = (
        (f"**shapes**: synthetic scenes ({args.shapes_train} train / {args.shapes_val} validation images, "
         f"{args.shapes_size} px, 1-4 circles/squares/triangles each: `cnnlab.detect.train.scenes`), both "
         f"architectures trained from random weights for {args.shapes_epochs} epochs with the schedule below: "
         "a set both can learn on a CPU, so their mAP and speed compare. " if args.shapes_epochs > 0 else "")
        + f"**coco128**, images sorted by name: the first {args.train} labelled images train, the last {args.val} are "
        f"held out; mAP on the held-out images (COCO protocol, `detect_eval`: conf 0.001, NMS IoU 0.6, "
        f"letterboxed {args.imgsz} px). Both trained models use the same `detect-train` schedule: {args.epochs} "
        f"epochs, batch {args.batch}, SGD lr {args.lr} momentum 0.9, cosine with 1 warm-up epoch, flips + HSV + "
        "affine augmentation, no mosaic, EMA; no pretrained weights exist here for either, so both start from "
        "random weights and this budget is far too small for 80 classes: the trained rows measure the pipeline, "
        "not what the architectures can reach. The Yolo-Fastest rows use their COCO weights as they are; "
        "COCO train2017 holds the coco128 images, so their mAP is optimistic. `ms_per_image`/`FPS`: one image "
        "at a time through `Detector` (`backend='torch'` for every row, so the architectures compare, "
        f"{args.threads} threads, conf 0.25: preprocess + inference + postprocess) over the {args.val} held-out images after {args.warmup} warm-up calls. "
        "Faster R-CNN runs its RPN + RoI heads per image (two stages); the YOLOs one convolutional pass.\n\n"
        + table)
    write_section("two_stage", "One- vs two-stage detection (Faster R-CNN vs YOLO)", body)
    return rows


if __name__ == "__main__":
    main()
