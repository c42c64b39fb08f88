"""The sweep: every grid cell runs the pipeline on a labelled image sequence or video and is scored with
mAP (predictions scaled back from the simulated capture size); CSV, Markdown, plot and JSON written."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from cnnlab.detect.pipeline.sweep import parse_grid, run_sweep
from cnnlab.detect.types import Detections
from cnnlab.errors import UserError


class RectDetector:
    """Finds the one bright rectangle of the synthetic images: a perfect detector at any resolution."""

    names = ["box"]

    def __init__(self, imgsz: int) -> None:
        self.imgsz = imgsz

    def preprocess(self, image):
        return image, image.shape[:2]

    def infer(self, blob):
        import cv2

        gray = cv2.cvtColor(blob, cv2.COLOR_BGR2GRAY)
        ys, xs = np.nonzero(gray > 150)
        return (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) if len(xs) else None

    def postprocess(self, raw, meta):
        if raw is None:
            return Detections.empty(self.names)
        return Detections(np.array([raw], np.float32), np.array([0.9], np.float32), np.array([0]), self.names)


def make_dataset(root, n=6, size=(160, 120), seed=0):
    """YOLO layout: root/images/*.png with one white rectangle each, root/labels/*.txt."""
    import cv2

    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    w, h = size
    frames = []
    for i in range(n):
        img = np.full((h, w, 3), 30, np.uint8)
        bw, bh = int(rng.integers(30, 70)), int(rng.integers(30, 60))
        x, y = int(rng.integers(0, w - bw)), int(rng.integers(0, h - bh))
        img[y:y + bh, x:x + bw] = 255
        cv2.imwrite(str(root / "images" / f"im{i:03d}.png"), img)
        (root / "labels" / f"im{i:03d}.txt").write_text(
            f"0 {(x + bw / 2) / w:.6f} {(y + bh / 2) / h:.6f} {bw / w:.6f} {bh / h:.6f}\n")
        frames.append(img)
    (root / "classes.txt").write_text("box\n")
    return root / "images", frames


def test_parse_grid():
    from cnnlab.cli.common import parse_size

    assert parse_grid("320x240, 640x480", parse_size) == [(320, 240), (640, 480)]
    assert parse_grid("160,320", int) == [160, 320]
    assert parse_grid([24, 40], float) == [24, 40]
    with pytest.raises(UserError):
        parse_grid("12,abc", int)
    with pytest.raises(UserError):
        parse_grid(" , ", int)


def test_sweep_on_image_sequence_writes_table_and_plot(tmp_path):
    images, _ = make_dataset(tmp_path / "data")
    built = []

    def factory(size):
        built.append(size)
        return RectDetector(size)

    res = run_sweep(images, factory, captures=[(80, 60), (160, 120)], sizes=[32, 64], fps=[120],
                    names=["box"], project=tmp_path / "runs", name="grid", progress=False)
    assert res.run_dir == tmp_path / "runs" / "sweep" / "grid" and res.complete
    assert built == [32, 64]                                 # one detector per input size
    assert len(res.rows) == 4
    for r in res.rows:
        assert r["frames"] == 6
        assert r["mAP50"] > 0.95, r                          # boxes scaled back to the labelled image
        assert r["achieved_fps"] <= r["max_fps"] * 1.05
        assert r["inference_ms"] >= 0 and r["frame_ms"] > 0
    with open(res.run_dir / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4 and rows[0]["capture"] == "80x60" and float(rows[-1]["max_fps"]) == 120
    md = (res.run_dir / "results.md").read_text()
    assert md.count("\n") == 6 and "mAP@0.5" in md and "| 160x120 | 64 | 120 |" in md
    assert (res.run_dir / "sweep.png").stat().st_size > 5000
    metrics = json.loads((res.run_dir / "metrics.json").read_text())
    assert len(metrics["rows"]) == 4 and metrics["complete"]
    assert "captures" in (res.run_dir / "config.yaml").read_text()


def test_sweep_on_labelled_video(tmp_path):
    import cv2

    images, frames = make_dataset(tmp_path / "data", n=5)
    video = tmp_path / "labelled.avi"
    vw = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (160, 120))
    for f in frames:
        vw.write(f)
    vw.release()
    res = run_sweep(images, RectDetector, video=video, captures=[(320, 240)], sizes=[64], fps=[200],
                    names=["box"], project=tmp_path / "runs", progress=False)
    (row,) = res.rows
    assert row["frames"] == 5 and row["mAP50"] > 0.9


def test_sweep_bad_input(tmp_path):
    images, _ = make_dataset(tmp_path / "data", n=2)
    with pytest.raises(UserError, match="video not found"):
        run_sweep(images, RectDetector, video=tmp_path / "nope.mp4", names=["box"], project=tmp_path,
                  progress=False)
    with pytest.raises(UserError):
        run_sweep(tmp_path / "missing", RectDetector, project=tmp_path, progress=False)
    with pytest.raises(UserError, match="limit"):
        run_sweep(images, RectDetector, limit=0, names=["box"], project=tmp_path, progress=False)


@pytest.mark.slow
@pytest.mark.realdata
def test_sweep_yolo_fastest_on_coco128(shared_data, tmp_path):
    from cnnlab.detect.detector import Detector

    images = shared_data("coco128/images/train2017")
    yolo = shared_data("yolo")

    def factory(size):
        return Detector(cfg=yolo / "yolo-fastest-1.1-xl.cfg", weights=yolo / "yolo-fastest-1.1-xl.weights",
                        names=yolo / "coco.names", backend="opencv", imgsz=size, conf=0.001)

    with pytest.warns(UserWarning, match="no image"):      # coco128 has 2 label files without image
        res = run_sweep(images, factory, captures=[(640, 480)], sizes=[320], fps=[100], limit=12,
                        names=yolo / "coco.names", project=tmp_path, progress=False)
    (row,) = res.rows
    assert row["frames"] == 12
    assert 0.1 < row["mAP50"] <= 1.0 and row["mAP50_95"] < row["mAP50"]
