"""Detection evaluation: a hand-made case with known AP, parity with a direct pycocotools COCOeval,
confusion matrix, IoU utilities, saved predictions, detect_eval run folders."""

from __future__ import annotations

import contextlib
import io
import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

from cnnlab.detect.data import DetectionDataset, load_detection_data
from cnnlab.detect.evaluate import (
    confusion_matrix,
    detect_eval,
    evaluate_detections,
    load_predictions,
    to_coco_results,
)
from cnnlab.detect.metrics import (
    box_area,
    box_iou,
    clip_boxes,
    cxcywh2xyxy,
    xywh2xyxy,
    xyxy2cxcywh,
    xyxy2xywh,
    xyxy2yolo,
    yolo2xyxy,
)
from cnnlab.detect.types import Detections, DetectionSample
from cnnlab.errors import UserError


def _det(boxes, scores, classes, names=("a", "b")) -> Detections:
    return Detections(np.asarray(boxes, np.float32), np.asarray(scores, np.float32),
                      np.asarray(classes, np.int64), list(names))


def _hand_case():
    """One 200x200 image. Class "a": GT A=[0,0,100,100] and B=[100,100,200,200]; class "b": GT C.

    Detections of "a", in score order:
      d1 0.9 = A exactly (IoU 1)            -> TP at every IoU threshold
      d2 0.8 far from both (IoU 0)          -> FP
      d3 0.7 = [100,100,200,162.5] on B     -> IoU 6250/10000 = 0.625: TP at t in {.50,.55,.60},
                                               FP at the 7 thresholds .65...95
    Detection of "b": C exactly -> AP 1 at every threshold.
    """
    s = DetectionSample(Path("x.png"), 200, 200,
                        np.array([[0, 0, 100, 100], [100, 100, 200, 200], [0, 150, 40, 190]], np.float32),
                        np.array([0, 0, 1]))
    d = _det([[0, 0, 100, 100], [150, 0, 190, 40], [100, 100, 200, 162.5], [0, 150, 40, 190]],
             [0.9, 0.8, 0.7, 0.95], [0, 0, 0, 1])
    return [s], {0: d}


def test_hand_made_case_has_known_ap():
    # Class "a" at IoU 0.5: PR points (R, P) = (0.5, 1), (0.5, 1/2), (1, 2/3). COCO interpolates the
    # precision envelope (max precision at recall >= r) at 101 recall points 0, 0.01, ..., 1:
    # the 51 points r <= 0.5 get precision 1, the 50 points r > 0.5 get 2/3.
    #   AP50(a) = (51 * 1 + 50 * 2/3) / 101 = 253/303
    # At the 7 thresholds where d3 is a FP, recall stops at 0.5: AP = 51/101 = 153/303.
    #   AP50_95(a) = (3 * 253/303 + 7 * 153/303) / 10 = 1830/3030 = 61/101
    # Class "b" is detected exactly: AP 1. The mAP is the mean over the two classes.
    samples, preds = _hand_case()
    r = evaluate_detections(samples, preds, ["a", "b"])
    ap50_a, ap_a = Fraction(253, 303), Fraction(61, 101)
    assert r["per_class"]["a"]["AP50"] == pytest.approx(float(ap50_a), abs=1e-12)
    assert r["per_class"]["a"]["AP50_95"] == pytest.approx(float(ap_a), abs=1e-12)
    assert r["per_class"]["b"]["AP50"] == pytest.approx(1.0) and r["per_class"]["b"]["AP50_95"] == pytest.approx(1.0)
    assert r["mAP50"] == pytest.approx(float((ap50_a + 1) / 2), abs=1e-12)   # 278/303
    assert r["mAP50_95"] == pytest.approx(float((ap_a + 1) / 2), abs=1e-12)  # 81/101
    assert r["per_class"]["a"]["instances"] == 2 and r["instances"] == 3 and r["detections"] == 4
    # the PR curve at IoU 0.5 is the interpolated envelope described above
    pr = np.asarray(r["pr_curve"]["precision"]["a"])
    assert pr.shape == (101,) and np.allclose(pr[:51], 1) and np.allclose(pr[51:], 2 / 3)


def test_no_detections_and_no_ground_truth():
    samples, _ = _hand_case()
    r = evaluate_detections(samples, {}, ["a", "b"])
    assert r["mAP50"] == 0.0 and r["mAP50_95"] == 0.0 and r["per_class"]["a"]["AP50"] == 0.0
    empty = [DetectionSample(Path("e.png"), 10, 10, np.zeros((0, 4)), np.zeros(0))]
    r = evaluate_detections(empty, {0: _det([[0, 0, 5, 5]], [0.5], [0])}, ["a", "b"])
    assert r["mAP50"] == 0.0 and r["per_class"] == {}
    assert r["confusion_matrix"]["matrix"][0][2] == 1  # a false positive on background


def test_out_of_range_detections_are_ignored_not_crashing():
    samples, preds = _hand_case()
    d = preds[0]
    bad = Detections(np.vstack([d.boxes, [[0, 0, 9, 9]]]), np.append(d.scores, 0.99),
                     np.append(d.class_ids, 5), d.names)
    r = evaluate_detections(samples, {0: bad}, ["a", "b"])
    assert r["ignored_detections"] == 1
    assert r["mAP50"] == pytest.approx(278 / 303)
    with pytest.raises(ValueError, match="sample indices"):
        evaluate_detections(samples, {3: d}, ["a", "b"])


def _random_case(seed=0, n_img=6, nc=4):
    rng = np.random.default_rng(seed)
    samples, preds = [], {}
    for i in range(n_img):
        w, h = int(rng.integers(200, 400)), int(rng.integers(200, 400))
        n = int(rng.integers(0, 8))
        xy = rng.uniform(0, [w * 0.7, h * 0.7], (n, 2))
        wh = rng.uniform(8, [w * 0.3, h * 0.3], (n, 2))
        gt = np.concatenate([xy, xy + wh], 1).astype(np.float32)
        cls = rng.integers(0, nc, n)
        samples.append(DetectionSample(Path(f"{i}.jpg"), w, h, gt, cls))
        # detections: jittered GT (sometimes with the wrong class) plus random false positives
        keep = rng.random(n) < 0.8
        jit = gt[keep] + rng.normal(0, 6, (int(keep.sum()), 4))
        dcls = np.where(rng.random(int(keep.sum())) < 0.85, cls[keep], rng.integers(0, nc, int(keep.sum())))
        m = int(rng.integers(0, 5))
        fxy = rng.uniform(0, [w * 0.8, h * 0.8], (m, 2))
        fp = np.concatenate([fxy, fxy + rng.uniform(5, 60, (m, 2))], 1)
        boxes = np.concatenate([jit, fp]).astype(np.float32)
        preds[i] = Detections(boxes, rng.uniform(0.01, 1, len(boxes)),
                              np.concatenate([dcls, rng.integers(0, nc, m)]), [])
    return samples, preds, [f"c{k}" for k in range(nc)]


def test_map_equals_direct_pycocotools(tmp_path):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    samples, preds, names = _random_case(seed=3, n_img=8, nc=4)
    r = evaluate_detections(samples, preds, names)
    # the same data written as COCO files (different ids on purpose) and scored by pycocotools directly
    gt = {"images": [], "annotations": [], "categories": [{"id": 10 + k, "name": n} for k, n in enumerate(names)]}
    dts = []
    for i, s in enumerate(samples):
        gt["images"].append({"id": 100 + i, "width": s.width, "height": s.height, "file_name": s.image_path.name})
        for b, c in zip(s.boxes.tolist(), s.class_ids.tolist(), strict=True):
            gt["annotations"].append({"id": len(gt["annotations"]) + 7, "image_id": 100 + i,
                                      "category_id": 10 + c, "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]],
                                      "area": (b[2] - b[0]) * (b[3] - b[1]), "iscrowd": 0})
        for b, sc, c in zip(preds[i].boxes.tolist(), preds[i].scores.tolist(), preds[i].class_ids.tolist(), strict=True):
            dts.append({"image_id": 100 + i, "category_id": 10 + c,
                        "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]], "score": sc})
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "dt.json").write_text(json.dumps(dts))
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO(str(tmp_path / "gt.json"))
        coco_dt = coco_gt.loadRes(str(tmp_path / "dt.json"))
        ev = COCOeval(coco_gt, coco_dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    assert 0.2 < ev.stats[1] < 0.95  # a non-trivial case
    assert r["mAP50_95"] == pytest.approx(ev.stats[0], abs=1e-9)
    assert r["mAP50"] == pytest.approx(ev.stats[1], abs=1e-9)
    assert [v if v is not None else -1 for v in r["coco_stats"].values()] == pytest.approx(ev.stats, abs=1e-9)
    for k, n in enumerate(names):
        p = ev.eval["precision"][:, :, k, 0, -1]
        if n in r["per_class"]:
            assert r["per_class"][n]["AP50_95"] == pytest.approx(p[p > -1].mean(), abs=1e-9)
            assert r["per_class"][n]["AP50"] == pytest.approx(p[0][p[0] > -1].mean(), abs=1e-9)


def test_precision_recall_at_best_f1():
    samples, preds = _hand_case()
    r = evaluate_detections(samples, preds, ["a", "b"])
    a = r["per_class"]["a"]
    # the best mean-F1 confidence lies where class "a" keeps d1 (and d2): P 1/2 .. 1, R 1/2 .. 1
    assert 0 < a["precision"] <= 1 and 0.5 <= a["recall"] <= 1
    assert 0 <= r["conf_best_f1"] <= 1 and 0 < r["f1"] <= 1
    assert len(r["conf_curves"]["f1"]["a"]) == len(r["conf_curves"]["conf"])


def test_confusion_matrix_counts():
    # GT: a at A, b at C, a at D. Detections: A labelled "b" (class confusion), C labelled "b" (correct),
    # a low-score box (below conf 0.25, ignored), a background FP. D is missed.
    s = DetectionSample(Path("x.png"), 300, 300,
                        np.array([[0, 0, 100, 100], [150, 150, 250, 250], [0, 200, 50, 250]]),
                        np.array([0, 1, 0]))
    d = _det([[2, 2, 100, 100], [150, 150, 250, 245], [0, 200, 50, 250], [200, 0, 260, 60]],
             [0.9, 0.8, 0.1, 0.6], [1, 1, 0, 0])
    m = confusion_matrix([s], {0: d}, 2, conf=0.25, iou_thres=0.45)
    expected = np.array([[0, 0, 1],    # predicted a: the background FP
                         [1, 1, 0],    # predicted b: true a (confused), true b (correct)
                         [1, 0, 0]])   # background: the missed a
    np.testing.assert_array_equal(m, expected)


# ------------------------------------------------------------------------------------------ IoU utilities

def test_box_iou_and_conversions():
    a = np.array([[0, 0, 10, 10], [5, 5, 15, 15]], np.float32)
    b = np.array([[0, 0, 10, 10], [10, 10, 20, 20], [0, 0, 5, 10]], np.float32)
    iou = box_iou(a, b)
    assert isinstance(iou, np.ndarray) and iou.shape == (2, 3)
    np.testing.assert_allclose(iou, [[1, 0, 0.5], [25 / 175, 25 / 175, 0]], atol=1e-6)
    assert box_iou(a, np.zeros((0, 4))).shape == (2, 0)
    t = box_iou(torch.tensor(a), torch.tensor(b))
    assert isinstance(t, torch.Tensor) and torch.allclose(t, torch.tensor(iou))
    np.testing.assert_allclose(xyxy2xywh(a), [[0, 0, 10, 10], [5, 5, 10, 10]])
    np.testing.assert_allclose(xywh2xyxy(xyxy2xywh(a)), a)
    np.testing.assert_allclose(xyxy2cxcywh(a), [[5, 5, 10, 10], [10, 10, 10, 10]])
    np.testing.assert_allclose(cxcywh2xyxy(xyxy2cxcywh(a)), a)
    np.testing.assert_allclose(yolo2xyxy([[0.5, 0.5, 0.2, 0.4]], 100, 50), [[40, 15, 60, 35]])
    np.testing.assert_allclose(xyxy2yolo([[40, 15, 60, 35]], 100, 50), [[0.5, 0.5, 0.2, 0.4]], atol=1e-6)
    np.testing.assert_allclose(box_area(a), [100, 100])
    np.testing.assert_allclose(clip_boxes([[-5, -5, 120, 40]], 100, 30), [[0, 0, 100, 30]])


def test_detections_helpers():
    d = _det([[0, 0, 1, 1], [1, 1, 2, 2]], [0.2, 0.9], [0, 1])
    assert len(d) == 2 and len(Detections.empty(["a"])) == 0
    assert len(d.filter(conf=0.5)) == 1 and d.filter(classes=[0]).scores.tolist() == pytest.approx([0.2])
    dicts = d.to_dicts()
    assert dicts[1] == {"class_id": 1, "name": "b", "score": 0.9, "box": [1.0, 1.0, 2.0, 2.0]}
    assert Detections.from_dicts(dicts, d.names).class_ids.tolist() == [0, 1]
    with pytest.raises(ValueError):
        Detections(np.zeros((2, 4)), np.zeros(1), np.zeros(2))


# ------------------------------------------------------------------------------------------ detect_eval

def _dataset(tmp_path: Path) -> DetectionDataset:
    from PIL import Image

    samples, preds = _hand_case()
    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    Image.new("RGB", (200, 200)).save(tmp_path / "images" / "7.png")
    Image.new("RGB", (200, 100)).save(tmp_path / "images" / "8.png")
    lines = [f"{c} {(b[0] + b[2]) / 400} {(b[1] + b[3]) / 400} {(b[2] - b[0]) / 200} {(b[3] - b[1]) / 200}"
             for b, c in zip(samples[0].boxes.tolist(), samples[0].class_ids.tolist(), strict=True)]
    (tmp_path / "labels" / "7.txt").write_text("\n".join(lines) + "\n")
    return load_detection_data(tmp_path / "images", names=["a", "b"], warn=False)


def test_predictions_files_coco_results_and_cnnlab_json(tmp_path):
    ds = _dataset(tmp_path)
    _, preds = _hand_case()
    assert ds.image_ids == [7, 8]
    coco = to_coco_results(preds, ds)
    assert coco[0]["image_id"] == 7 and coco[0]["category_id"] == 1
    (tmp_path / "coco.json").write_text(json.dumps(coco))
    got, warns = load_predictions(tmp_path / "coco.json", ds)
    assert not warns and len(got[0]) == 4 and len(got[1]) == 0
    r = evaluate_detections(ds.samples, got, ds.names)
    assert r["mAP50"] == pytest.approx(278 / 303, abs=1e-6)
    # the JSON written by `cnnlab detect`: per image its path and to_dicts() of its detections
    doc = {"names": ["a", "b"], "results": [
        {"source": str(tmp_path / "images" / "7.png"), "frame": None, "width": 200, "height": 200,
         "detections": preds[0].to_dicts()},
        {"source": "elsewhere/unknown.png", "frame": None, "width": 9, "height": 9, "detections": []}]}
    (tmp_path / "det.json").write_text(json.dumps(doc))
    got2, warns2 = load_predictions(tmp_path / "det.json", ds)
    assert len(got2[0]) == 4 and any("not in the dataset" in w for w in warns2)
    (tmp_path / "bad.json").write_text(json.dumps({"what": 1}))
    with pytest.raises(UserError, match="not a predictions file"):
        load_predictions(tmp_path / "bad.json", ds)


def test_detect_eval_with_a_detector_writes_run_folder(tmp_path):
    ds = _dataset(tmp_path)
    _, preds = _hand_case()
    calls = []

    def detector(image_bgr):  # any callable image -> Detections works; the names map classes by name
        calls.append(image_bgr.shape)
        if image_bgr.shape[:2] == (200, 200):
            d = preds[0]
            return Detections(d.boxes, d.scores, 1 - d.class_ids, ["b", "a"], {"inference": 2.0})
        return Detections.empty(["b", "a"], {"inference": 4.0})

    detector.names = ["b", "a"]
    r = detect_eval(ds, detector=detector, project=tmp_path / "runs", verbose=False, json=tmp_path / "m.json")
    assert sorted(calls) == [(100, 200, 3), (200, 200, 3)]
    assert r["mAP50"] == pytest.approx(278 / 303) and r["speed_ms"] == {"inference": 3.0}
    assert repr(r).startswith("Metrics(mAP50=0.9175") and len(repr(r)) < 500    # curves summarised, not dumped
    assert "pr_curve: 3 entries" in r._repr_html_() and "lines of text" in repr(r) and "AP @[" not in repr(r)
    run = Path(r["run_dir"])
    assert run == tmp_path / "runs" / "detect" / "exp"  # the default name, as for every task
    for f in ("metrics.json", "config.yaml", "per_class.csv", "per_class.md", "PR_curve.png",
              "F1_curve.png", "confusion_matrix.png", "confusion_matrix_normalized.png",
              "predictions.json", "confusion_matrix.csv"):
        assert (run / f).is_file(), f
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["mAP50_95"] == pytest.approx(81 / 101) and "pr_curve" not in metrics
    assert json.loads((tmp_path / "m.json").read_text())["mAP50"] == pytest.approx(278 / 303)
    assert (run / "per_class.csv").read_text().splitlines()[0] == "class,images,instances,P,R,mAP50,mAP50-95"
    # the saved COCO predictions evaluate to the same numbers; a second run gets exp2
    r2 = detect_eval(ds, predictions=run / "predictions.json", project=tmp_path / "runs", plots=False,
                     verbose=False)
    assert r2["mAP50_95"] == pytest.approx(r["mAP50_95"], abs=1e-4)
    assert Path(r2["run_dir"]).name == "exp2"


def test_detect_eval_needs_something_to_evaluate(tmp_path):
    ds = _dataset(tmp_path)
    with pytest.raises(UserError, match="nothing to evaluate"):
        detect_eval(ds, save=False, verbose=False)


def test_dataset_subset_keeps_ids(tmp_path):
    ds = _dataset(tmp_path)
    sub = ds.subset([1])
    assert len(sub) == 1 and sub.image_ids == [8] and sub.names == ds.names
    assert ds.subset(slice(0, 1)).image_ids == [7]


@pytest.mark.slow
@pytest.mark.realdata
def test_yolo_fastest_on_coco128_subset(shared_data):
    """The real detector end to end on 24 coco128 images (torch backend, 320 px)."""
    yolo = shared_data("yolo")
    ds = load_detection_data(shared_data("coco128") / "images" / "train2017", names=yolo / "coco.names",
                             warn=False).subset(slice(0, 24))
    from cnnlab.detect.detector import Detector

    det = Detector(cfg=yolo / "yolo-fastest-1.1-xl.cfg", weights=yolo / "yolo-fastest-1.1-xl.weights",
                   names=yolo / "coco.names", backend="torch", imgsz=320, conf=0.001, iou=0.6)
    r = detect_eval(ds, detector=det, save=False, verbose=False)
    assert 0.2 < r["mAP50"] <= 1.0 and 0.05 < r["mAP50_95"] < r["mAP50"]
    assert r["images"] == 24 and set(r["speed_ms"]) >= {"preprocess", "inference", "postprocess"}


def test_detect_eval_takes_the_model_names_when_the_data_has_none(tmp_path):
    ds = _dataset(tmp_path)
    unnamed = load_detection_data(tmp_path / "images", warn=False)
    assert unnamed.names_inferred and unnamed.names == ["0", "1"]
    _, preds = _hand_case()

    def detector(image_bgr):
        return preds[0] if image_bgr.shape[0] == 200 else Detections.empty(["a", "b"])

    detector.names = ["a", "b"]
    r = detect_eval(unnamed, detector=detector, save=False, verbose=False)
    assert set(r["per_class"]) == {"a", "b"} and r["mAP50"] == pytest.approx(278 / 303)
    assert unnamed.names == ["0", "1"] and ds.names == ["a", "b"]  # the caller's dataset is untouched


# ------------------------------------------------------------------------------------------ issue 12:
# a metric is never computed over invalid ground truth

def test_nan_ground_truth_is_refused_not_scored_perfect():
    """With a NaN box every detection "matched" it (NaN < IoU threshold is False): mAP50 was 1.0."""
    from cnnlab.errors import DataError

    nan_gt = [DetectionSample(Path("a.png"), 100, 80, np.array([[np.nan, 1, np.nan, 20]], np.float32), [0])]
    dets = {0: _det([[5, 5, 30, 30]], [0.9], [0], ["a"])}
    with pytest.raises(DataError, match=r"a\.png: a ground-truth box has a non-finite coordinate"):
        evaluate_detections(nan_gt, dets, ["a"])
    for boxes, classes, pattern in (([[5, 5, np.inf, 20]], [0], "non-finite"),
                                    ([[30, 5, 10, 20]], [0], "has no area"),
                                    ([[5, 5, 30, 20]], [3], "class id 3 is outside the 1 class names")):
        bad = [DetectionSample(Path("a.png"), 100, 80, np.array(boxes, np.float32), classes)]
        with pytest.raises(DataError, match=pattern):
            evaluate_detections(bad, dets, ["a"])


VOC_NAN = """<annotation><filename>1.png</filename><size><width>100</width><height>100</height></size>
<object><name>cat</name><bndbox><xmin>nan</xmin><ymin>1</ymin><xmax>nan</xmax><ymax>19</ymax></bndbox></object>
</annotation>"""


def _bad_datasets(root: Path) -> dict[str, tuple[Path, str]]:
    """One dataset per format with a NaN box: (dataset path, the expected one-line message)."""
    from PIL import Image

    for d in ("voc", "coco", "yolo/images", "yolo/labels"):
        (root / d).mkdir(parents=True)
    for d in ("voc", "coco", "yolo/images"):
        Image.new("RGB", (100, 100)).save(root / d / "1.png")
    (root / "voc" / "1.xml").write_text(VOC_NAN)
    doc = {"images": [{"id": 1, "file_name": "1.png", "width": 100, "height": 100}],
           "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [float("nan"), 1, float("nan"), 19]}],
           "categories": [{"id": 1, "name": "cat"}]}
    (root / "coco" / "instances.json").write_text(json.dumps(doc))   # json writes NaN
    (root / "yolo" / "labels" / "1.txt").write_text("0 0.5 0.5 0.2 0.2\n0 nan 0.5 0.2 0.2\n")
    return {"voc": (root / "voc", r"1\.xml: <object> 1 \('cat'\): bndbox needs finite numbers"),
            "coco": (root / "coco" / "instances.json", r"instances\.json: annotations\[0\]: bbox values must be "
                     "finite"),
            "yolo": (root / "yolo" / "images", r"1\.txt:2: not a finite number: 'nan'")}


@pytest.mark.parametrize("fmt", ["voc", "coco", "yolo"])
def test_detect_eval_cli_refuses_nan_ground_truth_before_any_run_folder(cli, tmp_path, fmt):
    import re

    data, pattern = _bad_datasets(tmp_path / "data")[fmt]
    (tmp_path / "dets.json").write_text(json.dumps(
        [{"image_id": 1, "category_id": 1, "bbox": [5, 5, 20, 20], "score": 0.9}]))
    (tmp_path / "names.txt").write_text("cat\n")
    code, out, err = cli("detect-eval", data, "--names", tmp_path / "names.txt", "--predictions", tmp_path / "dets.json",
                         "--project", tmp_path / "runs", "--json", tmp_path / "m.json")
    assert code == 2 and err.strip().count("\n") == 0 and "Traceback" not in err, err
    assert re.search(pattern, err), err
    assert "mAP" not in out
    assert not (tmp_path / "runs").exists() and not (tmp_path / "m.json").exists()


def test_detect_eval_with_model_names_refuses_labels_beyond_them(tmp_path):
    """No names in the data: the label ids are the model's; an id the model does not have is refused
    before the detector runs (its boxes would silently not count)."""
    from cnnlab.errors import DataError

    _dataset(tmp_path)
    (tmp_path / "labels" / "8.txt").write_text("5 0.5 0.5 0.2 0.2\n")
    unnamed = load_detection_data(tmp_path / "images", warn=False)
    calls = []

    def detector(image_bgr):
        calls.append(1)
        return Detections.empty(["a", "b"])

    detector.names = ["a", "b"]
    with pytest.raises(DataError, match=r"8\.png: ground-truth class id 5 is outside the 2 class names"):
        detect_eval(unnamed, detector=detector, project=tmp_path / "runs", verbose=False)
    assert not calls and not (tmp_path / "runs").exists()
