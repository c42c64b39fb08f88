"""Detector backends on this CPU: frames/s at 320 and 416 and mAP on coco128, for the real Yolo-Fastest weights.

    nice -n 10 .venv/bin/python benchmarks/detect_backends.py            # writes docs/benchmarks.md

Needs the shared data (``$CNNLAB_DATA`` or ../shared/data): ``yolo/yolo-fastest-1.1(-xl).{cfg,weights}``,
``yolo/coco.names`` and ``coco128``. Frames/s times ``Detector.__call__`` (preprocess + inference +
postprocess, no image decoding or drawing) over coco128 images after a warm-up; mAP runs each
backend over all 128 images at the model's own input size with conf 0.001 and scores them with
``cnnlab.detect.evaluate.evaluate_detections`` (pycocotools' COCO protocol).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from _report import markdown_table, write_section  # noqa: E402

MODELS = ("yolo-fastest-1.1-xl", "yolo-fastest-1.1")
BACKENDS = ("torch", "opencv", "onnxruntime")


def data_root(arg: str | None) -> Path:
    for cand in (arg, os.environ.get("CNNLAB_DATA"), REPO.parent / "shared" / "data"):
        if cand and (Path(cand) / "yolo").is_dir():
            return Path(cand)
    raise SystemExit("shared data not found: pass --data-dir or set CNNLAB_DATA")


def measure_fps(detector, images, frames: int, warmup: int = 3) -> dict[str, float]:
    """Median ms per stage and frames/s (1000 / median ms per frame) over ``frames`` images (cycled).

    Medians, because the machine is shared and a busy neighbour inflates single frames.
    """
    import numpy as np

    for i in range(warmup):
        detector(images[i % len(images)])
    stages = ("preprocess", "inference", "postprocess")
    per_frame = {k: [] for k in (*stages, "total")}
    for i in range(frames):
        t = time.perf_counter()
        det = detector(images[i % len(images)])
        per_frame["total"].append((time.perf_counter() - t) * 1e3)
        for k in stages:
            per_frame[k].append(det.timing[k])
    out = {f"{k}_ms": float(np.median(per_frame[k])) for k in stages}
    out["fps"] = 1000.0 / float(np.median(per_frame["total"]))
    return out


def measure_map(detector, samples, names, images) -> dict[str, float]:
    from cnnlab.detect.evaluate import evaluate_detections

    preds = {i: detector(img) for i, img in enumerate(images)}
    m = evaluate_detections(samples, preds, names)
    return {"mAP50": m["mAP50"], "mAP50_95": m["mAP50_95"]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", default=None)
    p.add_argument("--models", nargs="+", default=list(MODELS))
    p.add_argument("--backends", nargs="+", default=list(BACKENDS))
    p.add_argument("--sizes", nargs="+", type=int, default=[320, 416])
    p.add_argument("--frames", type=int, default=30, help="timed frames per configuration")
    p.add_argument("--map-images", type=int, default=0, help="limit the mAP images (0 = all 128)")
    p.add_argument("--threads", type=int, default=1,
                   help="CPU threads per backend (1: stable figures on a shared machine)")
    p.add_argument("--no-map", action="store_true")
    p.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = p.parse_args(argv)

    import cv2
    import torch
    from rich.console import Console
    from rich.table import Table

    from cnnlab.detect.data import load_detection_dataset
    from cnnlab.detect.detector import Detector
    from cnnlab.detect.names import load_names

    console = Console()
    root = data_root(args.data_dir)
    yolo = root / "yolo"
    names = load_names(yolo / "coco.names")
    samples, data_names = load_detection_dataset(root / "coco128" / "images" / "train2017", names=names,
                                                 warn=False)
    if args.map_images:
        samples = samples[:args.map_images]
    images = [cv2.imread(str(s.image_path)) for s in samples]
    speed_rows, map_rows = [], []
    for model in args.models:
        cfg, weights = yolo / f"{model}.cfg", yolo / f"{model}.weights"
        for backend in args.backends:
            for size in args.sizes:
                det = Detector(cfg=cfg, weights=weights, names=names, backend=backend, imgsz=size, conf=0.25,
                               threads=args.threads)
                r = measure_fps(det, images, args.frames)
                row = {"model": model, "backend": backend, "imgsz": size, **r}
                speed_rows.append(row)
                console.print(f"{model} {backend} {size}: {r['fps']:.1f} frames/s "
                              f"(inference {r['inference_ms']:.1f} ms)")
            if not args.no_map:
                det = Detector(cfg=cfg, weights=weights, names=names, backend=backend, imgsz=None, conf=0.001,
                               iou=0.45, letterbox=False, threads=args.threads)
                m = measure_map(det, samples, data_names, images)
                map_rows.append({"model": model, "backend": backend, "imgsz": det.imgsz[0], "resize": "plain", **m})
                console.print(f"{model} {backend} mAP50 {m['mAP50']:.4f} mAP50-95 {m['mAP50_95']:.4f}")
        if not args.no_map and "onnxruntime" in args.backends:  # the letterbox alternative, once per model
            det = Detector(cfg=cfg, weights=weights, names=names, backend="onnxruntime", imgsz=None, conf=0.001,
                           iou=0.45, letterbox=True, threads=args.threads)
            m = measure_map(det, samples, data_names, images)
            map_rows.append({"model": model, "backend": "onnxruntime", "imgsz": det.imgsz[0],
                             "resize": "letterbox", **m})

    table = Table(title="detector backends")
    for col in ("model", "backend", "imgsz", "fps", "preprocess_ms", "inference_ms", "postprocess_ms"):
        table.add_column(col)
    for r in speed_rows:
        table.add_row(r["model"], r["backend"], str(r["imgsz"]), f"{r['fps']:.1f}", f"{r['preprocess_ms']:.2f}",
                      f"{r['inference_ms']:.2f}", f"{r['postprocess_ms']:.2f}")
    console.print(table)
    if args.no_write:
        return 0
    body = (
        f"Yolo-Fastest (Darknet weights from the shared data) run by `cnnlab.detect.Detector` with each "
        f"backend, every backend on {args.threads} CPU thread(s) (`threads=`; torch {torch.get_num_threads()}, "
        f"OpenCV {cv2.getNumThreads()}). Frames/s is the whole `Detector.__call__` (letterbox, inference, "
        f"decoding + NMS; image decoding and drawing excluded): 1000 / median ms per frame over "
        f"{args.frames} coco128 images after 3 warm-up frames, conf 0.25; stage columns are medians "
        "too. The machine is shared (other jobs running), so treat the numbers as indicative.\n\n"
        "### Frames per second\n\n"
        + markdown_table(speed_rows, ["model", "backend", "imgsz", "fps", "preprocess_ms", "inference_ms",
                                      "postprocess_ms"])
    )
    if map_rows:
        body += (
            f"\n### mAP on coco128 ({len(samples)} images, {sum(len(s) for s in samples)} boxes)\n\n"
            "Each backend over every image at the model's own input size (cfg [net] width, 320), plain "
            "resize as Darknet evaluates (one letterbox row for comparison), conf 0.001, class-aware NMS IoU 0.45, scored by "
            "`evaluate_detections` (pycocotools, COCO protocol). The authors report COCO val mAP@0.5 of "
            "34.3 % (1.1-xl) and 24.4 % (1.1); coco128 is a train-set sample, so figures differ.\n\n"
            + markdown_table(map_rows, ["model", "backend", "imgsz", "resize", "mAP50", "mAP50_95"])
        )
    write_section("detect_backends", "Detector backends (Yolo-Fastest, CPU)", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
