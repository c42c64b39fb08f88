"""Property-based fuzzing of the detection dataset parsers (YOLO txt, VOC XML, COCO JSON, data.yaml).

Any input either loads into a valid dataset (finite boxes with positive area inside their image, class
ids below the number of names, sane image sizes) or is refused with cnnlab's own error class
(`UserError` and subclasses): never another exception, never invalid ground truth. The inputs are
random bytes and text, and near-valid files with hostile values (NaN, inf, 1e400, negative, huge
integers, wrong types, missing fields). The targets are those of `cnnlab.fuzz.detect_data`.
"""

from __future__ import annotations

import json
from xml.sax.saxutils import escape

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cnnlab.detect.data import MAX_IMAGE_SIDE, MAX_INFERRED_CLASSES
from cnnlab.detect.evaluate import check_ground_truth
from cnnlab.errors import UserError
from cnnlab.fuzz import detect_data as fz

FUZZ = settings(max_examples=200, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
LOADERS = {"yolo_txt": fz.load_yolo_txt, "voc_xml": fz.load_voc_xml, "coco_json": fz.load_coco_json,
           "data_yaml": fz.load_data_yaml, "beside_xml": fz.load_beside_xml, "beside_txt": fz.load_beside_txt}


def assert_valid(ds) -> None:
    """A loaded dataset holds only ground truth a metric may be computed over."""
    assert not ds.names_inferred or len(ds.names) <= MAX_INFERRED_CLASSES
    for s in ds.samples:
        assert 1 <= s.width <= MAX_IMAGE_SIDE and 1 <= s.height <= MAX_IMAGE_SIDE
        b = s.boxes
        assert b.dtype == np.float32 and b.shape == (len(s.class_ids), 4)
        assert np.isfinite(b).all()
        assert (b[:, 2] > b[:, 0]).all() and (b[:, 3] > b[:, 1]).all()
        assert (b[:, :2] >= 0).all() and (b[:, 2] <= s.width).all() and (b[:, 3] <= s.height).all()
        assert ((s.class_ids >= 0) & (s.class_ids < len(ds.names))).all()
    check_ground_truth(ds.samples, len(ds.names))


def load_or_refuse(target: str, data: bytes) -> None:
    try:
        ds = LOADERS[target](data)
    except UserError as e:
        msg = str(e)
        assert msg and "\n" not in msg and len(msg) < 2000, msg   # one line, and never a huge dump
        return
    if ds is not None:
        assert_valid(ds)


def assert_report(report) -> None:
    """``data check`` never raises: every finding is a one-line issue, and the counts are consistent."""
    for issue in report.issues:
        assert issue.severity in ("error", "warning") and issue.kind
        assert issue.message and "\n" not in issue.message and len(issue.message) < 2000, issue.message
    for c in report.counts.values():
        assert c["boxes"] == sum(c["per_class"].values()) and c["labelled"] <= c["images"]
    assert report.ok == (not report.errors)


def test_fuzz_targets_are_the_parsers():
    targets = fz.fuzz_targets()
    assert set(targets) == {"yolo_txt", "voc_xml", "coco_json", "data_yaml", "beside_xml", "beside_txt",
                            "data_check"}
    targets["yolo_txt"](b"0 0.5 0.5 0.2 0.2\n")
    with pytest.raises(UserError, match="not a finite number"):
        targets["yolo_txt"](b"0 nan 0.5 0.2 0.2\n")


# ------------------------------------------------------------------------------------ any bytes / text

@pytest.mark.parametrize("target", sorted(LOADERS))
@FUZZ
@given(data=st.binary(max_size=400))
def test_any_bytes_load_or_are_refused(target, data):
    load_or_refuse(target, data)


@pytest.mark.parametrize("target", sorted(LOADERS))
@FUZZ
@given(text=st.text(max_size=300))
def test_any_text_loads_or_is_refused(target, text):
    load_or_refuse(target, text.encode("utf-8", "surrogatepass"))


@FUZZ
@given(data=st.one_of(st.binary(max_size=300), st.text(max_size=300).map(lambda t: t.encode("utf-8", "surrogatepass"))))
def test_data_check_never_raises_on_any_label_file(data):
    assert_report(fz.check_beside(data))


# ------------------------------------------------------------------------------------ hostile values

def mostly(valid, hostile, one_in: int = 6):
    """``valid`` values, and one time in ``one_in`` a ``hostile`` one (so that files get far enough to
    be loaded, with one bad value somewhere)."""
    return st.sampled_from([False] * (one_in - 1) + [True]).flatmap(lambda bad: hostile if bad else valid)


HOSTILE_TEXT = st.sampled_from([
    "nan", "NaN", "-nan", "inf", "-inf", "Infinity", "1e400", "-1e400", "1e308", "1e20", "1e-50", "1e-320",
    "100000000", "99999999999999999999999", "9" * 400, "0", "-0", "0.0", "1", "-1", "0.5", "1.005",
    "1.01", "-0.01", "abc", "", " ", "0x10", "1_0", "١", "²", "True",
])
UNIT = mostly(st.floats(0.05, 0.95), st.floats(-0.05, 1.05), 4).map(lambda v: f"{v:.6g}")
NUM_TEXT = st.one_of(HOSTILE_TEXT, UNIT, st.floats().map(repr), st.integers(-10**25, 10**25).map(str))
PIXEL_TEXT = st.one_of(HOSTILE_TEXT, st.integers(-5, 15).map(str), st.floats(-5, 15).map(lambda v: f"{v:.4g}"))


@st.composite
def yolo_files(draw) -> bytes:
    lines = []
    for _ in range(draw(st.integers(0, 4))):
        n = draw(mostly(st.just(5), st.sampled_from([7, 9, 1, 4, 6])))
        cls = draw(mostly(st.integers(0, 3).map(str), HOSTILE_TEXT))
        coords = [draw(mostly(UNIT, NUM_TEXT, 12)) for _ in range(n - 1)]
        lines.append(" ".join([cls, *coords]))
    return (draw(st.sampled_from(["\n", "\r\n"])).join(lines)).encode()


@FUZZ
@given(data=yolo_files())
def test_near_valid_yolo_labels(data):
    load_or_refuse("yolo_txt", data)
    loader_and_check_agree("beside_txt", data)


def loader_and_check_agree(target: str, data: bytes) -> None:
    """The reader and ``data check`` (the same reader, collecting) agree on a label file beside its image:
    what the reader refuses is an error of the check, and what it loads the check counts box for box."""
    try:
        ds = LOADERS[target](data)
    except UserError:
        ds = None
    report = fz.check_beside(data)
    assert_report(report)
    if ds is None:
        assert not report.ok, report.issues
    else:
        assert_valid(ds)
        assert report.counts["val"]["boxes"] == ds.num_boxes
        assert report.ok == (ds.num_boxes > 0), report.issues


@st.composite
def voc_files(draw) -> bytes:
    parts = ["<annotation>"]
    if draw(st.booleans()):
        parts.append(f"<filename>{draw(st.sampled_from(['a.png', 'gone.png', '', 'a.png ']))}</filename>")
    if draw(st.booleans()):
        w = draw(mostly(st.just("8"), PIXEL_TEXT))
        h = draw(mostly(st.just("6"), PIXEL_TEXT))
        parts.append(f"<size><width>{escape(w)}</width><height>{escape(h)}</height></size>")
    for _ in range(draw(st.integers(0, 3))):
        obj = ["<object>"]
        if draw(mostly(st.just(True), st.just(False), 10)):
            name = draw(mostly(st.sampled_from(["dog", "cat", "widget"]), st.sampled_from([" ", "a b", "ä\t"])))
            obj.append(f"<name>{escape(name)}</name>")
        if draw(st.booleans()):
            obj.append(f"<difficult>{draw(st.sampled_from(['0', '1', 'x']))}</difficult>")
        if draw(mostly(st.just(True), st.just(False), 10)):
            x1, y1 = draw(st.integers(-2, 9)), draw(st.integers(-2, 7))
            box = [str(x1), str(y1), str(x1 + draw(st.integers(1, 6))), str(y1 + draw(st.integers(1, 5)))]
            box = [draw(mostly(st.just(v), PIXEL_TEXT, 12)) for v in box]
            fields = [f"<{t}>{escape(v)}</{t}>" for t, v in zip(("xmin", "ymin", "xmax", "ymax"), box, strict=True)
                      if draw(mostly(st.just(True), st.just(False), 20))]   # now and then one is missing
            obj.append("<bndbox>" + "".join(fields) + "</bndbox>")
        parts.append("".join(obj) + "</object>")
    parts.append("</annotation>")
    return "\n".join(parts).encode()


@FUZZ
@given(data=voc_files())
def test_near_valid_voc_xml(data):
    load_or_refuse("voc_xml", data)
    loader_and_check_agree("beside_xml", data)


JSON_NUM = st.one_of(st.integers(-3, 12), st.floats(allow_nan=True, allow_infinity=True),
                     st.sampled_from([10**30, -(10**30), 10**400, 2**63, 1e308, 0.5, -0.0]))
HOSTILE_JSON = st.one_of(JSON_NUM, st.none(), st.booleans(), st.text(max_size=4),
                         st.lists(st.integers(0, 3), max_size=4), st.just({}), st.just({"a": 1}))


@st.composite
def coco_files(draw) -> bytes:
    def maybe(d: dict, key: str, valid, hostile=HOSTILE_JSON) -> None:
        if draw(mostly(st.just(True), st.just(False), 15)):   # now and then a field is missing
            d[key] = draw(mostly(valid, hostile, 12))

    images = []
    for k in range(draw(st.integers(0, 3))):
        im: dict = {}
        maybe(im, "id", st.just(k + 1), st.one_of(st.sampled_from([1, "1", "a", True]), HOSTILE_JSON))
        maybe(im, "file_name", st.just("1.png"), st.one_of(st.just("gone.png"), HOSTILE_JSON))
        if draw(st.booleans()):
            maybe(im, "width", st.just(8), st.one_of(JSON_NUM, HOSTILE_JSON))
            maybe(im, "height", st.just(6), st.one_of(JSON_NUM, HOSTILE_JSON))
        images.append(im)
    cats = []
    for k in range(draw(mostly(st.integers(1, 3), st.just(0), 10))):
        c: dict = {}
        maybe(c, "id", st.just(k + 1), st.one_of(st.just(1), HOSTILE_JSON))
        maybe(c, "name", st.sampled_from(["a", "b", "c"]), HOSTILE_JSON)
        cats.append(c)
    anns = []
    for _ in range(draw(st.integers(0, 4))):
        a: dict = {}
        maybe(a, "image_id", st.integers(1, 3))
        maybe(a, "category_id", st.integers(1, 3))
        xywh = st.tuples(st.floats(-1, 7), st.floats(-1, 5), st.floats(0.1, 8), st.floats(0.1, 6)).map(list)
        hostile_bbox = st.one_of(st.lists(st.one_of(st.integers(-2, 10), JSON_NUM), min_size=3, max_size=5),
                                 HOSTILE_JSON)
        maybe(a, "bbox", xywh, hostile_bbox)
        if draw(st.booleans()):
            a["iscrowd"] = draw(mostly(st.integers(0, 1), HOSTILE_JSON))
        anns.append(a)
    doc: dict = {}
    maybe(doc, "images", st.just(images))
    maybe(doc, "annotations", st.just(anns))
    maybe(doc, "categories", st.just(cats))
    return json.dumps(doc, allow_nan=True).encode()


@FUZZ
@given(data=coco_files())
def test_near_valid_coco_json(data):
    load_or_refuse("coco_json", data)


HOSTILE_YAML = st.one_of(st.none(), st.booleans(), st.integers(-10**20, 10**20),
                         st.floats(allow_nan=True, allow_infinity=True), st.text("ab. :-", max_size=5),
                         st.lists(st.integers(0, 2), max_size=2), st.just({"x": 1}))
ENTRY = st.one_of(st.sampled_from(["images", "images", ".", "nope", "images.txt", "x.json", "labels", ""]),
                  HOSTILE_YAML)


@st.composite
def data_yamls(draw) -> bytes:
    cfg: dict = {}
    if draw(mostly(st.just(True), st.just(False), 10)):
        cfg["val"] = draw(mostly(st.sampled_from(["images", "."]), st.one_of(ENTRY, st.lists(ENTRY, max_size=3))))
    if draw(st.booleans()):
        cfg["train"] = draw(ENTRY)
    if draw(mostly(st.just(True), st.just(False), 10)):
        name = mostly(st.sampled_from(["a", "b", "c"]), st.one_of(st.just("no"), HOSTILE_YAML))
        key = mostly(st.integers(0, 2), st.one_of(st.integers(-1, 3), st.sampled_from(["0", "1", "x", "1.5"]),
                                                  st.integers(10**8, 10**12), st.floats(allow_nan=True)))
        cfg["names"] = draw(mostly(st.one_of(st.lists(name, min_size=1, max_size=3),
                                             st.dictionaries(key, name, min_size=1, max_size=3)),
                                   HOSTILE_YAML))
    if draw(st.booleans()):
        cfg["nc"] = draw(mostly(st.integers(1, 3), HOSTILE_YAML))
    if draw(st.booleans()):
        cfg["path"] = draw(st.sampled_from([None, ".", ""]))
    if draw(st.booleans()):
        cfg["download"] = draw(HOSTILE_YAML)
    if draw(mostly(st.just(True), st.just(False), 10)):
        return yaml.safe_dump(cfg, allow_unicode=True).encode()
    return yaml.safe_dump(list(cfg.items())).encode()


@FUZZ
@given(data=data_yamls())
def test_near_valid_data_yaml(data):
    load_or_refuse("data_yaml", data)
    report = fz.check_data_yaml(data)          # data check of the same file: never raises
    if report is not None:
        assert_report(report)


@FUZZ
@given(data=st.binary(max_size=200))
def test_data_check_never_raises_on_any_data_yaml(data):
    report = fz.check_data_yaml(data)
    if report is not None:
        assert_report(report)
