"""Detection datasets: YOLO txt, COCO JSON, Pascal VOC XML -> one internal format; broken files rejected."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cnnlab.detect.data import (
    VOC_NAMES,
    img2label_path,
    load_detection_data,
    load_detection_dataset,
    to_coco_json,
    write_yolo_labels,
)
from cnnlab.errors import DataError, UserError


def _image(path: Path, w: int = 64, h: int = 48) -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (w, h), (120, 30, 200)).save(path)
    return path


def _yolo_tree(root: Path) -> Path:
    """images/{a,b,c}.png (100x50) with labels for a and b, an orphan label z.txt."""
    for n in "abc":
        _image(root / "images" / f"{n}.png", 100, 50)
    lab = root / "labels"
    lab.mkdir(parents=True)
    (lab / "a.txt").write_text("0 0.5 0.5 0.2 0.4\n1 0.25 0.5 0.5 1.0\n")
    (lab / "b.txt").write_text("1 0.1 0.1 0.2 0.2\n\n1 0.1 0.1 0.2 0.2\n")  # duplicate line
    (lab / "z.txt").write_text("0 0.5 0.5 0.1 0.1\n")  # no image
    return root


def _one_line_error(excinfo) -> str:
    msg = str(excinfo.value)
    assert "\n" not in msg and msg
    return msg


# ------------------------------------------------------------------------------------------ YOLO

def test_yolo_dir_parses_boxes_negatives_and_orphans(tmp_path):
    root = _yolo_tree(tmp_path / "ds")
    with pytest.warns(UserWarning, match="1 label file"):
        ds = load_detection_data(root / "images", names=["cat", "dog"])
    assert [s.image_path.name for s in ds.samples] == ["a.png", "b.png", "c.png"]
    a, b, c = ds.samples
    assert (a.width, a.height) == (100, 50)
    np.testing.assert_allclose(a.boxes, [[40, 15, 60, 35], [0, 0, 50, 50]], atol=1e-4)
    assert a.class_ids.tolist() == [0, 1]
    assert len(b) == 1  # the duplicate line is removed (with a warning)
    assert len(c) == 0  # an image without a label file is a negative
    assert any("duplicate" in w for w in ds.warnings)
    assert any("z.txt" in w for w in ds.warnings)
    assert ds.num_boxes == 3 and ds.instances_per_class().tolist() == [1, 2]


def test_data_yaml_names_dict_and_splits(tmp_path):
    root = _yolo_tree(tmp_path / "ds")
    (root / "data.yaml").write_text(
        "path: .\ntrain: images\nval: images\nnames:\n  0: cat\n  1: dog\n")
    samples, names = load_detection_dataset(root / "data.yaml", warn=False)
    assert names == ["cat", "dog"] and len(samples) == 3
    # a folder holding a data.yaml is read through it
    samples2, _ = load_detection_dataset(root, warn=False)
    assert len(samples2) == 3
    with pytest.raises(DataError, match="no 'test' split"):
        load_detection_dataset(root / "data.yaml", split="test")


def test_data_yaml_image_list_txt(tmp_path):
    root = _yolo_tree(tmp_path / "ds")
    (root / "val.txt").write_text("./images/a.png\n./images/c.png\n")
    (root / "data.yaml").write_text("path: .\nval: val.txt\nnames: [cat, dog]\n")
    samples, _ = load_detection_dataset(root / "data.yaml", warn=False)
    assert [s.image_path.name for s in samples] == ["a.png", "c.png"]


def test_yolo_polygon_line_becomes_its_box(tmp_path):
    _image(tmp_path / "images" / "p.png", 100, 100)
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "p.txt").write_text("0 0.1 0.2 0.5 0.2 0.3 0.6\n")
    samples, _ = load_detection_dataset(tmp_path / "images", names=["x"], warn=False)
    np.testing.assert_allclose(samples[0].boxes, [[10, 20, 50, 60]], atol=1e-4)


def test_labels_beside_images_and_names_file(tmp_path):
    _image(tmp_path / "pics" / "a.jpg")
    (tmp_path / "pics" / "a.txt").write_text("2 0.5 0.5 1 1\n")
    (tmp_path / "my.names").write_text("a\nb\nc\n")
    samples, names = load_detection_dataset(tmp_path / "pics", names=tmp_path / "my.names", warn=False)
    assert names == ["a", "b", "c"] and samples[0].class_ids.tolist() == [2]
    assert img2label_path(Path("/d/images/x/y.jpg")) == Path("/d/labels/x/y.txt")


def test_names_inferred_when_missing(tmp_path):
    _yolo_tree(tmp_path)
    with pytest.warns(UserWarning):
        ds = load_detection_data(tmp_path / "images")
    assert ds.names == ["0", "1"] and ds.names_inferred


@pytest.mark.parametrize("line, pattern", [
    ("0 0.5 0.5 0.2", r"a\.txt:2: expected 5 fields .*got 4"),
    ("0 0.5 0.5 0.2 0.2 0.9", r"a\.txt:2: expected 5 fields .*got 6"),
    ("7 0.5 0.5 0.2 0.2", r"a\.txt:2: class id 7 out of range \(dataset has 2 names"),
    ("0 0.5 1.2 0.2 0.2", r"a\.txt:2: coordinate 1.2 outside \[0, 1\]"),
    ("0 0.5 -0.5 0.2 0.2", r"a\.txt:2: coordinate -0.5 outside"),
    ("0 0.5 abc 0.2 0.2", r"a\.txt:2: not a number: 'abc'"),
    ("1.5 0.5 0.5 0.2 0.2", r"a\.txt:2: class id must be a non-negative integer"),
])
def test_broken_yolo_label_rejected_with_file_and_line(tmp_path, line, pattern):
    _image(tmp_path / "images" / "a.png")
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "a.txt").write_text(f"0 0.5 0.5 0.2 0.2\n{line}\n")
    with pytest.raises(DataError, match=pattern) as e:
        load_detection_dataset(tmp_path / "images", names=["a", "b"])
    _one_line_error(e)


def test_small_overshoot_is_tolerated_and_clipped(tmp_path):
    _image(tmp_path / "images" / "a.png", 100, 100)
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "a.txt").write_text("0 0.5 0.5 1.005 1.0\n")
    samples, _ = load_detection_dataset(tmp_path / "images", names=["a"], warn=False)
    np.testing.assert_allclose(samples[0].boxes, [[0, 0, 100, 100]], atol=1e-4)


def test_missing_and_unreadable_images(tmp_path):
    _yolo_tree(tmp_path)
    (tmp_path / "list.txt").write_text("images/a.png\nimages/nope.png\n")
    with pytest.raises(DataError, match=r"missing image: .*nope\.png") as e:
        load_detection_dataset(tmp_path / "list.txt", names=["a", "b"])
    _one_line_error(e)
    (tmp_path / "images" / "bad.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match=r"unreadable image: .*bad\.png"):
        load_detection_dataset(tmp_path / "images", names=["a", "b"])


def test_missing_dataset_and_empty_folder(tmp_path):
    with pytest.raises(UserError, match="dataset not found"):
        load_detection_dataset(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images found"):
        load_detection_dataset(tmp_path / "empty")


# ------------------------------------------------------------------------------------------ COCO

def _coco(tmp_path: Path) -> Path:
    _image(tmp_path / "images" / "val2017" / "1.jpg", 80, 60)
    _image(tmp_path / "images" / "val2017" / "2.jpg", 80, 60)
    doc = {
        "images": [{"id": 11, "file_name": "1.jpg", "width": 80, "height": 60},
                   {"id": 12, "file_name": "2.jpg"}],
        "annotations": [
            {"id": 1, "image_id": 11, "category_id": 3, "bbox": [10, 5, 20, 30], "iscrowd": 0},
            {"id": 2, "image_id": 11, "category_id": 1, "bbox": [0, 0, 8, 8]},
            {"id": 3, "image_id": 12, "category_id": 3, "bbox": [1, 1, 70, 50], "iscrowd": 1},
        ],
        "categories": [{"id": 3, "name": "car"}, {"id": 1, "name": "person"}],
    }
    ann = tmp_path / "annotations"
    ann.mkdir()
    (ann / "instances_val2017.json").write_text(json.dumps(doc))
    return ann / "instances_val2017.json"


def test_coco_json_maps_category_ids_and_finds_images(tmp_path):
    path = _coco(tmp_path)
    ds = load_detection_data(path, warn=False)
    assert ds.names == ["person", "car"] and ds.category_ids == [1, 3]
    assert ds.image_ids == [11, 12]
    s1, s2 = ds.samples
    assert (s2.width, s2.height) == (80, 60)  # size read from the file when missing
    np.testing.assert_allclose(s1.boxes, [[10, 5, 30, 35], [0, 0, 8, 8]])
    assert s1.class_ids.tolist() == [1, 0]
    assert len(s2) == 0  # the crowd annotation is skipped
    # the dataset folder with annotations/instances_val2017.json is recognised too
    assert len(load_detection_data(tmp_path, warn=False)) == 2
    # names given: categories map by name
    ds2 = load_detection_data(path, names=["car", "truck", "person"], warn=False)
    assert ds2.samples[0].class_ids.tolist() == [0, 2]


@pytest.mark.parametrize("mutate, pattern", [
    (lambda d: d["annotations"][0].update(bbox=[1, 2, 3]), r"annotations\[0\]: bbox must be 4 numbers"),
    (lambda d: d["annotations"][1].update(image_id=99), r"annotations\[1\]: image_id 99 is not in"),
    (lambda d: d["annotations"][1].update(category_id=7), r"annotations\[1\]: category_id 7"),
    (lambda d: d.pop("categories"), r"no 'categories' list"),
    (lambda d: d["images"][1].update(file_name="gone.jpg"), r"missing image: .*gone\.jpg"),
])
def test_broken_coco_rejected(tmp_path, mutate, pattern):
    path = _coco(tmp_path)
    doc = json.loads(path.read_text())
    mutate(doc)
    path.write_text(json.dumps(doc))
    with pytest.raises(DataError, match=pattern) as e:
        load_detection_dataset(path)
    _one_line_error(e)


def test_malformed_json_rejected(tmp_path):
    path = _coco(tmp_path)
    path.write_text('{"images": [\n  {"id": 1,,}\n]}')
    with pytest.raises(UserError, match=r"instances_val2017\.json: invalid JSON .*line 2") as e:
        load_detection_dataset(path)
    _one_line_error(e)


# ------------------------------------------------------------------------------------------ VOC

VOC_XML = """<annotation>
  <filename>{name}.jpg</filename>
  <size><width>100</width><height>80</height><depth>3</depth></size>
  <object><name>dog</name><difficult>0</difficult>
    <bndbox><xmin>10</xmin><ymin>20</ymin><xmax>50</xmax><ymax>60</ymax></bndbox></object>
  <object><name>person</name><difficult>1</difficult>
    <bndbox><xmin>1</xmin><ymin>2</ymin><xmax>30</xmax><ymax>40</ymax></bndbox></object>
</annotation>
"""


def _voc(root: Path) -> Path:
    (root / "Annotations").mkdir(parents=True)
    (root / "ImageSets" / "Main").mkdir(parents=True)
    for n in ("000001", "000002"):
        _image(root / "JPEGImages" / f"{n}.jpg", 100, 80)
        (root / "Annotations" / f"{n}.xml").write_text(VOC_XML.format(name=n))
    (root / "ImageSets" / "Main" / "val.txt").write_text("000002\n")
    (root / "ImageSets" / "Main" / "train.txt").write_text("000001\n000002\n")
    return root


def test_voc_folder_split_difficult_and_names(tmp_path):
    root = _voc(tmp_path / "VOC2007")
    samples, names = load_detection_dataset(root)
    assert names == VOC_NAMES
    assert [s.image_path.name for s in samples] == ["000002.jpg"]
    np.testing.assert_allclose(samples[0].boxes, [[10, 20, 50, 60]])
    assert samples[0].class_ids.tolist() == [VOC_NAMES.index("dog")]
    ds = load_detection_data(root, split="train", keep_difficult=True, names=["dog", "person"])
    assert len(ds) == 2 and ds.samples[0].class_ids.tolist() == [0, 1]


def test_voc_xml_beside_images_custom_names(tmp_path):
    _image(tmp_path / "a.jpg", 100, 80)
    (tmp_path / "a.xml").write_text(VOC_XML.format(name="a").replace("dog", "widget"))
    samples, names = load_detection_dataset(tmp_path)
    assert names == ["widget"] and samples[0].class_ids.tolist() == [0]


@pytest.mark.parametrize("text, pattern", [
    ("<annotation>\n<filename>000002.jpg</filename>\n<object>\n</annotation>",
     r"000002\.xml:4: malformed XML"),
    ("<!DOCTYPE x [<!ENTITY a 'b'>]><annotation>&a;</annotation>", r"refused unsafe XML"),
    ("<annotation><filename>000002.jpg</filename><object><name>dog</name></object></annotation>",
     r"has no <bndbox>"),
    (VOC_XML.format(name="000002").replace("dog", "unicorn"), r"unknown class 'unicorn'"),
    (VOC_XML.format(name="000002").replace("<xmax>50", "<xmax>5"), r"xmax/ymax smaller"),
])
def test_broken_voc_rejected(tmp_path, text, pattern):
    root = _voc(tmp_path / "VOC")
    (root / "Annotations" / "000002.xml").write_text(text)
    with pytest.raises(DataError, match=pattern) as e:
        load_detection_dataset(root, names=list(VOC_NAMES))
    _one_line_error(e)


# ------------------------------------------------------------------------------------------ converters

def test_yolo_to_coco_json_and_back(tmp_path):
    root = _yolo_tree(tmp_path / "ds")
    ds = load_detection_data(root / "images", names=["cat", "dog"], warn=False)
    doc = to_coco_json(ds, path=tmp_path / "coco.json")
    assert len(doc["annotations"]) == 3 and [c["id"] for c in doc["categories"]] == [1, 2]
    back = load_detection_data(tmp_path / "coco.json", images=root / "images", warn=False)
    assert back.names == ["cat", "dog"]
    for s, t in zip(ds.samples, back.samples, strict=True):
        np.testing.assert_allclose(s.boxes, t.boxes, atol=1e-3)
        assert s.class_ids.tolist() == t.class_ids.tolist()
    out = write_yolo_labels(back, tmp_path / "labels_again")
    assert (out / "a.txt").read_text().splitlines()[0] == "0 0.500000 0.500000 0.200000 0.400000"
    assert (out / "c.txt").read_text() == ""


@pytest.mark.realdata
def test_coco128_loads(shared_data):
    root = shared_data("coco128")
    names_file = shared_data("yolo/coco.names")
    with pytest.warns(UserWarning, match="2 label file"):
        ds = load_detection_data(root / "images" / "train2017", names=names_file)
    assert len(ds) == 128 and ds.num_boxes == 929 and len(ds.names) == 80
    assert sum(len(s) == 0 for s in ds.samples) == 2
    assert all(s.boxes[:, 2].max(initial=0) <= s.width for s in ds.samples)
    # the dataset root works too (images/ + labels/ found below it)
    assert load_detection_data(root, names=names_file, warn=False).num_boxes == 929
