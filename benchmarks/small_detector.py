"""cnnlab-nano (the anchor-free small detector) beside Yolo-Fastest(-XL): mAP, parameters, FLOPs and frames/s
on every backend, on the synthetic shapes and on coco128.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/small_detector.py          # writes docs/benchmarks.md
    .venv/bin/python benchmarks/small_detector.py --smoke --no-write         # seconds: tiny sizes, 1 epoch

1. Synthetic shapes (``cnnlab.detect.train.scenes``, 3 classes, 128 px): cnnlab-nano trained from scratch
   and Yolo-Fastest-1.1 fine-tuned from its COCO weights, the same recipe and epoch budget; mAP on the
   held-out scenes.
2. coco128 (``$CNNLAB_DATA``/coco128, 80 classes, 320 px): the first ``--coco-train`` labelled images train
   cnnlab-nano from scratch, the last ``--coco-val`` validate it and the Yolo-Fastest(-XL) COCO weights
   (which were trained on COCO train2017, these images included: their figures are an upper bound).
3. Every model of part 2 on every backend (torch, onnxruntime, opencv) at 320 px: mAP on the validation
   images and frames/s (``Detector.__call__``: letterbox, inference, decoding + NMS) over them.

Accuracy uses epoch budgets (independent of the machine's load); speed figures need a quiet machine.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from _coco128 import coco128_split  # noqa: E402
from _report import markdown_table, write_section  # noqa: E402

BACKENDS = ("torch", "onnxruntime", "opencv")
FASTEST = ("yolo-fastest-1.1", "yolo-fastest-1.1-xl")
# the training recipe here (as `cnnlab demo`'s: Adam, batch 8, 1 warm-up epoch, half mosaic); the learning rate
# per start: 1e-2 from scratch (cnnlab-nano), 1e-3 to fine-tune COCO weights (Yolo-Fastest)
RECIPE = {"batch": 8, "optimizer": "adam", "mosaic": 0.5, "warmup_epochs": 1.0, "seed": 0, "verbose": 2,
          "plots": False}
LR_SCRATCH, LR_FINETUNE = 1e-2, 1e-3


def data_root(arg: str | None) -> Path | None:
    import os

    for cand in (arg, os.environ.get("CNNLAB_DATA"), REPO.parent / "shared" / "data"):
        if cand and (Path(cand) / "coco128").is_dir() and (Path(cand) / "yolo").is_dir():
            return Path(cand)
    return None


def size_of(model, imgsz: int) -> dict[str, float]:
    """Parameters (M) and GFLOPs per image at ``imgsz`` (``cnnlab.inspect.summary``'s counter)."""
    from cnnlab.inspect.summary import summary

    s = summary(model, (3, imgsz, imgsz))
    return {"params_M": (s.trainable + s.non_trainable) / 1e6, "GFLOPs": s.flops / 1e9}


def train(data: Path, work: Path, name: str, **options) -> tuple[object, float]:
    from cnnlab.tasks.detect.run import train_detector

    t0 = time.perf_counter()
    res = train_detector(data, project=str(work / "runs"), name=name, exist_ok=True, **{**RECIPE, **options})
    return res, time.perf_counter() - t0


def train_row(set_name: str, model: str, init: str, res, wall: float, imgsz: int) -> dict:
    m = res.metrics
    return {"set": set_name, "model": model, "init": init, "imgsz": imgsz, "epochs": m["epochs_done"],
            "mAP50": m["mAP50"], "mAP50_95": m["mAP50_95"], **size_of(res.model, imgsz),
            "train_s": m["train_seconds"], "cpu_s": m["train_cpu_seconds"], "wall_s": wall}


def shapes_part(work: Path, root: Path | None, args) -> list[dict]:
    from cnnlab.detect.train.scenes import write_scene_dataset

    n_train, n_val = (16, 8) if args.smoke else (args.shapes_train, args.shapes_val)
    epochs = 1 if args.smoke else args.shapes_epochs
    data = write_scene_dataset(work / "shapes", n_train=n_train, n_val=n_val, size=128, seed=0)
    set_name = f"shapes {n_train}/{n_val}"
    rows = []
    res, wall = train(data, work, "shapes-nano", model="cnnlab-nano", imgsz=128, epochs=epochs, lr=LR_SCRATCH,
                      width_mult=0.25 if args.smoke else 1.0)
    rows.append(train_row(set_name, "cnnlab-nano", "scratch", res, wall, 128))
    if root is not None and not args.skip_fastest_train:
        yolo = root / "yolo"
        res, wall = train(data, work, "shapes-fastest", model=str(yolo / "yolo-fastest-1.1.cfg"),
                          weights=str(yolo / "yolo-fastest-1.1.weights"), imgsz=128, epochs=epochs, lr=LR_FINETUNE)
        rows.append(train_row(set_name, "yolo-fastest-1.1", "COCO weights, fine-tuned", res, wall, 128))
    return rows


def measure(detector, images, samples, names, frames: int) -> dict[str, float]:
    """mAP over ``images`` (conf 0.001 as set on the detector) and median frames/s over ``frames`` of them."""
    import numpy as np

    from cnnlab.detect.evaluate import evaluate_detections

    preds = {i: detector(img) for i, img in enumerate(images)}
    m = evaluate_detections(samples, preds, names)
    for img in images[:3]:
        detector(img)
    ms = []
    for i in range(frames):
        t = time.perf_counter()
        detector(images[i % len(images)])
        ms.append((time.perf_counter() - t) * 1e3)
    return {"mAP50": float(m["mAP50"]), "mAP50_95": float(m["mAP50_95"]), "ms": float(np.median(ms)),
            "fps": 1000.0 / float(np.median(ms))}


def coco_part(root: Path, work: Path, args) -> tuple[list[dict], list[dict]]:
    import cv2

    from cnnlab.darknet.model import load_darknet
    from cnnlab.detect.data import load_detection_data
    from cnnlab.detect.detector import Detector

    n_train, n_val = (8, 4) if args.smoke else (args.coco_train, args.coco_val)
    epochs = 1 if args.smoke else args.coco_epochs
    data = coco128_split(root, work, n_train, n_val)
    set_name = f"coco128 {n_train}/{n_val}"
    res, wall = train(data, work, "coco-nano", model="cnnlab-nano", imgsz=320, epochs=epochs, lr=LR_SCRATCH,
                      width_mult=0.25 if args.smoke else 1.0)
    train_rows = [train_row(set_name, "cnnlab-nano", "scratch", res, wall, 320)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        val = load_detection_data(str(data), split="val", warn=False)
    samples, names = val.samples, list(val.names)
    images = [cv2.imread(str(s.image_path)) for s in samples]
    yolo = root / "yolo"
    models = {"cnnlab-nano": {"model": res.run_dir}}
    sizes = {"cnnlab-nano": size_of(res.model, 320)}
    for fastest in FASTEST:
        cfg, weights = yolo / f"{fastest}.cfg", yolo / f"{fastest}.weights"
        models[fastest] = {"cfg": cfg, "weights": weights, "names": names, "letterbox": False}
        sizes[fastest] = size_of(load_darknet(cfg, weights), 320)
    rows = []
    frames = 3 if args.smoke else args.frames
    for name, spec in models.items():
        for backend in args.backends:
            det = Detector(**spec, backend=backend, imgsz=320, conf=0.001, iou=0.6, device="cpu",
                           threads=args.threads)
            r = measure(det, images, samples, names, frames)
            init = "scratch, " + f"{epochs} epochs" if name == "cnnlab-nano" else "COCO weights"
            rows.append({"model": name, "init": init, "backend": backend, "imgsz": 320, **sizes[name], **r})
            print(f"{name} {backend}: mAP50 {r['mAP50']:.3f} {r['fps']:.1f} frames/s", flush=True)
    return train_rows, rows


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", default=None)
    p.add_argument("--work", default=None, help="working folder (default: a temporary one)")
    p.add_argument("--smoke", action="store_true", help="tiny sizes, 1 epoch: checks the script runs")
    p.add_argument("--shapes-train", type=int, default=240)
    p.add_argument("--shapes-val", type=int, default=60)
    p.add_argument("--shapes-epochs", type=int, default=20)
    p.add_argument("--coco-train", type=int, default=96)
    p.add_argument("--coco-val", type=int, default=30)
    p.add_argument("--coco-epochs", type=int, default=10)
    p.add_argument("--skip-fastest-train", action="store_true", help="no Yolo-Fastest fine-tuning on shapes")
    p.add_argument("--backends", nargs="+", default=list(BACKENDS))
    p.add_argument("--frames", type=int, default=30, help="timed frames per model and backend")
    p.add_argument("--threads", type=int, default=2, help="CPU threads of every backend")
    p.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    p.add_argument("--no-coco", action="store_true", help="synthetic shapes only (no shared data needed)")
    return p.parse_args(argv)


def run(args: argparse.Namespace) -> tuple[list[dict], list[dict], float]:
    """(training rows, backend rows, seconds) of the benchmark."""
    import tempfile

    root = None if args.no_coco else data_root(args.data_dir)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="small_detector_") as tmp:
        work = Path(args.work) if args.work else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        train_rows = shapes_part(work, root, args)
        backend_rows: list[dict] = []
        if root is not None:
            coco_train, backend_rows = coco_part(root, work, args)
            train_rows += coco_train
        else:
            print("coco128 / Yolo-Fastest not used (--no-coco, or not found in $CNNLAB_DATA): shapes only")
    return train_rows, backend_rows, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    train_rows, backend_rows, total = run(args)
    train_cols = ["set", "model", "init", "imgsz", "epochs", "mAP50", "mAP50_95", "params_M", "GFLOPs", "train_s",
                  "cpu_s", "wall_s"]
    backend_cols = ["model", "init", "backend", "imgsz", "params_M", "GFLOPs", "mAP50", "mAP50_95", "ms", "fps"]
    print(markdown_table(train_rows, train_cols))
    print(markdown_table(backend_rows, backend_cols))
    print(f"total {total:.0f}s")
    if args.no_write or args.smoke:
        return 0
    body = (
        "cnnlab-nano (anchor-free, decoupled head; `docs/detect-train.md`) beside Yolo-Fastest. Training: one recipe "
        f"(`{RECIPE}`) with Adam lr {LR_SCRATCH} from scratch (cnnlab-nano) and {LR_FINETUNE} to fine-tune the "
        "Yolo-Fastest COCO weights, epoch budgets as shown; mAP on the held-out images (COCO protocol, conf "
        "0.001, NMS IoU 0.6). `params_M`/`GFLOPs`: `cnnlab.inspect.summary` at the row's input size (FLOPs = 2 x "
        "multiply-adds). `train_s` sums the epochs' wall time, `cpu_s` their CPU time.\n\n"
        "### Training (accuracy per epoch budget)\n\n" + markdown_table(train_rows, train_cols)
    )
    if backend_rows:
        body += (
            f"\n### Every backend at 320 px on the coco128 validation images (threads {args.threads})\n\n"
            "`ms`/`fps`: median of `Detector.__call__` (letterbox or resize, inference, decoding + NMS) over "
            f"{args.frames} images after 3 warm-up frames. Yolo-Fastest runs its COCO weights with a plain resize "
            "(as Darknet trained it); they were trained on COCO train2017, these images included, so their mAP "
            "here is an upper bound, while cnnlab-nano saw only the training split for the epochs shown.\n\n"
            + markdown_table(backend_rows, backend_cols)
        )
    body += f"\nWhole benchmark: {total:.0f} s.\n"
    write_section("small_detector", "Small detector: cnnlab-nano vs Yolo-Fastest (CPU)", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
