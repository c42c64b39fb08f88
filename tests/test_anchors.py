"""k-means anchors with the 1 - IoU distance, on synthetic box sets and a generated dataset."""

from __future__ import annotations

import numpy as np
import pytest

from cnnlab.detect.train.anchors import (
    anchor_fitness,
    anchors_cfg_text,
    dataset_anchors,
    iou_wh,
    kmeans_anchors,
)
from cnnlab.errors import UserError


def clustered_boxes(centres, n_each=200, spread=0.05, seed=0):
    rng = np.random.default_rng(seed)
    parts = [np.asarray(c, float) * rng.lognormal(0, spread, (n_each, 2)) for c in centres]
    return np.concatenate(parts)


def test_iou_wh():
    out = iou_wh(np.array([[10.0, 10.0], [20.0, 5.0]]), np.array([[10.0, 10.0], [5.0, 20.0]]))
    np.testing.assert_allclose(out, [[1.0, 50 / 150], [50 / 150, 25 / 175]])


def test_kmeans_recovers_well_separated_clusters():
    centres = [(12, 16), (40, 30), (30, 80), (120, 100), (200, 320), (350, 300)]
    wh = clustered_boxes(centres)
    anchors = kmeans_anchors(wh, n=6, seed=0)
    assert anchors.shape == (6, 2)
    assert (np.diff(anchors.prod(1)) >= 0).all()                       # sorted by area, as cfgs list them
    expected = np.asarray(sorted(centres, key=lambda c: c[0] * c[1]), float)
    np.testing.assert_allclose(anchors, expected, rtol=0.08)
    fit = anchor_fitness(wh, anchors)
    assert fit["mean_iou"] > 0.9 and fit["bpr"] == 1.0


def test_kmeans_beats_a_poor_fixed_set_and_is_seeded():
    wh = clustered_boxes([(20, 20), (60, 120), (300, 150)], spread=0.3, seed=1)
    a1, a2 = kmeans_anchors(wh, 3, seed=5), kmeans_anchors(wh, 3, seed=5)
    np.testing.assert_array_equal(a1, a2)
    poor = np.array([[100.0, 100.0], [110.0, 100.0], [100.0, 110.0]])
    assert anchor_fitness(wh, a1)["mean_iou"] > anchor_fitness(wh, poor)["mean_iou"] + 0.2


def test_kmeans_needs_enough_boxes():
    with pytest.raises(UserError, match="at least 9 boxes"):
        kmeans_anchors(np.ones((4, 2)), n=9)


def test_dataset_anchors_and_cli(tmp_path, cli):
    from cnnlab.detect.train.scenes import write_scene_dataset

    data = write_scene_dataset(tmp_path / "shapes", n_train=12, n_val=2, size=64, seed=0)
    res = dataset_anchors(data, n=6, imgsz=128)
    assert len(res["anchors"]) == 6 and res["boxes"] >= 12 and res["images"] == 12
    sizes = np.asarray(res["anchors"])
    assert sizes.min() >= 0.12 * 128 * 0.5 and sizes.max() <= 0.4 * 128 * 1.1   # shapes are 12-40 % of the image
    assert "default_fitness" in res and res["mean_iou"] > res["default_fitness"]["mean_iou"]
    assert anchors_cfg_text([[10.2, 13.7], [30, 61]]) == "anchors=10,14,  30,61"
    code, out, err = cli("anchors", str(data), "-n", "6", "--imgsz", "128", "--json", str(tmp_path / "a.json"))
    assert code == 0, err
    assert "anchors=" in out and (tmp_path / "a.json").is_file()
    code, _, err = cli("anchors", str(data), "-n", "500")
    assert code == 2 and "at least 500 boxes" in err


def test_anchors_use_the_dataset_parsers(tmp_path, cli):
    """`cnnlab anchors` reads boxes through the same loaders: a NaN or zero-size label is one line, exit 2."""
    from PIL import Image

    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    for i in range(3):
        Image.new("RGB", (64, 64)).save(tmp_path / "images" / f"{i}.png")
        (tmp_path / "labels" / f"{i}.txt").write_text("0 0.5 0.5 0.2 0.3\n")
    for bad, pattern in (("0 0.5 0.5 nan 0.3", "2.txt:2: not a finite number: 'nan'"),
                         ("0 0.5 0.5 0 0.3", "2.txt:2: box width and height must be > 0"),
                         ("100000000 0.5 0.5 0.1 0.3", "2.txt:2: class id 100000000 is too large")):
        (tmp_path / "labels" / "2.txt").write_text(f"0 0.5 0.5 0.2 0.3\n{bad}\n")
        code, _, err = cli("anchors", str(tmp_path / "images"), "-n", "2")
        assert code == 2 and pattern in err and err.strip().count("\n") == 0 and "Traceback" not in err, err
    with pytest.raises(UserError, match="finite"):
        kmeans_anchors(np.array([[1.0, 2.0], [np.inf, 3.0], [2.0, 2.0]]), n=2)
