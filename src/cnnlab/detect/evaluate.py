"""Detection evaluation: mAP by the COCO protocol (pycocotools counts), per-class AP, P/R/F1 curves,
a confusion matrix, and `detect_eval` — run a detector (or read saved predictions) over a dataset
and write a run folder ``runs/detect/<name>``.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from cnnlab.detect.data import DetectionDataset, load_detection_data
from cnnlab.detect.types import Detections, DetectionSample, ImageSize
from cnnlab.errors import DataError, UserError
from cnnlab.notebook import Metrics

COCO_STAT_NAMES = [
    "AP50_95", "AP50", "AP75", "AP50_95_small", "AP50_95_medium", "AP50_95_large",
    "AR1", "AR10", "AR100", "AR100_small", "AR100_medium", "AR100_large",
]
CONF_GRID = 1000  # points of the confidence axis of the P/R/F1-vs-confidence curves (as Ultralytics)


# --------------------------------------------------------------------------------------------------
# metrics

def evaluate_detections(samples: list[DetectionSample], predictions: dict[int, Detections],
                        names: list[str], iou_type: str = "bbox", max_det: int = 100,
                        cm_conf: float = 0.25, cm_iou: float = 0.45) -> dict[str, Any]:
    """mAP@0.5 and mAP@0.5:0.95 of ``predictions`` against ``samples`` by the COCO protocol.

    predictions: ``{sample index: Detections}`` (missing indices mean "nothing detected"); class ids
    index ``names``. pycocotools' COCOeval does the matching and counting on COCO objects built in
    memory. Returns ``mAP50``, ``mAP50_95``, ``per_class`` ({name: AP50_95, AP50, precision, recall,
    f1, instances, images}), ``precision``/``recall``/``f1`` at the confidence of best mean F1,
    ``coco_stats`` (the 12 COCO summary numbers), ``pr_curve``, ``conf_curves`` and
    ``confusion_matrix`` (rows predicted, columns true, last = background; conf ``cm_conf``, IoU
    ``cm_iou`` as in Ultralytics).
    """
    if iou_type != "bbox":
        raise UserError(f"iou_type {iou_type!r} is not supported (only 'bbox': boxes have no masks)")
    names = list(names)
    nc = len(names)
    check_ground_truth(samples, nc)
    bad = [k for k in predictions if not (isinstance(k, (int, np.integer)) and 0 <= k < len(samples))]
    if bad:
        raise ValueError(f"predictions keyed by {bad[:3]}: keys must be sample indices 0..{len(samples) - 1}")
    preds = {int(k): v for k, v in predictions.items()}
    dropped = sum(int(((p.class_ids < 0) | (p.class_ids >= nc)).sum()) for p in preds.values())

    coco_eval, summary = _run_cocoeval(samples, preds, nc, max_det)
    stats = [float(v) for v in coco_eval.stats]
    precision = coco_eval.eval["precision"]            # [T, R, K, A, M]
    instances = np.zeros(nc, np.int64)
    images_with = np.zeros(nc, np.int64)
    for s in samples:
        ids = s.class_ids[(s.class_ids >= 0) & (s.class_ids < nc)]
        np.add.at(instances, ids, 1)
        images_with[np.unique(ids)] += 1

    present = [k for k in range(nc) if instances[k] > 0]
    ap = np.zeros((nc, 2))
    for k in present:
        p_all = precision[:, :, k, 0, -1]
        p50 = precision[0, :, k, 0, -1]
        ap[k] = (p_all[p_all > -1].mean() if (p_all > -1).any() else 0.0,
                 p50[p50 > -1].mean() if (p50 > -1).any() else 0.0)

    curves = _conf_curves(coco_eval, nc, present)
    cm = confusion_matrix(samples, preds, nc, conf=cm_conf, iou_thres=cm_iou)
    best = curves["best_index"]
    metric_curves = {"precision": curves["p"], "recall": curves["r"], "f1": curves["f1"]}
    per_class = {names[k]: {"AP50_95": float(ap[k, 0]), "AP50": float(ap[k, 1]),
                            **{m: float(c[k, best]) for m, c in metric_curves.items()},
                            "instances": int(instances[k]), "images": int(images_with[k])} for k in present}
    has_gt = bool(present)
    rec_thrs = coco_eval.params.recThrs
    pr = {names[k]: precision[0, :, k, 0, -1].clip(0, None).tolist() for k in present}
    mean_pr = (np.mean([pr[n] for n in pr], axis=0) if pr else np.zeros_like(rec_thrs)).tolist()
    return {
        "mAP50": stats[1] if has_gt else 0.0,
        "mAP50_95": stats[0] if has_gt else 0.0,
        **{m: float(c[present, best].mean()) if has_gt else 0.0 for m, c in metric_curves.items()},
        "conf_best_f1": float(curves["x"][best]),
        "images": len(samples),
        "instances": int(instances.sum()),
        "detections": int(sum(len(p) for p in preds.values())),
        "ignored_detections": dropped,
        "per_class": per_class,
        # COCO's -1 (no ground truth in that area range) becomes None (null in metrics.json)
        "coco_stats": dict(zip(COCO_STAT_NAMES, [v if v >= 0 else None for v in stats], strict=True)),
        "coco_summary": summary,
        "pr_curve": {"recall": rec_thrs.tolist(), "precision": pr, "mean": mean_pr},
        "conf_curves": {"conf": curves["x"].tolist(),
                        **{m: {names[k]: c[k].tolist() for k in present} for m, c in metric_curves.items()}},
        "confusion_matrix": {"names": names + ["background"], "matrix": cm.tolist(),
                             "conf": cm_conf, "iou": cm_iou},
        "names": names,
    }


def check_ground_truth(samples: list[DetectionSample], num_classes: int) -> None:
    """Refuse ground truth no metric may be computed over (a one-line DataError naming the image).

    The dataset loaders already refuse such files with the file and line; this guards samples built
    in memory: an image size that is not positive, a box coordinate that is not finite (NaN boxes
    match nothing and make pycocotools report a perfect score), a box without positive width and
    height, a class id outside 0..num_classes-1 (its boxes would silently not count).
    """
    for s in samples:
        if not (s.width > 0 and s.height > 0):
            raise DataError(f"{s.image_path}: image size {s.width}x{s.height} is not positive")
        b = s.boxes
        if not np.isfinite(b).all():
            raise DataError(f"{s.image_path}: a ground-truth box has a non-finite coordinate (NaN or inf)")
        if ((b[:, 2] <= b[:, 0]) | (b[:, 3] <= b[:, 1])).any():
            raise DataError(f"{s.image_path}: a ground-truth box has no area (x2 <= x1 or y2 <= y1)")
        bad = s.class_ids[(s.class_ids < 0) | (s.class_ids >= num_classes)]
        if len(bad):
            raise DataError(f"{s.image_path}: ground-truth class id {int(bad[0])} is outside the "
                            f"{num_classes} class names (0..{num_classes - 1})")


def coco_objects(samples: list[DetectionSample], predictions: dict[int, Detections], num_classes: int):
    """(COCO ground truth, COCO detections) built in memory; image id = index + 1, category = class + 1."""
    from pycocotools.coco import COCO

    from cnnlab.detect.data import coco_instances
    from cnnlab.detect.metrics import xyxy2xywh

    images, anns = coco_instances(samples, range(1, len(samples) + 1), range(1, num_classes + 1))
    cats = [{"id": k + 1, "name": str(k)} for k in range(num_classes)]
    dts = []
    for i, det in sorted(predictions.items()):
        ok = (det.class_ids >= 0) & (det.class_ids < num_classes)
        for box, score, c in zip(xyxy2xywh(det.boxes[ok]), det.scores[ok], det.class_ids[ok], strict=True):
            dts.append({"image_id": i + 1, "category_id": int(c) + 1,
                        "bbox": [float(v) for v in box], "score": float(score)})
    with contextlib.redirect_stdout(io.StringIO()):
        gt, dt = COCO(), COCO()   # dt: no detections (loadRes refuses an empty list)
        for coco, a in ((gt, anns), (dt, [])):
            coco.dataset = {"images": images, "annotations": a, "categories": cats}
            coco.createIndex()
        if dts:
            dt = gt.loadRes(dts)
    return gt, dt


def _run_cocoeval(samples, preds, nc, max_det):
    from pycocotools.cocoeval import COCOeval

    gt, dt = coco_objects(samples, preds, nc)
    ev = COCOeval(gt, dt, "bbox")
    ev.params.imgIds = list(range(1, len(samples) + 1))
    ev.params.catIds = list(range(1, nc + 1))
    ev.params.maxDets = [1, 10, int(max_det)]
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    summary = "\n".join(ln for ln in buf.getvalue().splitlines() if ln.strip().startswith("Average"))
    return ev, summary


def _conf_curves(ev, nc: int, present: list[int]) -> dict[str, Any]:
    """Precision, recall and F1 against confidence at IoU 0.5, from COCOeval's per-image matches."""
    x = np.linspace(0, 1, CONF_GRID)
    p, r = np.zeros((2, nc, CONF_GRID))
    n_img = len(ev.params.imgIds)
    n_area = len(ev.params.areaRng)
    for k in present:
        scores, tps, npig = [], [], 0
        for i in range(n_img):
            e = ev.evalImgs[k * n_area * n_img + i]  # area range 0 = "all"
            if e is None:
                continue
            keep = ~np.asarray(e["dtIgnore"], dtype=bool).reshape(len(ev.params.iouThrs), -1)[0]
            scores.append(np.asarray(e["dtScores"], dtype=np.float64)[keep])
            tps.append((np.asarray(e["dtMatches"]).reshape(len(ev.params.iouThrs), -1)[0] > 0)[keep])
            npig += int((np.asarray(e["gtIgnore"]) == 0).sum())
        sc, tp = np.concatenate([np.zeros(0), *scores]), np.concatenate([np.zeros(0, bool), *tps])
        if npig == 0 or len(sc) == 0:
            continue
        order = np.argsort(-sc, kind="mergesort")
        sc, tp = sc[order], tp[order]
        tpc, fpc = np.cumsum(tp), np.cumsum(~tp)
        r[k] = np.interp(-x, -sc, tpc / npig, left=0)                        # recall
        p[k] = np.interp(-x, -sc, tpc / np.maximum(tpc + fpc, 1), left=1)    # precision
    f1 = 2 * p * r / (p + r + 1e-16)
    best = int(_smooth(f1[present].mean(0), 0.1).argmax()) if present else 0
    return {"x": x, "p": p, "r": r, "f1": f1, "best_index": best}


def _smooth(y: np.ndarray, f: float = 0.05) -> np.ndarray:
    """Box filter of fraction ``f`` (Ultralytics' smoothing of the mean F1 curve)."""
    nf = round(len(y) * f * 2) // 2 + 1
    return np.convolve(np.pad(y, nf // 2, mode="edge"), np.ones(nf) / nf, mode="valid")


def confusion_matrix(samples: list[DetectionSample], predictions: dict[int, Detections],
                     num_classes: int, conf: float = 0.25, iou_thres: float = 0.45) -> np.ndarray:
    """Detection confusion matrix (num_classes + 1)^2, rows predicted, columns true, last = background.

    Per image, detections above ``conf`` are matched to ground truth class-agnostically at IoU >
    ``iou_thres``, best IoU first, one to one (the Ultralytics algorithm).
    """
    from cnnlab.detect.metrics import box_iou

    nc = num_classes
    m = np.zeros((nc + 1, nc + 1), dtype=np.int64)
    for i, s in enumerate(samples):
        ok = (s.class_ids >= 0) & (s.class_ids < nc)
        gt_boxes, gt_cls = s.boxes[ok], s.class_ids[ok]
        det = predictions.get(i) or Detections.empty()
        keep = (det.scores > conf) & (det.class_ids >= 0) & (det.class_ids < nc)
        d_boxes, d_cls = det.boxes[keep], det.class_ids[keep]
        iou = box_iou(gt_boxes, d_boxes)
        gi, di = np.nonzero(iou > iou_thres)
        matches = np.stack([gi, di, iou[gi, di]], 1) if len(gi) else np.zeros((0, 3))
        if len(matches) > 1:
            matches = matches[matches[:, 2].argsort()[::-1]]
            matches = matches[np.unique(matches[:, 1], return_index=True)[1]]
            matches = matches[matches[:, 2].argsort()[::-1]]
            matches = matches[np.unique(matches[:, 0], return_index=True)[1]]
        m_gt, m_det = matches[:, 0].astype(int), matches[:, 1].astype(int)   # now one to one
        np.add.at(m, (d_cls[m_det], gt_cls[m_gt]), 1)
        np.add.at(m, (nc, np.delete(gt_cls, m_gt)), 1)          # missed truths: background row
        np.add.at(m, (np.delete(d_cls, m_det), nc), 1)          # unmatched detections: background column
    return m


# --------------------------------------------------------------------------------------------------
# saved predictions

def load_predictions(path: str | os.PathLike, dataset: DetectionDataset
                     ) -> tuple[dict[int, Detections], list[str]]:
    """Read saved predictions for ``dataset`` -> ({sample index: Detections}, warnings).

    Accepts a COCO results JSON (``[{image_id, category_id, bbox [x, y, w, h], score}, ...]``) and
    the JSON written by ``cnnlab detect`` (per image: its path and ``detections`` with ``box`` xyxy,
    ``score``, ``class_id``/``name``).
    """
    from cnnlab.io import read_json

    path = Path(path)
    data = read_json(path)
    if isinstance(data, list) and (not data or (isinstance(data[0], dict) and "image_id" in data[0])):
        return _from_coco_results(path, data, dataset)
    entries = data
    if isinstance(data, dict):
        keys = ("images", "results", "predictions", "detections", "frames")
        entries = next((data[k] for k in keys if isinstance(data.get(k), list)), data)
    if not isinstance(entries, list):
        raise DataError(f"{path}: not a predictions file (expected a COCO results list or the JSON "
                        "written by 'cnnlab detect')")
    return _from_cnnlab_json(path, entries, dataset)


def _from_coco_results(path: Path, data: list, ds: DetectionDataset):
    idx_of = {**_by_file_name(ds), **{img_id: i for i, img_id in enumerate(ds.image_ids)}}
    cat_to_cls = {int(c): k for k, c in enumerate(ds.category_ids)}
    cat_ids = {d.get("category_id") for d in data if isinstance(d, dict)}
    warns = []
    if cat_ids and not all(isinstance(c, int) and c in cat_to_cls for c in cat_ids):
        if all(isinstance(c, int) and 0 <= c < len(ds.names) for c in cat_ids):
            cat_to_cls = {k: k for k in range(len(ds.names))}
            warns.append(f"{path}: category ids do not match the dataset's; read them as 0-based class "
                         "indices")
        else:
            unknown = sorted(c for c in cat_ids if c not in cat_to_cls)[:5]
            raise DataError(f"{path}: category_id {unknown} not among the dataset's category ids")
    rows: dict[int, list] = {}
    unmatched = 0
    for j, d in enumerate(data):
        bb = d.get("bbox") if isinstance(d, dict) else None
        if not (isinstance(bb, list) and len(bb) == 4 and isinstance(d.get("score"), (int, float))):
            raise DataError(f"{path}: entry [{j}]: needs image_id, category_id, bbox [x, y, w, h], score")
        i = idx_of.get(d["image_id"], idx_of.get(str(d["image_id"])))
        if i is None:
            unmatched += 1
            continue
        x, y, w, h = (float(v) for v in bb)
        rows.setdefault(i, []).append((x, y, x + w, y + h, float(d["score"]), cat_to_cls[d["category_id"]]))
    if unmatched:
        warns.append(f"{path}: {unmatched} detections name images that are not in the dataset (ignored)")
    return _rows_to_dets(rows, len(ds.samples), ds.names), warns


def _from_cnnlab_json(path: Path, entries: list, ds: DetectionDataset):
    by_path = {str(s.image_path.resolve()): i for i, s in enumerate(ds.samples)}
    by_name = _by_file_name(ds)
    pos = {n: k for k, n in enumerate(ds.names)}
    rows: dict[int, list] = {}
    unmatched = 0
    for j, e in enumerate(entries):
        if not isinstance(e, dict):
            raise DataError(f"{path}: entry [{j}] is not an object")
        src = next((e[k] for k in ("image", "path", "source", "file", "file_name", "image_path")
                    if isinstance(e.get(k), str)), None)
        dets = e.get("detections", e.get("boxes"))
        if src is None or not isinstance(dets, list):
            raise DataError(f"{path}: entry [{j}] needs an image path ('image') and a 'detections' list")
        p = Path(src)   # absolute, relative to the working folder or to this file, else by file name
        found = (by_path.get(str(p.resolve())), by_path.get(str((path.parent / p).resolve())),
                 by_name.get(p.name), by_name.get(p.stem))
        i = next((k for k in found if k is not None), None)
        if i is None:
            unmatched += 1
            continue
        for d in dets:
            box = d.get("box", d.get("xyxy", d.get("bbox_xyxy"))) if isinstance(d, dict) else None
            if not (isinstance(box, list) and len(box) == 4) or "score" not in d:
                raise DataError(f"{path}: entry [{j}]: each detection needs 'box' [x1, y1, x2, y2] and 'score'")
            cls = pos[d["name"]] if d.get("name") in pos else int(d.get("class_id", -1))
            rows.setdefault(i, []).append((*[float(v) for v in box], float(d["score"]), cls))
    warns = [f"{path}: {unmatched} images are not in the dataset (ignored)"] if unmatched else []
    return _rows_to_dets(rows, len(ds.samples), ds.names), warns


def _by_file_name(ds: DetectionDataset) -> dict[str, int]:
    """Sample index by image file name and by stem (the first sample wins)."""
    out: dict[str, int] = {}
    for i, s in enumerate(ds.samples):
        out.setdefault(s.image_path.name, i)
        out.setdefault(s.image_path.stem, i)
    return out


def _rows_to_dets(rows: dict[int, list], n: int, names: list[str]) -> dict[int, Detections]:
    arrays = {i: np.asarray(rows.get(i, []), dtype=np.float64).reshape(-1, 6) for i in range(n)}
    return {i: Detections(r[:, :4], r[:, 4], r[:, 5], names) for i, r in arrays.items()}


def to_coco_results(predictions: dict[int, Detections], dataset: DetectionDataset) -> list[dict]:
    """Predictions as a COCO results list (dataset image ids and category ids)."""
    from cnnlab.detect.metrics import xyxy2xywh

    out = []
    for i, det in sorted(predictions.items()):
        for box, score, c in zip(xyxy2xywh(det.boxes), det.scores, det.class_ids, strict=True):
            if 0 <= c < len(dataset.category_ids):
                out.append({"image_id": dataset.image_ids[i], "category_id": int(dataset.category_ids[c]),
                            "bbox": [round(float(v), 3) for v in box], "score": round(float(score), 5)})
    return out


# --------------------------------------------------------------------------------------------------
# running a detector and the run folder

def run_detector(detector: Any, dataset: DetectionDataset, verbose: bool = True
                 ) -> tuple[dict[int, Detections], dict[str, float], list[str]]:
    """Run ``detector`` (a `Detector` or any callable image_bgr -> Detections) over the dataset.

    Returns ({sample index: Detections with the dataset's class ids}, mean ms per stage, warnings).
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from cnnlab.detect.predict import read_image

    class_map, warns = class_mapping(list(getattr(detector, "names", []) or []), dataset.names)
    preds: dict[int, Detections] = {}
    timing: Counter[str] = Counter()
    cols = (TextColumn("detect-eval"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*cols, disable=not verbose, transient=True) as bar:
        for i, s in enumerate(bar.track(dataset.samples, description="images")):
            det = detector(read_image(s.image_path))
            timing.update({k: float(v) for k, v in (getattr(det, "timing", None) or {}).items()})
            cls = remap_classes(det.class_ids, class_map)
            preds[i] = Detections(det.boxes, det.scores, cls, dataset.names, det.timing)
    n = max(len(dataset.samples), 1)
    return preds, {k: v / n for k, v in timing.items()}, warns


def class_mapping(det_names: list[str], data_names: list[str]) -> tuple[np.ndarray | None, list[str]]:
    """Detector class id -> dataset class id by name (-1: not in the dataset); None: the same ids (also,
    with a warning, when no name is shared)."""
    if not det_names or list(det_names) == list(data_names):
        return None, []
    pos = {n: k for k, n in enumerate(data_names)}
    if not any(n in pos for n in det_names):
        return None, [f"the detector's class names do not match the dataset's; comparing class ids as is "
                      f"({len(det_names)} vs {len(data_names)} classes)"]
    return np.asarray([pos.get(n, -1) for n in det_names], dtype=np.int64), []


def remap_classes(class_ids: np.ndarray, mapping: np.ndarray | None) -> np.ndarray:
    """``class_ids`` through a `class_mapping` (-1 for ids outside it)."""
    if mapping is None:
        return class_ids
    out = mapping[np.clip(class_ids, 0, len(mapping) - 1)]
    out[(class_ids < 0) | (class_ids >= len(mapping))] = -1
    return out


def detect_eval(data: Any, detector: Any = None, predictions: Any = None, *,
                names: Any = None, split: str = "val", images: str | os.PathLike | None = None,
                cfg: str | os.PathLike | None = None, weights: str | os.PathLike | None = None,
                model: Any = None, backend: str = "auto",
                imgsz: ImageSize | int | str | tuple[int, int] | None = None, conf: float = 0.001,
                iou: float = 0.6, device: str = "cpu", max_det: int = 100,
                project: str | os.PathLike = "runs", name: str = "exp", exist_ok: bool = False,
                save: bool = True, plots: bool = True, json: str | os.PathLike | None = None,
                verbose: bool = True) -> Metrics:
    """Evaluate a detector (or saved predictions) on a labelled dataset; write ``runs/detect/<name>``.

    data: a dataset spec (see `load_detection_data`) or a loaded `DetectionDataset`.
    detector: a `cnnlab.detect.Detector` (or any callable image_bgr -> Detections); when omitted and
    no ``predictions`` are given, one is built from cfg/weights/model/names/backend/imgsz/conf/iou.
    predictions: a COCO results / ``cnnlab detect`` JSON file, or ``{sample index: Detections}``.
    Returns the metrics dict of `evaluate_detections` plus ``run_dir``, ``speed_ms`` and ``warnings``.
    """
    if isinstance(data, DetectionDataset):
        ds = data
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = load_detection_data(data, split=split, names=names, images=images, warn=False)
    if ds.num_boxes == 0:   # mAP over no ground truth is a meaningless 0: say so instead
        raise DataError(f"{ds.source}: the {split} split has {len(ds)} images but no labelled boxes (its "
                        f"{ds.format} label files hold none); nothing to score")
    warns = list(ds.warnings)
    speed: dict[str, float] = {}
    source = "predictions"
    if predictions is not None and detector is not None:
        raise UserError("give either a detector or predictions, not both")
    if predictions is not None:
        if isinstance(predictions, dict):
            preds = predictions
        else:
            preds, w = load_predictions(predictions, ds)
            warns += w
            source = str(predictions)
    else:
        if detector is None:
            if cfg is None and weights is None and model is None:
                raise UserError("nothing to evaluate: give a detector (--cfg/--weights or --model) or "
                                "--predictions FILE")
            from cnnlab.detect.detector import Detector
            from cnnlab.detect.names import parse_names

            det_names = parse_names(names) if names is not None else None if ds.names_inferred else ds.names
            detector = Detector(cfg=cfg, weights=weights, model=model, names=det_names, backend=backend,
                                imgsz=imgsz, conf=conf, iou=iou, device=device)
            source = f"{detector.backend_name}:{model or cfg}"
            if verbose:   # which backend and threads, before the images run (also when piped)
                print(detector.backend_line(), flush=True)
        if ds.names_inferred and getattr(detector, "names", None):  # label ids are the model's ids
            import dataclasses

            from cnnlab.detect.data import default_category_ids

            ds = dataclasses.replace(ds, names=list(detector.names), names_inferred=False,
                                     category_ids=default_category_ids(list(detector.names)))
        check_ground_truth(ds.samples, len(ds.names))   # before the detector runs over every image
        preds, speed, w = run_detector(detector, ds, verbose=verbose)
        warns += w
    result = evaluate_detections(ds.samples, preds, ds.names, max_det=max_det)
    result.update(speed_ms=speed, warnings=warns, source=source, dataset=str(ds.source))
    if save:
        from cnnlab.runs import new_run_dir

        run = new_run_dir(project, "detect", name, exist_ok=exist_ok)
        config = {"task": "detect-eval", "data": str(ds.source), "split": split, "source": source,
                  "imgsz": list(ImageSize.parse(imgsz)) if imgsz is not None else None, "conf": conf, "iou": iou,
                  "backend": getattr(detector, "backend_name", backend), "max_det": max_det,
                  "cfg": str(cfg) if cfg else None, "weights": str(weights) if weights else None,
                  "model": str(model) if isinstance(model, (str, Path)) else None}
        write_run_folder(run, result, ds, preds if predictions is None else None, config, plots=plots)
        result["run_dir"] = str(run)
    if json is not None:
        from cnnlab.io import write_json

        write_json(json, summary_metrics(result))
    return Metrics(result)      # a dict that displays as a table in a notebook


def summary_metrics(result: dict[str, Any]) -> dict[str, Any]:
    """The part of a result worth keeping in metrics.json (no curves, no matrix)."""
    skip = {"pr_curve", "conf_curves", "confusion_matrix", "coco_summary"}
    return {k: v for k, v in result.items() if k not in skip}


def write_run_folder(run: Path, result: dict[str, Any], ds: DetectionDataset,
                     preds: dict[int, Detections] | None, config: dict[str, Any],
                     plots: bool = True) -> None:
    """metrics.json, per_class.csv/.md, confusion_matrix.csv, curves and (optional) predictions.json."""
    from cnnlab.io import atomic_write_text, write_json
    from cnnlab.runs import write_run_config, write_run_metrics

    write_run_config(run, config)
    write_run_metrics(run, summary_metrics(result))
    atomic_write_text(run / "per_class.csv", per_class_csv(result))
    atomic_write_text(run / "per_class.md", per_class_markdown(result))
    atomic_write_text(run / "coco_summary.txt", result["coco_summary"] + "\n")
    cm = result["confusion_matrix"]
    atomic_write_text(run / "confusion_matrix.csv", _csv([["predicted\\true", *cm["names"]]] + [
        [n, *row] for n, row in zip(cm["names"], cm["matrix"], strict=True)]))
    if preds is not None:
        write_json(run / "predictions.json", to_coco_results(preds, ds))
    if plots:
        from cnnlab.detect.eval_plots import plot_conf_curve, plot_confusion_matrix, plot_pr_curve

        plot_pr_curve(result, run / "PR_curve.png")
        for metric, letter in (("f1", "F1"), ("precision", "P"), ("recall", "R")):
            plot_conf_curve(result, metric, run / f"{letter}_curve.png")
        for normalize in (False, True):
            plot_confusion_matrix(result, run / f"confusion_matrix{'_normalized' * normalize}.png", normalize)


def _csv(rows: list[list[Any]]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue()


def _table_rows(result: dict[str, Any]) -> list[list[str]]:
    total = {**result, "AP50": result["mAP50"], "AP50_95": result["mAP50_95"]}
    every = [("all", total), *result["per_class"].items()]
    return [[n, str(m["images"]), str(m["instances"]),
             *(f"{m[k]:.3f}" for k in ("precision", "recall", "AP50", "AP50_95"))] for n, m in every]


TABLE_HEADER = ["class", "images", "instances", "P", "R", "mAP50", "mAP50-95"]


def per_class_csv(result: dict[str, Any]) -> str:
    """Per-class table (first row: all classes) as CSV."""
    return _csv([TABLE_HEADER, *_table_rows(result)])


def per_class_markdown(result: dict[str, Any]) -> str:
    """Per-class table (first row: all classes) as a Markdown table."""
    rows = _table_rows(result)
    out = ["| " + " | ".join(TABLE_HEADER) + " |", "|" + "|".join(["---"] + ["---:"] * 6) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out) + "\n"


def rich_table(result: dict[str, Any]):
    """The per-class table as a rich Table (what ``cnnlab detect-eval`` prints)."""
    from rich.table import Table

    t = Table(title=f"detect-eval: mAP50 {result['mAP50']:.4f}  mAP50-95 {result['mAP50_95']:.4f}")
    for i, h in enumerate(TABLE_HEADER):
        t.add_column(h, justify="left" if i == 0 else "right")
    for i, r in enumerate(_table_rows(result)):
        t.add_row(*r, style="bold" if i == 0 else None)
    return t
