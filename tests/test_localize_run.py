"""Classification + localisation on the engine: a tiny synthetic run and its run folder, exact resume after a
mid-epoch kill, detection data reduced to one object per image, evaluate / predict (drawn box) / ONNX
export, and the run in ``cnnlab report`` and ``compare``."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

from _kill import KillMidEpoch
from cnnlab.errors import UserError
from cnnlab.io import torch_load_safe
from cnnlab.tasks.localize.infer import (
    evaluate_localizer,
    export_localizer,
    load_localizer,
    predict_localizer,
)
from cnnlab.tasks.localize.run import train_localizer

TINY = {"data": "synthetic", "synthetic_train": 96, "synthetic_val": 32, "imgsz": 32, "batch": 32, "epochs": 2,
        "verbose": 0, "threads": 1, "features": 64}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One tiny finished run shared by the read-only tests."""
    root = tmp_path_factory.mktemp("loc")
    return train_localizer(TINY, project=str(root / "runs"))


def test_tiny_synthetic_run_writes_a_complete_run_folder(run):
    d = run.run_dir
    assert d.parent.name == "localize"
    for f in ("config.yaml", "metrics.json", "history.csv", "curves.png", "val_predictions.png",
              "weights/best.pt", "weights/last.pt"):
        assert (d / f).is_file(), f
    m = json.loads((d / "metrics.json").read_text())
    for k in ("val_accuracy", "val_iou", "val_correct"):
        assert 0.0 <= m[k] <= 1.0, k
    assert m["val_correct"] <= m["val_accuracy"] and m["epochs"] == 2
    ckpt = torch_load_safe(d / "weights/last.pt")
    assert ckpt["format"] == "cnnlab.localize" and ckpt["classes"] == ["circle", "square", "triangle"]
    assert len(ckpt["history"]) == 2 and {"loss", "iou", "correct", "giou_loss"} <= set(ckpt["history"][0])


def test_evaluate_reproduces_the_runs_validation_metrics(run):
    r = evaluate_localizer(run.run_dir)
    assert r["images"] == 32
    for k in ("accuracy", "iou", "correct", "loss"):
        assert r[k] == pytest.approx(run.metrics[f"val_{k}"], abs=1e-5), k


def test_metrics_follow_their_definitions():
    """top-1, IoU and correct written out on two hand-made predictions."""
    from cnnlab.tasks.localize.metrics import hits

    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    box = torch.tensor([[0.5, 0.5, 0.4, 0.4], [0.5, 0.5, 0.2, 0.2]])      # cx, cy, w, h
    labels = torch.tensor([0, 0])
    target = torch.tensor([[0.3, 0.3, 0.7, 0.7], [0.4, 0.4, 0.6, 0.6]])  # xyxy
    h = hits(logits, box, labels, target)
    assert float(h["accuracy"]) == 1.0          # the second prediction has the wrong class
    assert float(h["iou"]) == pytest.approx(2.0)  # both boxes are exact
    assert float(h["correct"]) == 1.0


def test_resume_after_a_mid_epoch_kill_is_bit_exact(tmp_path):
    opts = {**TINY, "epochs": 3, "ema": 0.9, "ema_warmup": 3, "warmup_epochs": 1, "plots": False,
            "project": str(tmp_path / "runs")}
    full = train_localizer(opts, name="full")
    with pytest.raises(KeyboardInterrupt):
        train_localizer(opts, name="cut", callbacks=[KillMidEpoch(2, 1)])
    assert torch_load_safe(tmp_path / "runs/localize/cut/weights/last.pt")["epoch"] == 1
    resumed = train_localizer(resume=tmp_path / "runs/localize/cut")
    a = torch_load_safe(full.run_dir / "weights/last.pt")
    b = torch_load_safe(resumed.run_dir / "weights/last.pt")
    for key in ("model", "ema"):
        assert all(torch.equal(a[key][k], b[key][k]) for k in a[key]), key
    assert [h["loss"] for h in a["history"]] == [h["loss"] for h in b["history"]]
    assert full.metrics["val_iou"] == resumed.metrics["val_iou"]
    with pytest.raises(UserError, match="already completed 3 of 3 epochs"):
        train_localizer(resume=full.run_dir)


def _yolo_folder(tmp_path):
    """Four images: one box, two boxes (the second larger), no box, one box."""
    img_dir, lab_dir = tmp_path / "images", tmp_path / "labels"
    img_dir.mkdir()
    lab_dir.mkdir()
    labels = ["0 0.5 0.5 0.2 0.2", "0 0.2 0.2 0.1 0.1\n1 0.6 0.6 0.5 0.4", "", "1 0.3 0.7 0.2 0.4"]
    for i, text in enumerate(labels):
        cv2.imwrite(str(img_dir / f"{i}.png"), np.full((40, 80, 3), 60 * i, np.uint8))
        (lab_dir / f"{i}.txt").write_text(text + "\n" if text else "")
    (lab_dir / "classes.txt").write_text("cat\ndog\n")  # LabelImg keeps the names there
    return img_dir


@pytest.mark.parametrize("objects, labels, first_box", [
    ("largest", [0, 1, 1], [0.4, 0.4, 0.6, 0.6]), ("single", [0, 1], [0.4, 0.4, 0.6, 0.6])])
def test_detection_data_is_reduced_to_one_object_per_image(tmp_path, objects, labels, first_box):
    from cnnlab.tasks.localize.data import from_detection

    d = from_detection(str(_yolo_folder(tmp_path)), "train", 32, objects, names=["cat", "dog"])
    assert d.labels.tolist() == labels and d.images.shape[1:] == (3, 32, 32)
    np.testing.assert_allclose(d.boxes[0].numpy(), first_box, atol=1e-6)
    if objects == "largest":  # the two-box image keeps its larger (dog) box, in fractions of the image
        np.testing.assert_allclose(d.boxes[1].numpy(), [0.35, 0.4, 0.85, 0.8], atol=1e-6)


def test_training_on_a_yolo_folder_holds_out_validation_images(tmp_path):
    img_dir = _yolo_folder(tmp_path)
    r = train_localizer({**TINY, "data": str(img_dir), "epochs": 1, "val_fraction": 0.34, "plots": False},
                        project=str(tmp_path / "runs"))
    ckpt = torch_load_safe(r.run_dir / "weights/best.pt")
    assert ckpt["classes"] == ["cat", "dog"]
    assert r.metrics["val_accuracy"] in (0.0, 1.0)  # one held-out image
    with pytest.raises(UserError, match="no image of the train split has exactly one box"):
        (tmp_path / "labels/0.txt").write_text("")
        (tmp_path / "labels/3.txt").write_text("")
        train_localizer({**TINY, "data": str(img_dir), "objects": "single"}, project=str(tmp_path / "runs"))


def test_predict_draws_the_box_and_returns_pixels(run, tmp_path):
    from cnnlab.tasks.localize.data import synthetic_data

    data = synthetic_data(2, 48, seed=7)
    paths = []
    for i, img in enumerate(data.images):
        p = tmp_path / f"s{i}.png"
        cv2.imwrite(str(p), np.ascontiguousarray(img.numpy().transpose(1, 2, 0)[:, :, ::-1]))
        paths.append(p)
    out = tmp_path / "drawn"
    res = predict_localizer(run.run_dir, paths, output=out)
    assert [r["image"] for r in res] == ["s0.png", "s1.png"]
    for r, p in zip(res, paths, strict=True):
        x0, y0, x1, y1 = r["box"]
        assert 0 <= x0 <= x1 <= 48 and 0 <= y0 <= y1 <= 48 and r["class"] in ("circle", "square", "triangle")
        drawn = cv2.imread(str(out / (p.stem + ".jpg")))
        assert drawn.shape == (48, 48, 3)
        assert np.abs(drawn.astype(int) - cv2.imread(str(p)).astype(int)).max() > 100  # a box was drawn
    with pytest.raises(UserError, match="cannot read image"):
        predict_localizer(run.run_dir, [tmp_path / "missing.png"])


def test_onnx_export_matches_pytorch(run, tmp_path):
    import onnxruntime as ort

    r = export_localizer(run.run_dir, tmp_path / "loc.onnx")
    assert r["max_abs_diff"] < 1e-4
    sess = ort.InferenceSession(str(tmp_path / "loc.onnx"), providers=["CPUExecutionProvider"])
    meta = sess.get_modelmeta().custom_metadata_map
    assert json.loads(meta["classes"]) == ["circle", "square", "triangle"] and meta["cnnlab_task"] == "localize"
    loc = load_localizer(run.run_dir)
    x = torch.randn(3, 3, 32, 32)
    logits, boxes = sess.run(None, {"images": x.numpy()})
    with torch.no_grad():
        ref_logits, ref_box = loc.model(x)
    np.testing.assert_allclose(logits, ref_logits.numpy(), atol=1e-4)
    from cnnlab.tasks.localize.model import boxes_xyxy

    np.testing.assert_allclose(boxes, boxes_xyxy(ref_box).numpy(), atol=1e-5)


def test_foreign_sources_are_one_line_errors(tmp_path):
    torch.save({"format": "cnnlab.classify"}, tmp_path / "c.pt")
    with pytest.raises(UserError, match="not a localize checkpoint"):
        load_localizer(tmp_path / "c.pt")
    with pytest.raises(UserError, match="model not found"):
        load_localizer(tmp_path / "nothing")
    with pytest.raises(UserError, match="objects must be one of largest, single"):
        train_localizer({**TINY, "objects": "all"})
    with pytest.raises(UserError, match="dataset not found"):
        train_localizer({**TINY, "data": str(tmp_path / "none.yaml")})


def test_run_appears_in_report(run, tmp_path):
    from cnnlab.experiments.report import report

    r = report([run.run_dir], output=tmp_path / "rep", samples=0)
    md = r.markdown.read_text()
    assert "localisation: locnet on synthetic" in md and "| val_iou |" in md and "| val_correct |" in md
    assert "Validation predictions" in md and (tmp_path / "rep" / "assets").is_dir()


def test_compare_runs_localize_entries(tmp_path):
    from cnnlab.experiments.compare import compare

    spec = {"task": "localize", "shared": {**TINY, "epochs": 1, "plots": False},
            "entries": [{"name": "small", "features": 32}, {"name": "wide", "features": 64}]}
    res = compare(spec, project=str(tmp_path / "runs"), name="loc", log=None)
    assert [r["status"] for r in res.rows] == ["done", "done"]
    assert all(0 <= r["val_iou"] <= 1 and 0 <= r["val_correct"] <= 1 for r in res.rows)
    assert (res.run_dir / "localize" / "small" / "weights" / "best.pt").is_file()
    table = (res.run_dir / "comparison.md").read_text()
    assert "val_iou" in table and "val_correct" in table and "* = highest val_correct" in table
    again = compare(spec, project=str(tmp_path / "runs"), name="loc", log=None)
    assert again.counts["skipped"] == 2
    with pytest.raises(UserError, match="unknown task .detect3d."):
        compare({**spec, "task": "detect3d"}, project=str(tmp_path / "runs"))
