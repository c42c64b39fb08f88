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


# ------------------------------------------------------------------------------------------ issue 12:
# invalid ground truth is refused where it is read (file + line/object/annotation), never scored

@pytest.mark.parametrize("line, pattern", [
    ("0 nan 0.5 0.2 0.2", r"a\.txt:2: not a finite number: 'nan'"),
    ("0 0.5 inf 0.2 0.2", r"a\.txt:2: not a finite number: 'inf'"),
    ("0 0.5 0.5 1e400 0.2", r"a\.txt:2: not a finite number: '1e400'"),
    ("0 0.5 0.5 0 0.2", r"a\.txt:2: box width and height must be > 0"),
    ("0 0.5 0.5 0.2 0.0", r"a\.txt:2: box width and height must be > 0"),
    ("0 0.3 0.2 0.3 0.5 0.3 0.7", r"a\.txt:2: box width and height must be > 0"),   # polygon on a line
    ("0 1.01 0.5 0.005 0.2", r"a\.txt:2: box .* lies outside the 64x48 image"),
    ("1e20 0.5 0.5 0.2 0.2", r"a\.txt:2: class id 1e20 out of range \(dataset has 2 names"),
    ("-1 0.5 0.5 0.2 0.2", r"a\.txt:2: class id must be a non-negative integer"),
])
def test_invalid_yolo_values_refused_with_file_and_line(tmp_path, line, pattern):
    test_broken_yolo_label_rejected_with_file_and_line(tmp_path, line, pattern)


@pytest.mark.parametrize("cls", ["1e20", "100000000", "10000"])
def test_yolo_class_ids_without_names_are_capped(tmp_path, cls):
    """No names: the class count follows from the largest id, so a huge id would build ~1e8 names."""
    _image(tmp_path / "images" / "a.png")
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "a.txt").write_text(f"0 0.5 0.5 0.2 0.2\n{cls} 0.5 0.5 0.2 0.2\n")
    with pytest.raises(DataError, match=rf"a\.txt:2: class id {cls} is too large without class names .*pass "
                       r"the names") as e:
        load_detection_data(tmp_path / "images", warn=False)
    _one_line_error(e)
    (tmp_path / "labels" / "a.txt").write_text("9999 0.5 0.5 0.2 0.2\n")   # the largest id allowed
    assert len(load_detection_data(tmp_path / "images", warn=False).names) == 10000


def _voc_box(root: Path, box: str = "", size: str | None = None) -> Path:
    """000002.xml of the VOC tree with the dog's bndbox and/or the <size> replaced."""
    text = VOC_XML.format(name="000002")
    if box:
        text = text.replace("<xmin>10</xmin><ymin>20</ymin><xmax>50</xmax><ymax>60</ymax>", box)
    if size is not None:
        text = text.replace("<size><width>100</width><height>80</height><depth>3</depth></size>", size)
    (root / "Annotations" / "000002.xml").write_text(text)
    return root


@pytest.mark.parametrize("box, pattern", [
    ("<xmin>nan</xmin><ymin>20</ymin><xmax>nan</xmax><ymax>60</ymax>", r"bndbox needs finite numbers .*<xmin> 'nan'"),
    ("<xmin>10</xmin><ymin>20</ymin><xmax>inf</xmax><ymax>60</ymax>", r"bndbox needs finite numbers .*<xmax> 'inf'"),
    ("<xmin>10</xmin><ymin>-inf</ymin><xmax>50</xmax><ymax>60</ymax>", r"<ymin> '-inf'"),
    ("<xmin>10</xmin><ymin>20</ymin><xmax>50</xmax><ymax>1e400</ymax>", r"<ymax> '1e400'"),
    ("<xmin>10</xmin><ymin>20</ymin><xmax>50</xmax>", r"<ymax> ''"),
    ("<xmin>200</xmin><ymin>20</ymin><xmax>300</xmax><ymax>60</ymax>", r"lies outside the 100x80 image"),
    ("<xmin>-50</xmin><ymin>-40</ymin><xmax>-10</xmax><ymax>-5</ymax>", r"lies outside the 100x80 image"),
    ("<xmin>100</xmin><ymin>20</ymin><xmax>140</xmax><ymax>60</ymax>", r"lies outside"),   # touches the edge
    ("<xmin>10</xmin><ymin>20</ymin><xmax>10</xmax><ymax>60</ymax>", r"box has no area"),
])
def test_invalid_voc_boxes_refused_with_file_and_object(tmp_path, box, pattern):
    root = _voc_box(_voc(tmp_path / "VOC"), box=box)
    with pytest.raises(DataError, match=r"000002\.xml: <object> 1 \('dog'\).*" + pattern) as e:
        load_detection_dataset(root)
    _one_line_error(e)


def test_voc_box_partly_outside_is_clipped(tmp_path):
    root = _voc_box(_voc(tmp_path / "VOC"), box="<xmin>-5</xmin><ymin>20</ymin><xmax>150</xmax><ymax>90</ymax>")
    samples, _ = load_detection_dataset(root)
    np.testing.assert_allclose(samples[0].boxes, [[0, 20, 100, 80]])


@pytest.mark.parametrize("width", ["inf", "nan", "-100", "0", "200000", "abc", "12.5", "1e400"])
def test_voc_bad_image_size_refused(tmp_path, width):
    root = _voc_box(_voc(tmp_path / "VOC"), size=f"<size><width>{width}</width><height>80</height></size>")
    with pytest.raises(DataError, match=r"000002\.xml: <size><width>: image size must be a whole number of "
                       r"pixels in 1\.\.100000, got '" + width) as e:
        load_detection_dataset(root)
    _one_line_error(e)


def test_voc_without_size_reads_the_image(tmp_path):
    root = _voc_box(_voc(tmp_path / "VOC"), size="")
    samples, _ = load_detection_dataset(root)
    assert (samples[0].width, samples[0].height) == (100, 80)
    root = _voc_box(root, size="<size><width>100.0</width><height>80</height></size>")   # 100.0 is whole
    assert load_detection_dataset(root)[0][0].width == 100


def _coco_doc(tmp_path: Path, mutate) -> Path:
    path = _coco(tmp_path)
    doc = json.loads(path.read_text())
    mutate(doc)
    path.write_text(json.dumps(doc, allow_nan=True))
    return path


def _ann0(**kw):
    return lambda d: d["annotations"][0].update(**kw)


@pytest.mark.parametrize("mutate, pattern", [
    (_ann0(bbox=[float("nan"), 1, float("nan"), 19]), r"annotations\[0\]: bbox values must be finite numbers"),
    (_ann0(bbox=[1, 2, float("inf"), 19]), r"annotations\[0\]: bbox values must be finite"),
    (_ann0(bbox=[1, 2, 10**400, 19]), r"annotations\[0\]: bbox values must be finite"),   # overflows a float
    (_ann0(bbox=[1, 2, "3", 19]), r"annotations\[0\]: bbox must be 4 numbers"),
    (_ann0(bbox=[1, 2, True, 19]), r"annotations\[0\]: bbox must be 4 numbers"),
    (_ann0(bbox={"x": 1}), r"annotations\[0\]: bbox must be 4 numbers"),
    (_ann0(bbox=None), r"annotations\[0\]: bbox must be 4 numbers"),
    (_ann0(bbox=[1, 2, 0, 19]), r"annotations\[0\]: bbox width and height must be > 0"),
    (_ann0(bbox=[1, 2, 10, -3]), r"annotations\[0\]: bbox width and height must be > 0"),
    (_ann0(bbox=[100, 5, 20, 30]), r"annotations\[0\]: box .* lies outside the 80x60 image"),
    (_ann0(category_id="3"), r"annotations\[0\]: category_id '3' is not in 'categories'"),
    (_ann0(category_id=[3]), r"annotations\[0\]: category_id list is not in 'categories'"),
    (_ann0(category_id=3.0), r"annotations\[0\]: category_id 3\.0 is not in 'categories'"),
    (_ann0(image_id=[11]), r"annotations\[0\]: image_id list is not in 'images'"),
    (_ann0(image_id="11"), r"annotations\[0\]: image_id '11' is not in 'images'"),
    (_ann0(iscrowd="yes"), r"annotations\[0\]: iscrowd must be 0 or 1"),
    (lambda d: d["images"][1].update(id="12"), r"images\[1\]: id '12' is a str, the first image's id a int"),
    (lambda d: d["images"][1].update(id=[12]), r"images\[1\]: id must be an integer"),
    (lambda d: d["images"][1].update(id=11), r"images\[1\]: duplicate image id 11"),
    (lambda d: d["images"][1].update(file_name=7), r"images\[1\]: file_name must be a file name"),
    (lambda d: d["images"][0].update(width="abc"), r"images\[0\]: width: image size must be a whole number"),
    (lambda d: d["images"][0].update(width=float("nan")), r"images\[0\]: width: image size must be"),
    (lambda d: d["images"][0].update(height=0), r"images\[0\]: height: image size must be"),
    (lambda d: d["categories"].append({"id": 3, "name": "truck"}), r"categories\[2\]: duplicate category id 3"),
    (lambda d: d["categories"][0].update(id="3"), r"categories\[0\]: needs an integer 'id'"),
    (lambda d: d["categories"][0].update(name=["car"]), r"categories\[0\]: needs an integer 'id' and a 'name'"),
    (lambda d: d.update(images={"id": 1}), r"'images' and 'annotations' must be lists"),
])
def test_invalid_coco_values_refused_with_file_and_annotation(tmp_path, mutate, pattern):
    path = _coco_doc(tmp_path, mutate)
    with pytest.raises(DataError, match=r"instances_val2017\.json: " + pattern) as e:
        load_detection_dataset(path)
    _one_line_error(e)


def test_coco_crowd_boxes_skipped_and_boxes_clipped(tmp_path):
    path = _coco_doc(tmp_path, _ann0(bbox=[70, 50, 30, 30]))   # 80x60 image: clipped to [70, 50, 80, 60]
    ds = load_detection_data(path, warn=False)
    np.testing.assert_allclose(ds.samples[0].boxes[0], [70, 50, 80, 60])
    assert ds.warnings == [f"{path}: skipped 1 crowd annotations"]


@pytest.mark.parametrize("text, pattern", [
    ('{"images": [], "x": ' + "1" * 5000 + "}", r"invalid JSON \(Exceeds the limit"),   # Python's int digits
    ("[" * 100_000, r"invalid JSON"),                                             # nesting too deep
])
def test_coco_json_that_python_cannot_read_is_refused(tmp_path, text, pattern):
    (tmp_path / "a.json").write_text(text)
    with pytest.raises(UserError, match=pattern) as e:
        load_detection_dataset(tmp_path / "a.json")
    _one_line_error(e)
    (tmp_path / "a.json").write_bytes(b'{"images": "\xff\xfe"}')
    with pytest.raises(UserError, match=r"a\.json: not a UTF-8 text file"):
        load_detection_dataset(tmp_path / "a.json")


@pytest.mark.parametrize("body, pattern", [
    ("val: images\nnames: cat\n", r"names must be a list or a mapping \{id: name\}, got str"),
    ("val: images\nnames: 3\n", r"names must be a list or a mapping"),
    ("val: images\nnames: [a, null]\n", r"names\[1\]: a class name must be text, got NoneType"),
    ("val: images\nnames: [a, [b]]\n", r"names\[1\]: a class name must be text, got list"),
    ("val: images\nnames: [cat, no]\n", r"names\[1\]: class name is the boolean False .*quote the name"),
    ("val: images\nnames: {0: a, 1000000000: b}\n", r"class ids must be 0\.\.1 without gaps \(missing 1\)"),
    ("val: images\nnames: {0: a, 1.5: b}\n", r"class ids must be integers \(got 1\.5\)"),
    ("val: images\nnames: {0: a, .inf: b}\n", r"class ids must be integers \(got inf\)"),
    ("val: images\nnames: [a]\nnc: abc\n", r"nc must be an integer, got 'abc'"),
    ("val: images\nnames: [a]\nnc: .nan\n", r"nc must be an integer, got nan"),
    ("val: images\nnames: [a]\nnc: 2\n", r"nc is 2 but 1 names are given"),
    ("val: {a: 1}\nnames: [a]\n", r"val must be a path \(text\) or a list of paths, got dict"),
    ("val: [[images]]\nnames: [a]\n", r"val must be a path .*got list"),
    ("val: true\nnames: [a]\n", r"val must be a path .*got bool"),
    ("path: [x]\nval: images\nnames: [a]\n", r"path must be a path .*got list"),
    ("val: nowhere\nnames: [a]\n", r"val path not found: .*nowhere"),
    ("val: images\nnames: [a]\nwhen: 2001-13-45\n", r"invalid YAML \(month must be in 1\.\.12\)"),
    ("- val\n- images\n", r"expected a mapping with path/train/val/names, got list"),
    ("val: []\nnames: [a]\n", r"no 'val' split"),
])
def test_invalid_data_yaml_refused(tmp_path, body, pattern):
    root = _yolo_tree(tmp_path / "ds")
    (root / "data.yaml").write_text(body)
    with pytest.raises(DataError, match=r"data\.yaml: .*" + pattern) as e:
        load_detection_dataset(root / "data.yaml")
    _one_line_error(e)


def test_data_yaml_numbers_as_folder_names(tmp_path):
    """A folder named 2017 is written as a YAML number: it is still a path."""
    root = tmp_path / "ds"
    _image(root / "2017" / "a.png")
    (root / "2017" / "a.txt").write_text("1 0.5 0.5 0.2 0.2\n")
    (root / "data.yaml").write_text("path: .\nval: 2017\nnames: ['no', 'yes']\n")
    samples, names = load_detection_dataset(root / "data.yaml", warn=False)
    assert len(samples) == 1 and names == ["no", "yes"] and samples[0].class_ids.tolist() == [1]
