"""Fine-tune Yolo-Fastest(-XL) from its COCO weights on a custom LabelImg person set, DEFAULT options.

    python benchmarks/detect_finetune.py [--models yolo-fastest-1.1-xl,yolo-fastest-1.1] [--epochs N]
                                         [--imgsz 320] [--data DATA.yaml] [--no-report]
    python benchmarks/detect_finetune.py --smoke --out DIR      # the whole path in seconds (tests run it)

The dataset is coco128's images holding a person, written the way LabelImg users make one (a VOC
``.xml`` beside each image in ``train/`` and ``val/``, a ``data.yaml``; `cnnlab.detect.labelimg`), unless
``--data`` names one. For each model: mAP50 of the COCO detector on the validation split before (its
``person`` class mapped by name), ``train_detector(data, model=cfg, weights=weights, imgsz, epochs)``
with every other option at its default (optimizer auto, warm-up, EMA, mosaic + close-mosaic, anchor
check, head rows kept by class name), its time, mAP50 after, and the detections (conf 0.25) drawn beside
the true boxes on validation images in ``docs/img/detect_finetune_<model>.png``. Writes the section
``detect-finetune`` of docs/benchmarks.md. ``--smoke``: random tiny Darknet "COCO" weights on synthetic
scenes, 1 epoch, pictures into ``--out``, no report.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from _report import markdown_table, write_section  # noqa: E402


def _map50(data: Path, imgsz: int | None = None, **source: Any) -> float:
    """mAP50 on the validation split; the detector keeps its own class names (COCO's for the Darknet
    files), which detect-eval maps to the dataset's by name."""
    from cnnlab.detect.detector import Detector
    from cnnlab.detect.evaluate import detect_eval

    det = Detector(**source, imgsz=imgsz, conf=0.001, iou=0.6)
    r = detect_eval(str(data), detector=det, save=False, plots=False, verbose=False)
    return float(r["mAP50"])


def _draw(run_dir: Path, data: Path, out: Path, n: int = 6) -> Path:
    """The fine-tuned detector (conf 0.25) beside the true boxes on the first ``n`` validation images."""
    import warnings

    from cnnlab.detect.data import load_detection_data
    from cnnlab.detect.detector import Detector
    from cnnlab.detect.images import read_image
    from cnnlab.detect.train.plots import save_val_samples

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = load_detection_data(str(data), split="val", warn=False)
    det = Detector(model=run_dir, conf=0.25)
    samples = ds.samples[:n]
    images = [read_image(s.image_path) for s in samples]
    return save_val_samples(out, images, [(s.boxes, s.class_ids) for s in samples], [det(im) for im in images],
                            ds.names, tile=256)


def finetune(name: str, cfg: Path, weights: Path, data: Path, epochs: int | None, imgsz: int, project: Path,
             picture: Path, log: Any = print) -> dict[str, Any]:
    """One model: mAP50 before, a default fine-tune, mAP50 after, the picture."""
    from cnnlab.detect.train import train_detector

    before = _map50(data, cfg=cfg, weights=weights, imgsz=imgsz)
    log(f"{name}: mAP50 before fine-tuning {before:.3f}")
    t0 = time.perf_counter()
    result = train_detector(str(data), model=str(cfg), weights=str(weights), imgsz=imgsz,
                            **({} if epochs is None else {"epochs": epochs}),
                            project=str(project), name=name, verbose=2, log=log)
    seconds = time.perf_counter() - t0
    after = _map50(data, model=result.run_dir, imgsz=imgsz)
    _draw(result.run_dir, data, picture)
    m = result.metrics
    return {"model": name, "mAP50 before": round(before, 3), "mAP50 after": round(after, 3),
            "best epoch": m.get("best_epoch"), "epochs": len(result.history) or epochs,
            "train s": round(float(m.get("train_seconds") or 0.0), 1),
            "train CPU s": round(float(m.get("train_cpu_seconds") or 0.0), 1),
            "wall s (all)": round(seconds, 1), "picture": picture}


def _smoke_files(root: Path) -> tuple[Path, list[tuple[str, Path, Path]]]:
    """Synthetic scenes (classes circle/square/triangle) and a random 80-class yolov3-tiny as Darknet files
    whose class names are COCO's (so nothing matches by name: the head rows stay fresh)."""
    import torch

    from cnnlab.darknet.cfg import format_cfg
    from cnnlab.darknet.model import DarknetModel
    from cnnlab.darknet.weights import save_darknet_weights
    from cnnlab.darknet.yolo import yolov3_tiny_sections
    from cnnlab.detect.train.scenes import write_scene_dataset

    data = write_scene_dataset(root / "scenes", n_train=8, n_val=4, size=64, seed=0)
    torch.manual_seed(0)
    model = DarknetModel(yolov3_tiny_sections(80, 64, width_mult=0.125))
    (root / "tiny.cfg").write_text(format_cfg(model.sections))
    save_darknet_weights(model, root / "tiny.weights")
    return data, [("tiny-smoke", root / "tiny.cfg", root / "tiny.weights")]


SETS = {"all": "person, all", "clear": "person, clear",
        "renamed": "walker (the clear set renamed: no COCO class matches, fresh head rows)"}


def _rename_class(folder: Path, old: str, new: str) -> None:
    """Rename the one class of a LabelImg set (its .xml files and data.yaml), so that nothing matches the
    COCO names and the fine-tune must learn the class rows from the boxes."""
    for path in [*folder.rglob("*.xml"), folder / "data.yaml"]:
        text = path.read_text()
        path.write_text(text.replace(f"<name>{old}</name>", f"<name>{new}</name>").replace(f"[{old}]", f"[{new}]"))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="yolo-fastest-1.1-xl,yolo-fastest-1.1",
                    help="Darknet models in $CNNLAB_DATA/yolo (cfg + weights).")
    ap.add_argument("--epochs", type=int, default=None, help="Default: detect-train's own (30).")
    ap.add_argument("--sets", default="all,clear",
                    help="Sets from coco128's person images: all; clear (every box >= --min-size); renamed (the clear "
                         "set with its class renamed 'walker': fresh head rows).")
    ap.add_argument("--min-size", type=int, default=32, help="Shorter side in pixels of every box of the clear set.")
    ap.add_argument("--imgsz", type=int, default=320, help="The models' own input size.")
    ap.add_argument("--data", type=Path, default=None, help="A data.yaml (default: the coco128 person subset).")
    ap.add_argument("--out", type=Path, default=None, help="Pictures here (default docs/img; --smoke: required).")
    ap.add_argument("--smoke", action="store_true", help="Tiny random model on synthetic scenes, 1 epoch.")
    ap.add_argument("--no-report", action="store_true", help="Do not write docs/benchmarks.md.")
    args = ap.parse_args(argv)
    if args.smoke and args.out is None:
        ap.error("--smoke needs --out (its pictures are not documentation)")
    from cnnlab.paths import data_root

    rows = []
    with tempfile.TemporaryDirectory(prefix="cnnlab-finetune-") as tmp:
        root = Path(tmp)
        if args.smoke:
            data, models = _smoke_files(root)
            sets = [("smoke", data)]
            epochs, imgsz = 1, 64
        else:
            yolo = data_root(None) / "yolo"
            models = [(m, yolo / f"{m}.cfg", yolo / f"{m}.weights") for m in args.models.split(",") if m]
            for _, c, w in models:
                if not (c.is_file() and w.is_file()):
                    raise SystemExit(f"error: {c} / {w} not found (set CNNLAB_DATA)")
            sets = [("custom", args.data)] if args.data is not None else []
            if args.data is None:
                from cnnlab.detect.labelimg import labelimg_subset

                for which in [w for w in args.sets.split(",") if w]:
                    if which not in SETS:
                        raise SystemExit(f"error: unknown set {which!r} ({', '.join(SETS)})")
                    info = labelimg_subset(data_root(None) / "coco128", root / which, "person", seed=0,
                                           min_size=0 if which == "all" else args.min_size)
                    if which == "renamed":
                        _rename_class(root / which, "person", "walker")
                    label = SETS[which] + f" ({info['train']} + {info['val']} images, {info['boxes']['train']} + " \
                        f"{info['boxes']['val']} boxes)"
                    sets.append((label, root / which / "data.yaml"))
            epochs, imgsz = args.epochs, args.imgsz
        out = args.out or REPO / "docs" / "img"
        out.mkdir(parents=True, exist_ok=True)
        for label, data in sets:
            tag = label.split(" (")[0].split(", ")[-1].split(" ")[0]
            for name, cfg, weights in models:
                rows.append({"set": label, **finetune(name, cfg, weights, data, epochs, imgsz, root / "runs" / tag,
                                                      out / f"detect_finetune_{name}_{tag}.png")})
    for r in rows:
        print(f"{r['set']}: {r['model']}: mAP50 {r['mAP50 before']} -> {r['mAP50 after']} in {r['train s']} s "
              f"({r['epochs']} epochs); {r['picture']}")
    if args.smoke or args.no_report:
        return 0
    table = [{k: (f"![{r['model']}](img/{Path(v).name})" if k == "picture" else v) for k, v in r.items()}
             for r in rows]
    body = (
        "Fine-tuning the Darknet COCO weights on coco128's person images in the LabelImg layout "
        "(`data.yaml` + a VOC `.xml` beside each image; seeded split, 20 % validation): every person image, "
        f"and the *clear* set (only the images where every person box is at least {args.min_size} px on its "
        "shorter side, as people label their own photos: no tiny, distant crowds), **default options** except "
        f"the model's own input size ({imgsz}){'' if args.epochs is None else f' and {epochs} epochs'}: "
        f"{'30 epochs (the default), ' if args.epochs is None else ''}optimizer auto (AdamW, lr 0.002 for one class), warm-up, EMA, "
        "mosaic with close-mosaic, the anchor check, the `person` head rows kept from COCO. "
        "mAP50 on the validation split, before (the COCO detector, its `person` mapped by name) and after "
        "(the run's best EMA weights), both through `detect-eval`'s path with the auto backend. Times are "
        "training only, on this machine (2 cores; see the machine line).\n\n"
        + markdown_table(table)
        + "\n\nEach picture: validation images, true boxes (left) and the fine-tuned detector's boxes at "
        "conf 0.25 (right).\n"
    )
    print(body)
    write_section("detect-finetune", "Fine-tuning Yolo-Fastest(-XL) on a custom person set (default options)",
                  body)
    return 0 if all(r["mAP50 after"] > r["mAP50 before"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
