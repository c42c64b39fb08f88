"""Localisation and segmentation on this CPU: synthetic scenes, and U-Net on the ISBI membrane images.

    flock /work/wt/heavy.lock .venv/bin/python benchmarks/tasks.py --quick   # a smoke test (about a minute)
    flock /work/wt/heavy.lock .venv/bin/python benchmarks/tasks.py           # writes docs/benchmarks.md

1. Classification + localisation (``cnnlab localize-train``): synthetic scenes, one shape per image
   (circle / square / triangle, 64 px), LocNet from scratch; top-1, mean IoU and "correct" (class right
   and IoU >= 0.5) on the held-out scenes.
2. Segmentation (``cnnlab segment-train``): synthetic scenes with exact masks (64 px), U-Net and FCN-8s
   from scratch; pixel accuracy and mIoU on held-out scenes.
3. Segmentation on real masks: ``$CNNLAB_DATA/membrane`` (30 images, 0/255 masks), U-Net at 128 px,
   6 images held out.

Figures are accuracies after a fixed number of epochs (they do not depend on the machine's load); the
seconds are what this run took on this machine and only indicative.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from _report import markdown_table, write_section  # noqa: E402

LOCALIZE = {"epochs": 30, "synthetic_train": 2000, "synthetic_val": 400}
SEGMENT = {"epochs": 30, "synthetic_train": 1000, "synthetic_val": 200, "width": 8, "batch": 16}
MEMBRANE = {"epochs": 40, "imgsz": 128, "width": 8, "batch": 4, "val_fraction": 0.2}


def membrane_root(arg: str | None) -> Path | None:
    for cand in (arg, os.environ.get("CNNLAB_DATA"), REPO.parent / "shared" / "data"):
        if cand and (Path(cand) / "membrane" / "masks").is_dir():
            return Path(cand) / "membrane"
    return None


def run_all(work: Path, quick: bool, data: str | None) -> tuple[list[dict], list[dict]]:
    from cnnlab.tasks.localize.run import train_localizer
    from cnnlab.tasks.segment.run import train_segmenter

    small = {"epochs": 1, "synthetic_train": 64, "synthetic_val": 32} if quick else {}
    common = {"project": str(work / "runs"), "verbose": 2, "plots": False}
    loc = train_localizer({**LOCALIZE, **small, **common})
    m = loc.metrics
    loc_rows = [{"data": "synthetic 1 shape / image", "model": f"locnet ({m['params_trainable'] / 1e6:.2f}M)",
                 "images (train/val)": f"{LOCALIZE['synthetic_train'] if not quick else 64}/"
                                       f"{LOCALIZE['synthetic_val'] if not quick else 32}",
                 "epochs": m["epochs"], "top-1": m["val_accuracy"], "mean IoU": m["val_iou"],
                 "correct (IoU>=0.5)": m["val_correct"], "train s": m["train_time_s"]}]
    seg_rows = []
    for model in ("unet", "fcn8s"):
        r = train_segmenter({**SEGMENT, **small, **common, "model": model, "name": model})
        m = r.metrics
        seg_rows.append({"data": "synthetic scenes 64 px", "model": f"{model} ({m['params_trainable'] / 1e6:.2f}M)",
                         "epochs": m["epochs"], "pixel accuracy": m["val_pixel_accuracy"], "mIoU": m["val_miou"],
                         "IoU per class": ", ".join(f"{c} {v:.2f}" for c, v in m["val_iou"].items() if v is not None),
                         "train s": m["train_time_s"]})
    root = membrane_root(data)
    if root is not None:
        r = train_segmenter({**MEMBRANE, **({"epochs": 1} if quick else {}), **common, "data": str(root),
                             "model": "unet", "name": "membrane"})
        m = r.metrics
        seg_rows.append({"data": "membrane (ISBI 2012) 24/6 images, 128 px", "model":
                         f"unet ({m['params_trainable'] / 1e6:.2f}M)", "epochs": m["epochs"],
                         "pixel accuracy": m["val_pixel_accuracy"], "mIoU": m["val_miou"],
                         "IoU per class": ", ".join(f"{c} {v:.2f}" for c, v in m["val_iou"].items() if v is not None),
                         "train s": m["train_time_s"]})
    return loc_rows, seg_rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny settings, nothing written")
    ap.add_argument("--data", help="data root holding membrane/ (default $CNNLAB_DATA)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="cnnlab-tasks-") as tmp:
        loc_rows, seg_rows = run_all(Path(tmp), args.quick, args.data)
    body = ("Classification + localisation (`cnnlab localize-train`, defaults otherwise):\n\n"
            + markdown_table(loc_rows) + "\nSemantic segmentation (`cnnlab segment-train`):\n\n"
            + markdown_table(seg_rows)
            + "\nSeconds are this machine's and indicative only; the accuracies follow from the epoch budgets.\n")
    if args.quick:
        print(body)
        return
    write_section("tasks", "Localisation and segmentation (synthetic scenes, membrane, CPU)", body)


if __name__ == "__main__":
    main()
