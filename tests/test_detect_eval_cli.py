"""``cnnlab detect-eval``: saved predictions in, run folder out; bad input is one line and exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


def _tiny_dataset(root: Path) -> Path:
    """Two images (one with two boxes of classes 0 and 1), YOLO labels, a names file."""
    from PIL import Image

    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    Image.new("RGB", (100, 100)).save(root / "images" / "1.png")
    Image.new("RGB", (100, 100)).save(root / "images" / "2.png")
    (root / "labels" / "1.txt").write_text("0 0.25 0.25 0.5 0.5\n1 0.75 0.75 0.5 0.5\n")
    (root / "names.txt").write_text("cat\ndog\n")
    return root


def test_cli_with_predictions_writes_run_folder(cli, tmp_path):
    root = _tiny_dataset(tmp_path / "ds")
    # COCO results: image ids are the numeric file stems, category ids 1..N for custom names
    dets = [{"image_id": 1, "category_id": 1, "bbox": [0, 0, 50, 50], "score": 0.9},
            {"image_id": 1, "category_id": 2, "bbox": [50, 50, 50, 40], "score": 0.8},
            {"image_id": 2, "category_id": 2, "bbox": [10, 10, 20, 20], "score": 0.3}]
    (tmp_path / "dets.json").write_text(json.dumps(dets))
    code, out, err = cli("detect-eval", root / "images", "--names", root / "names.txt",
                         "--predictions", tmp_path / "dets.json", "--project", "runs", "--name", "val",
                         "--json", "out.json")
    assert code == 0, err
    run = tmp_path / "runs" / "detect" / "val"
    for f in ("metrics.json", "per_class.csv", "per_class.md", "PR_curve.png", "confusion_matrix.png"):
        assert (run / f).is_file(), f
    m = json.loads((tmp_path / "out.json").read_text())
    assert m["mAP50"] == pytest.approx(1.0)  # dog's box has IoU 0.8 and the FP scores lower
    assert m["mAP50_95"] < 1.0 and set(m["per_class"]) == {"cat", "dog"}
    assert "mAP50" in out and "cat" in out and "runs/detect/val" in out


@pytest.mark.parametrize("args, pattern", [
    (["--predictions", "dets.json"], "file not found"),
    ([], "nothing to evaluate"),
    (["--predictions", "dets.json", "--cfg", "x.cfg"], "not both"),
    (["--predictions", "bad.json"], "invalid JSON"),
])
def test_cli_bad_input_exits_2_with_one_line(cli, tmp_path, args, pattern):
    root = _tiny_dataset(tmp_path / "ds")
    (tmp_path / "bad.json").write_text("[{")
    code, out, err = cli("detect-eval", root / "images", "--names", root / "names.txt", *args)
    assert code == 2
    assert pattern in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_cli_broken_label_file_exits_2(cli, tmp_path):
    root = _tiny_dataset(tmp_path / "ds")
    (root / "labels" / "2.txt").write_text("0 0.5 0.5\n")
    (tmp_path / "dets.json").write_text("[]")
    code, _, err = cli("detect-eval", root / "images", "--names", root / "names.txt",
                       "--predictions", tmp_path / "dets.json")
    assert code == 2 and "2.txt:1: expected 5 fields" in err and "Traceback" not in err
