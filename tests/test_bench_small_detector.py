"""benchmarks/small_detector.py --smoke: the benchmark runs end to end on tiny sizes (the full run is the lead's)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))


def _run(tmp_path, *extra):
    import small_detector

    args = small_detector.parse_args(["--smoke", "--no-write", "--threads", "1", "--work", str(tmp_path), *extra])
    return small_detector.run(args)


def test_smoke_on_synthetic_shapes(tmp_path):
    train_rows, backend_rows, seconds = _run(tmp_path, "--no-coco")
    assert backend_rows == [] and seconds > 0
    (row,) = train_rows
    assert row["model"] == "cnnlab-nano" and row["epochs"] == 1 and 0.0 <= row["mAP50"] <= 1.0
    assert 0 < row["GFLOPs"] < 0.05 and 0 < row["params_M"] < 0.2   # the smoke build: width 0.25 at 128 px
    assert (tmp_path / "runs" / "detect" / "shapes-nano" / "weights" / "best.pt").is_file()


@pytest.mark.slow
@pytest.mark.realdata
def test_smoke_with_coco128_and_every_backend(shared_data, tmp_path, monkeypatch):
    monkeypatch.setenv("CNNLAB_DATA", str(shared_data("coco128").parent))
    train_rows, backend_rows, _ = _run(tmp_path)
    assert [r["model"] for r in train_rows] == ["cnnlab-nano", "yolo-fastest-1.1", "cnnlab-nano"]
    assert {(r["model"], r["backend"]) for r in backend_rows} == {
        (m, b) for m in ("cnnlab-nano", "yolo-fastest-1.1", "yolo-fastest-1.1-xl")
        for b in ("torch", "onnxruntime", "opencv")}
    by = {(r["model"], r["backend"]): r for r in backend_rows}
    for m in ("yolo-fastest-1.1", "yolo-fastest-1.1-xl"):   # the COCO weights detect on COCO images, on every backend
        maps = [by[(m, b)]["mAP50"] for b in ("torch", "onnxruntime", "opencv")]
        assert min(maps) > 0.2 and max(maps) - min(maps) < 0.02
    assert by[("yolo-fastest-1.1-xl", "torch")]["GFLOPs"] > by[("yolo-fastest-1.1", "torch")]["GFLOPs"]
    assert all(r["fps"] > 0 for r in backend_rows)
