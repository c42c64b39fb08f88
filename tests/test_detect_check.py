"""Label layouts read by one reader (YOLO txt, VOC XML beside the images, LabelImg's train/ + val/ with a
data.yaml), loud errors instead of silent zeros, ``data check`` catching each seeded defect, truncated
JPEGs named in one warning, and order-independent k-means anchors."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnnlab.detect.check import check_detection_data
from cnnlab.detect.data import load_detection_data
from cnnlab.detect.labelimg import DEFECTS, corrupt_copy, voc_xml
from cnnlab.errors import DataError, UserError

NAMES = ["widget", "gadget"]


def labelimg_dataset(root: Path, n_train: int = 12, n_val: int = 4, seed: int = 0) -> tuple[Path, int]:
    """train/ and val/ folders of noisy JPEGs, each with its LabelImg XML beside it, and a data.yaml;
    returns (data.yaml, boxes written)."""
    rng = np.random.default_rng(seed)
    boxes = 0
    for split, n in (("train", n_train), ("val", n_val)):
        (root / split).mkdir(parents=True)
        for i in range(n):
            w, h = int(rng.integers(60, 90)), int(rng.integers(40, 70))
            img = root / split / f"{split}{i:03d}.jpg"
            Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(img, quality=90)
            objs = []
            for _ in range(int(rng.integers(1, 4))):
                x1, y1 = int(rng.integers(1, w // 2)), int(rng.integers(1, h // 2))
                objs.append((NAMES[int(rng.integers(2))], (x1, y1, x1 + int(rng.integers(5, w // 2)),
                                                           y1 + int(rng.integers(5, h // 2)))))
            img.with_suffix(".xml").write_text(voc_xml(img, w, h, objs))
            boxes += len(objs)
    yaml = root / "data.yaml"
    yaml.write_text("train: train\nval: val\nnames: [widget, gadget]\n")
    return yaml, boxes


def test_labelimg_layout_is_read_by_every_command_the_same(tmp_path):
    from cnnlab.config import DetectTrainConfig
    from cnnlab.detect.train.anchors import dataset_anchors
    from cnnlab.tasks.detect.data import load_train_val

    yaml, boxes = labelimg_dataset(tmp_path / "ds")
    train = load_detection_data(yaml, split="train", warn=False)
    val = load_detection_data(yaml, split="val", warn=False)
    assert train.format == val.format == "voc" and train.names == NAMES
    assert train.num_boxes + val.num_boxes == boxes and len(train) == 12 and len(val) == 4
    assert dataset_anchors(yaml, n=3, imgsz=64)["boxes"] == train.num_boxes          # cnnlab anchors
    tr, va = load_train_val(DetectTrainConfig.from_dict({"data": str(yaml)}), log=lambda m: None)  # detect-train
    assert (tr.num_boxes, va.num_boxes) == (train.num_boxes, val.num_boxes)
    # the folder holding train/ and val/, without naming the data.yaml, reads the same
    assert load_detection_data(tmp_path / "ds", split="val", warn=False).num_boxes == val.num_boxes
    # and the same boxes written as YOLO txt beside the images (CVAT's YOLO export) read the same
    from cnnlab.detect.data import yolo_label_text

    for s in val.samples:
        s.image_path.with_suffix(".xml").unlink()
        s.image_path.with_suffix(".txt").write_text(yolo_label_text(s.boxes, s.class_ids, s.width, s.height))
    again = load_detection_data(yaml, split="val", warn=False)
    assert again.format == "yolo"
    for a, b in zip(again.samples, val.samples, strict=True):
        np.testing.assert_allclose(a.boxes, b.boxes, atol=0.01)


def test_a_split_without_readable_labels_is_a_loud_error(tmp_path, cli):
    yaml, _ = labelimg_dataset(tmp_path / "ds", n_train=3, n_val=3)
    with open(yaml, "a") as f:
        f.write("layout: yolo\n")
    with pytest.raises(DataError, match=r"val split \(val\): 3 images, 0 YOLO .txt label files, 3 VOC .xml "
                                        r"files, but the layout is yolo"):
        load_detection_data(yaml, split="val")
    yaml.write_text(yaml.read_text().replace("layout: yolo", "layout: voc"))
    assert load_detection_data(yaml, split="val", warn=False).num_boxes > 0
    for xml in (tmp_path / "ds" / "val").glob("*.xml"):
        xml.unlink()
    with pytest.raises(DataError, match=r"3 images but no label files \(looked for YOLO .txt as .*val000.txt and "
                                        r"VOC .xml as .*val000.xml\)"):
        load_detection_data(yaml, split="val")
    code, _, err = cli("anchors", str(yaml), "--split", "val")
    assert code == 2 and "no label files" in err and err.count("\n") == 1
    code, _, err = cli("detect-train", str(yaml), "--imgsz", "64", "--epochs", "1", "--project", str(tmp_path))
    assert code == 2 and "val split (val): 3 images but no label files" in err
    # label files that are there but hold no box: detect-eval refuses to score them (no silent mAP 0)
    for img in (tmp_path / "ds" / "val").glob("*.jpg"):
        img.with_suffix(".txt").write_text("")
    yaml.write_text(yaml.read_text().replace("layout: voc", "layout: auto"))
    from cnnlab.detect.evaluate import detect_eval

    with pytest.raises(DataError, match="3 images but no labelled boxes"):
        detect_eval(yaml, predictions={}, save=False, verbose=False)


def test_data_check_catches_every_seeded_defect(tmp_path, cli):
    yaml, boxes = labelimg_dataset(tmp_path / "clean")
    clean = check_detection_data(yaml)
    assert clean.ok and not clean.issues, clean.issues
    assert sum(c["boxes"] for c in clean.counts.values()) == boxes
    assert clean.layouts == {"train": "voc", "val": "voc"}
    planted = corrupt_copy(tmp_path / "clean", tmp_path / "broken", seed=3)
    assert sorted(d["defect"] for d in planted) == sorted(DEFECTS)
    assert len({d["file"] for d in planted}) == len(planted)          # one defect per file
    report = check_detection_data(tmp_path / "broken" / "data.yaml")
    for d in planted:
        hits = [i for i in report.issues if i.kind == d["kind"] and i.file == d["file"]]
        assert len(hits) == 1, (d, report.issues)
    assert len(report.issues) == len(planted)                         # and nothing else
    assert not report.ok
    code, out, err = cli("data", "check", str(tmp_path / "broken" / "data.yaml"), "--json", str(tmp_path / "r.json"))
    assert code == 1, err
    assert "truncated JPEG" in out and "unknown class" in out and "boxes per class" in out
    saved = json.loads((tmp_path / "r.json").read_text())
    assert saved["errors"] == len(report.errors) and len(saved["issues"]) == len(planted)
    code, out, _ = cli("data", "check", str(yaml))
    assert code == 0 and "ok, 0 warning(s)" in out
    code, _, err = cli("data", "check", str(tmp_path / "nope.yaml"))
    assert code == 2 and "dataset not found" in err
    code, _, err = cli("data", "check", str(yaml), "--bogus")
    assert code == 2


def test_data_check_yolo_layout_defects(tmp_path):
    root = tmp_path / "y"
    for sub in ("images/train", "labels/train"):
        (root / sub).mkdir(parents=True)
    rng = np.random.default_rng(0)
    lines = {
        "ok": "0 0.5 0.5 0.2 0.2\n1 0.3 0.3 0.1 0.1\n",
        "class": "5 0.5 0.5 0.2 0.2\n",
        "range": "0 1.5 0.5 0.2 0.2\n",
        "nan": "0 nan 0.5 0.2 0.2\n",
        "area": "0 0.5 0.5 0 0.2\n",
        "syntax": "0 0.5 0.5\n",
        "duplicate": "1 0.5 0.5 0.2 0.2\n1 0.5 0.5 0.2 0.2\n",
    }
    for stem, text in lines.items():
        Image.fromarray(rng.integers(0, 255, (32, 40, 3), dtype=np.uint8)).save(root / "images/train" / f"{stem}.jpg")
        (root / "labels/train" / f"{stem}.txt").write_text(text)
    Image.fromarray(rng.integers(0, 255, (32, 40, 3), dtype=np.uint8)).save(root / "images/train/unlabelled.jpg")
    (root / "labels/train/orphan.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    (root / "labels/train/classes.txt").write_text("widget\nthing\n")
    (root / "data.yaml").write_text("path: .\ntrain: images/train\nnames: [widget, gadget]\n")
    report = check_detection_data(root / "data.yaml")
    kinds = {(i.kind, Path(i.file).stem if i.file else "") for i in report.issues}
    for kind in ("class", "range", "nan", "area", "syntax", "duplicate"):
        assert (kind, kind) in kinds, (kind, report.issues)
    assert ("unlabelled", "unlabelled") in kinds and ("orphan", "orphan") in kinds and ("names", "classes") in kinds
    assert {i.kind for i in report.errors} == {"class", "range", "nan", "area", "syntax"}
    counts = report.counts["train"]
    assert counts["per_class"] == {"widget": 1, "gadget": 2} and counts["images"] == 8   # the duplicate read once


def test_truncated_jpeg_is_decoded_with_one_warning_naming_it(tmp_path):
    from cnnlab.detect.images import ImageWarning, image_problem, read_image

    img = tmp_path / "cut.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(img)
    assert image_problem(img) is None
    data = img.read_bytes()
    img.write_bytes(data[: len(data) * 2 // 3])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = read_image(img)
    assert out.shape == (48, 64, 3) and out.dtype == np.uint8
    assert len(caught) == 1 and caught[0].category is ImageWarning and str(img) in str(caught[0].message)
    assert "truncated JPEG" in image_problem(img)
    img.write_bytes(data[: len(data) // 2] + bytes(64) + data[len(data) // 2 + 64:])    # zeros in the data
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = read_image(img)
    assert out.shape == (48, 64, 3)
    assert len(caught) == 1 and str(img) in str(caught[0].message) and "damaged JPEG data (libjpeg: Corrupt JPEG" \
        in str(caught[0].message)
    assert "damaged JPEG data" in image_problem(img)
    img.write_text("not an image")
    with pytest.raises(UserError, match="cut.jpg"):
        read_image(img)


def test_cli_warnings_are_one_line(tmp_path, cli):
    from cnnlab.cli.main import _warning_line

    line = _warning_line(UserWarning("x.jpg: truncated JPEG"), UserWarning, "f.py", 3)
    assert line == "warning: x.jpg: truncated JPEG\n"


def test_kmeans_anchors_do_not_depend_on_file_order():
    from cnnlab.detect.train.anchors import kmeans_anchors

    wh = np.random.default_rng(0).uniform(4, 200, (300, 2))
    a = kmeans_anchors(wh, 6, seed=0)
    for k in range(3):
        perm = np.random.default_rng(k + 1).permutation(len(wh))
        np.testing.assert_array_equal(kmeans_anchors(wh[perm], 6, seed=0), a)


@pytest.mark.realdata
def test_coco128_labelimg_subset_and_its_broken_copy(shared_data, tmp_path):
    from cnnlab.detect.labelimg import labelimg_subset

    coco = shared_data("coco128")
    info = labelimg_subset(coco, tmp_path / "person", "person", seed=0)
    assert info["train"] + info["val"] == 61 and info["val"] == 12      # the coco128 images with a person
    yaml = Path(info["data_yaml"])
    train = load_detection_data(yaml, split="train", warn=False)
    assert train.format == "voc" and train.names == ["person"] and train.num_boxes == info["boxes"]["train"]
    assert all(s.image_path.parent == yaml.parent / "train" for s in train.samples)
    assert check_detection_data(yaml).ok
    planted = corrupt_copy(tmp_path / "person", tmp_path / "broken", seed=0)
    report = check_detection_data(tmp_path / "broken" / "data.yaml")
    for d in planted:
        assert any(i.kind == d["kind"] and i.file == d["file"] for i in report.issues), d
    clear = labelimg_subset(coco, tmp_path / "clear", "person", seed=0, min_size=32)
    assert clear["train"] + clear["val"] == 36          # the images whose every person is >= 32 px a side
    for split in ("train", "val"):
        ds = load_detection_data(Path(clear["data_yaml"]), split=split, warn=False)
        sides = [min(b[2] - b[0], b[3] - b[1]) for s in ds.samples for b in s.boxes]
        assert len(sides) == clear["boxes"][split] and min(sides) >= 31   # LabelImg's 1-based pixels
    assert "every box >= 32 px" in Path(clear["data_yaml"]).read_text()


def test_detect_train_on_labelimg_data_piped_progress_and_a_truncated_jpeg(tmp_path, monkeypatch):
    """detect-train reads the LabelImg layout, prints batch lines for training and validation when its
    output is a pipe, names a truncated JPEG in one warning, and shows a loss that its parts add up to."""
    import contextlib
    import io
    import re

    import cnnlab
    from cnnlab.detect.images import ImageWarning
    from cnnlab.engine import progress

    yaml, _ = labelimg_dataset(tmp_path / "ds", n_train=6, n_val=2)
    cut = tmp_path / "ds" / "train" / "train002.jpg"
    cut.write_bytes(cut.read_bytes()[:-200])
    monkeypatch.setattr(progress, "interactive", lambda: False)
    monkeypatch.setenv("CNNLAB_PROGRESS_SECONDS", "0")
    out = io.StringIO()
    with contextlib.redirect_stdout(out), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = cnnlab.train_detector(yaml, model="yolov3-tiny", width_mult=0.125, imgsz=64, epochs=1, batch=4,
                                    optimizer="adam", lr=1e-3, verbose=1, plots=False, mosaic=0.0,
                                    project=tmp_path, name="t")
    text = out.getvalue()
    assert "epoch 1/1: 1/2 batches" in text and "epoch 1/1: 2/2 batches" in text
    assert "validation 1/1: 1/1 batches" in text
    named = [w for w in caught if w.category is ImageWarning]
    assert len(named) == 1 and str(cut) in str(named[0].message)
    m = re.search(r"loss ([\d.]+) = box ([\d.]+) \+ obj ([\d.]+) \+ cls ([\d.]+)", text)
    assert m, text
    total, *parts = (float(v) for v in m.groups())
    assert total == pytest.approx(sum(parts), abs=2e-4)
    assert res.history[0]["loss"] == pytest.approx(sum(res.history[0][f"{k}_loss"] for k in ("box", "obj", "cls")))


def test_data_check_folder_without_yaml_and_voc_annotations_layout(tmp_path):
    yaml, boxes = labelimg_dataset(tmp_path / "ds")
    yaml.unlink()
    report = check_detection_data(tmp_path / "ds")           # train/ and val/, names from the XML files
    assert report.ok and set(report.counts) == {"train", "val"} and sorted(report.names) == sorted(NAMES)
    assert sum(c["boxes"] for c in report.counts.values()) == boxes
    voc = tmp_path / "voc"
    (voc / "Annotations").mkdir(parents=True)
    (voc / "JPEGImages").mkdir()
    for xml in sorted((tmp_path / "ds" / "train").glob("*.xml"))[:4]:
        (voc / "JPEGImages" / xml.with_suffix(".jpg").name).write_bytes(xml.with_suffix(".jpg").read_bytes())
        (voc / "Annotations" / xml.name).write_text(xml.read_text())
    bad = sorted((voc / "Annotations").glob("*.xml"))
    from cnnlab.detect.labelimg import _set_tag

    bad[0].write_text(_set_tag(bad[0].read_text(), "xmin", "nan"))
    bad[1].write_text(_set_tag(bad[1].read_text(), "xmax", "-5"))
    report = check_detection_data(voc)
    kinds = {(i.kind, Path(i.file).name) for i in report.errors}
    assert ("nan", bad[0].name) in kinds and ("area", bad[1].name) in kinds, report.issues
    assert report.layouts == {"voc": "voc"}


def test_one_data_yaml_reaches_coco_json_and_voc_annotations_splits(tmp_path):
    """train as a COCO json, val as a VOC Annotations/ + JPEGImages/ folder, test as LabelImg XML beside
    the images: one data.yaml, each split's layout found by itself, the same boxes."""
    import shutil

    from cnnlab.detect.data import to_coco_json

    yaml, _ = labelimg_dataset(tmp_path / "ds", n_train=5, n_val=3)
    root = tmp_path / "ds"
    train = load_detection_data(yaml, split="train", warn=False)
    val = load_detection_data(yaml, split="val", warn=False)
    to_coco_json(train, path=root / "train" / "instances_train.json")
    (root / "voc" / "Annotations").mkdir(parents=True)
    (root / "voc" / "JPEGImages").mkdir()
    for s in val.samples:
        shutil.copy(s.image_path, root / "voc" / "JPEGImages")
        shutil.copy(s.image_path.with_suffix(".xml"), root / "voc" / "Annotations")
    shutil.copytree(root / "val", root / "test")
    for xml in (root / "train").glob("*.xml"):
        xml.unlink()
    yaml.write_text("train: train/instances_train.json\nval: voc\ntest: test\nnames: [widget, gadget]\n")
    got = {split: load_detection_data(yaml, split=split, warn=False) for split in ("train", "val", "test")}
    assert {k: v.format for k, v in got.items()} == {"train": "coco", "val": "voc", "test": "voc"}
    assert got["train"].num_boxes == train.num_boxes
    assert got["val"].num_boxes == got["test"].num_boxes == val.num_boxes
    report = check_detection_data(yaml)
    assert report.ok and report.layouts == {"train": "coco", "val": "voc", "test": "voc"}, report.issues


def test_time_budget_counts_validation_and_stops_before_an_epoch_that_would_not_fit(tmp_path, cli):
    from types import SimpleNamespace

    from cnnlab.engine.loop import Engine

    logs: list[str] = []
    eng = SimpleNamespace(history=[{"epoch_time": 50.0, "val_time": 10.0}] * 2, epoch=2, log=logs.append)
    assert not Engine.budget_spent(eng, 3 * 60 / 3600)         # 2 min used, 1 min per epoch: a third fits
    assert not logs
    assert Engine.budget_spent(eng, 2.9 * 60 / 3600)           # 2 + 1 > 2.9 min: stop now
    assert "2.0 min used after epoch 2, the next epoch (~1.0 min) would not fit" in logs[0]
    eng.history = [{"epoch_time": 50.0}] * 2                  # training only: 1.67 + 0.83 <= 2.9 min
    assert not Engine.budget_spent(eng, 2.9 * 60 / 3600)
    yaml, _ = labelimg_dataset(tmp_path / "ds", n_train=4, n_val=2)
    code, out, err = cli("detect-train", str(yaml), "--width-mult", "0.125", "--imgsz", "64", "--epochs", "3",
                         "--batch", "4", "--time", "1e-9", "--project", str(tmp_path), "--name", "t", "--quiet",
                         "--no-plots")
    assert code == 0, err
    assert "would not fit: stopping" in out
    history = json.loads((tmp_path / "detect" / "t" / "metrics.json").read_text())
    assert history["epochs_done"] == 1
