"""Detector training on this CPU: the synthetic shapes set, and Yolo-Fastest fine-tuned on coco128 vs scratch.

    nice -n 10 .venv/bin/python benchmarks/detect_train.py --quick     # a smoke test (about a minute)
    nice -n 10 .venv/bin/python benchmarks/detect_train.py             # writes docs/benchmarks.md

1. Synthetic shapes (``cnnlab.detect.train.scenes``): the ``cnnlab demo`` recipe (YOLOv3-tiny at width
   0.5, 128 px, k-means anchors); mAP@0.5 on the held-out scenes and the training time.
2. coco128 (``$CNNLAB_DATA/coco128``): the first 96 images train, the last 32 validate. Yolo-Fastest-1.1
   (``yolo/yolo-fastest-1.1.{cfg,weights}``, COCO-pretrained) is evaluated as is, fine-tuned, and the
   same cfg is trained from scratch with the same schedule.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from _coco128 import coco128_split  # noqa: E402
from _report import markdown_table, write_section  # noqa: E402


def data_root(arg: str | None) -> Path | None:
    for cand in (arg, os.environ.get("CNNLAB_DATA"), REPO.parent / "shared" / "data"):
        if cand and (Path(cand) / "coco128").is_dir():
            return Path(cand)
    return None


def synthetic(work: Path, quick: bool) -> dict:
    from cnnlab.detect.train.demo import DEMO_TRAIN
    from cnnlab.detect.train.scenes import write_scene_dataset
    from cnnlab.tasks.detect.run import train_detector

    n_train, n_val = (48, 16) if quick else (240, 60)
    data = write_scene_dataset(work / "shapes", n_train=n_train, n_val=n_val, size=128, seed=0)
    opts = dict(DEMO_TRAIN)
    if quick:
        opts["epochs"] = 2
    t0 = time.perf_counter()
    res = train_detector(data, project=str(work / "runs"), name="shapes", verbose=2, plots=False, **opts)
    wall = time.perf_counter() - t0
    n_params = sum(p.numel() for p in res.model.parameters())
    return {"set": f"shapes {n_train}/{n_val}", "model": f"yolov3-tiny x{opts['width_mult']} ({n_params / 1e6:.2f}M)",
            "init": "scratch", "imgsz": opts["imgsz"], "epochs": opts["epochs"], "mAP50": res.metrics["mAP50"],
            "mAP50_95": res.metrics["mAP50_95"], "train_s": res.metrics["train_seconds"], "cpu_s": res.metrics["train_cpu_seconds"],
            "wall_s": wall}


def coco128(root: Path, work: Path, quick: bool) -> list[dict]:
    import warnings

    from cnnlab.detect.evaluate import detect_eval
    from cnnlab.tasks.detect.run import train_detector

    n_train, n_val, epochs = (16, 8, 1) if quick else (96, 32, 8)
    data = coco128_split(root, work, n_train, n_val)
    cfg = root / "yolo" / "yolo-fastest-1.1.cfg"
    weights = root / "yolo" / "yolo-fastest-1.1.weights"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        base = detect_eval(data, cfg=cfg, weights=weights, imgsz=320, save=False, verbose=False)
    rows = [{"set": f"coco128 {n_train}/{n_val}", "model": "yolo-fastest-1.1", "init": "COCO weights, no training",
             "imgsz": 320, "epochs": 0, "mAP50": base["mAP50"], "mAP50_95": base["mAP50_95"], "train_s": 0.0,
             "cpu_s": 0.0, "wall_s": 0.0}]
    schedule = {"imgsz": 320, "epochs": epochs, "batch": 16, "optimizer": "sgd", "lr": 0.002, "momentum": 0.9,
                "warmup_epochs": 1.0, "mosaic": 0.5, "ema_warmup": 50, "verbose": 2, "plots": False}
    for init, w, run in (("fine-tuned from COCO weights", weights, "finetune"), ("from scratch", None, "scratch")):
        t0 = time.perf_counter()
        res = train_detector(data, model=str(cfg), weights=str(w) if w else None, project=str(work / "runs"),
                             name=run, **schedule)
        rows.append({"set": f"coco128 {n_train}/{n_val}", "model": "yolo-fastest-1.1", "init": init, "imgsz": 320,
                     "epochs": epochs, "mAP50": res.metrics["mAP50"], "mAP50_95": res.metrics["mAP50_95"],
                     "train_s": res.metrics["train_seconds"], "cpu_s": res.metrics["train_cpu_seconds"],
                     "wall_s": time.perf_counter() - t0})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes and 1-2 epochs; does not write the docs")
    ap.add_argument("--data-dir", default=None, help="shared data root (default $CNNLAB_DATA or ../shared/data)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    rows = []
    with tempfile.TemporaryDirectory(prefix="cnnlab-detect-train-") as tmp:
        work = Path(tmp)
        rows.append(synthetic(work, args.quick))
        root = data_root(args.data_dir)
        if root is None:
            print("shared data not found: skipping the coco128 part (pass --data-dir or set CNNLAB_DATA)")
        else:
            rows += coco128(root, work, args.quick)
    cols = ["set", "model", "init", "imgsz", "epochs", "mAP50", "mAP50_95", "train_s", "cpu_s", "wall_s"]
    table = markdown_table(rows, cols)
    print(table)
    if args.quick:
        print("(--quick: docs/benchmarks.md not written)")
        return
    body = (
        "mAP on the held-out images (COCO protocol via `evaluate_detections`, conf 0.001, NMS IoU 0.6, "
        "letterboxed as `Detector` does); `train_s` sums the epochs' training + validation wall time, `cpu_s` "
        "their CPU time (all threads; on a shared machine it is the better measure of the work), `wall_s` "
        "includes loading the data. Synthetic shapes: the `cnnlab demo` recipe (`cnnlab.detect.train.demo.DEMO_TRAIN`). "
        "coco128: images sorted by name, the first 96 labelled ones train and the last 32 validate; both "
        "Yolo-Fastest runs use the same schedule (SGD lr 0.002, momentum 0.9, cosine, 1 warm-up epoch, "
        "mosaic 0.5, EMA). "
        "coco128 images are COCO train2017 images, which the Yolo-Fastest weights were trained on, so "
        "fine-tuning has little to add; from scratch, 96 images and 8 epochs are far from enough for 80 "
        "classes. The machine is shared by several jobs, so times are upper bounds.\n\n" + table
    )
    write_section("detect_train", "Detector training (detect-train)", body)


if __name__ == "__main__":
    main()
