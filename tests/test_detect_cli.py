"""``cnnlab detect`` and ``cnnlab export-detector``: outputs, run folders and one-line errors (exit 2)."""

from __future__ import annotations

import json

import cv2
import pytest

from cnnlab.detect.synthetic import random_yolo_files, synthetic_scene


@pytest.fixture(scope="module")
def model_files(tmp_path_factory):
    """A small random YOLOv3-tiny (2 classes, 64 px, narrow) as Darknet files."""
    return random_yolo_files(tmp_path_factory.mktemp("m"), "yolov3-tiny", num_classes=2, img_size=64,
                             width_mult=0.125, seed=2)


def _args(model_files):
    cfg, weights, names = model_files
    return ["--cfg", cfg, "--weights", weights, "--names", names, "--imgsz", "64", "--conf", "0.2"]


def _one_line_error(code, err, text):
    assert code == 2, err
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and text in lines[0], err
    assert "Traceback" not in err


def test_detect_image_writes_run_folder_json_and_csv(cli, model_files, tmp_path):
    cv2.imwrite(str(tmp_path / "scene.jpg"), synthetic_scene(120, 160))
    code, out, err = cli("detect", tmp_path / "scene.jpg", *_args(model_files), "--backend", "opencv",
                         "--save-json", "out.json", "--save-csv", "out.csv", "--project", "runs")
    assert code == 0, err
    run = tmp_path / "runs" / "detect" / "exp"
    annotated = cv2.imread(str(run / "scene.jpg"))
    assert annotated is not None and annotated.shape == (120, 160, 3)
    data = json.loads((tmp_path / "out.json").read_text())
    assert data["backend"] == "opencv" and data["names"] == ["class0", "class1"]
    dets = data["results"][0]["detections"]
    assert len(dets) > 0 and {"class_id", "name", "score", "box"} <= set(dets[0])
    assert all(d["score"] > 0.2 for d in dets)
    csv_rows = (tmp_path / "out.csv").read_text().strip().splitlines()
    assert csv_rows[0].startswith("source,frame,class_id") and len(csv_rows) == len(dets) + 1
    assert (run / "detections.json").is_file() and (run / "config.yaml").is_file()
    for stage in ("preprocess", "inference", "postprocess"):
        assert stage in out
    # a second run gets exp2; --no-save writes no run folder
    assert cli("detect", tmp_path / "scene.jpg", *_args(model_files), "-q")[0] == 0
    assert (tmp_path / "runs" / "detect" / "exp2" / "scene.jpg").is_file()
    assert cli("detect", tmp_path / "scene.jpg", *_args(model_files), "-q", "--no-save", "--project", "other")[0] == 0
    assert not (tmp_path / "other").exists()


def test_detect_imgsz_width_x_height(cli, model_files, tmp_path):
    cv2.imwrite(str(tmp_path / "scene.jpg"), synthetic_scene(120, 160))
    cfg, weights, names = model_files
    code, out, err = cli("detect", tmp_path / "scene.jpg", "--cfg", cfg, "--weights", weights, "--imgsz", "96x64",
                         "--save-json", "out.json", "--no-save")
    assert code == 0, err
    assert json.loads((tmp_path / "out.json").read_text())["imgsz"] == [96, 64] and "input 96x64" in out
    _one_line_error(*cli("detect", tmp_path / "scene.jpg", "--cfg", cfg, "--weights", weights, "--imgsz", "96x65")[:3:2],
                    "imgsz must be a positive multiple of 32")


def test_detect_folder_and_video(cli, model_files, tmp_path):
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    for i in range(2):
        cv2.imwrite(str(imgs / f"{i}.png"), synthetic_scene(64, 96, seed=i))
    code, out, err = cli("detect", imgs, *_args(model_files), "--name", "folder", "--no-letterbox")
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "runs/detect/folder").glob("*.png")) == ["0.png", "1.png"]

    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 5, (96, 64))
    for i in range(4):
        writer.write(synthetic_scene(64, 96, seed=i))
    writer.release()
    code, out, err = cli("detect", video, *_args(model_files), "--name", "vid", "--backend", "onnxruntime", "-q")
    assert code == 0, err
    cap = cv2.VideoCapture(str(tmp_path / "runs/detect/vid/clip.mp4"))
    frames = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    cap.release()
    assert frames == 4
    data = json.loads((tmp_path / "runs/detect/vid/detections.json").read_text())
    assert [r["frame"] for r in data["results"]] == [0, 1, 2, 3]


def test_export_detector_then_detect_with_the_onnx(cli, model_files, tmp_path):
    cfg, weights, names = model_files
    code, out, err = cli("export-detector", "--cfg", cfg, "--weights", weights, "--imgsz", "64",
                         "--output", "m.onnx", "--names", names)
    assert code == 0, err
    assert "max abs diff vs PyTorch" in out and (tmp_path / "m.onnx").is_file()
    cv2.imwrite(str(tmp_path / "a.jpg"), synthetic_scene(64, 64))
    code, out, err = cli("detect", tmp_path / "a.jpg", "--model", "m.onnx", "--backend", "onnxruntime",
                         "--save-json", "o.json", "-q", "--conf", "0.2")
    assert code == 0, err
    assert json.loads((tmp_path / "o.json").read_text())["names"] == ["class0", "class1"]


def test_broken_cfg_errors(cli, model_files, tmp_path):
    cfg, weights, names = model_files
    text = cfg.read_text()
    cv2.imwrite(str(tmp_path / "a.jpg"), synthetic_scene(64, 64))
    (tmp_path / "unknown.cfg").write_text(text.replace("[upsample]", "[pixelshuffle]"))
    code, _, err = cli("detect", tmp_path / "a.jpg", "--cfg", tmp_path / "unknown.cfg", "--weights", weights)
    _one_line_error(code, err, "unknown layer type [pixelshuffle]")
    (tmp_path / "filters.cfg").write_text(text.replace("filters=21", "filters=255", 1))
    code, _, err = cli("detect", tmp_path / "a.jpg", "--cfg", tmp_path / "filters.cfg", "--weights", weights)
    _one_line_error(code, err, "expected filters = len(mask)*(classes+5) = 3*(2+5) = 21")


def test_truncated_weights_unreadable_image_empty_folder(cli, model_files, tmp_path):
    cfg, weights, names = model_files
    cv2.imwrite(str(tmp_path / "a.jpg"), synthetic_scene(64, 64))
    (tmp_path / "short.weights").write_bytes(weights.read_bytes()[:-100])
    code, _, err = cli("detect", tmp_path / "a.jpg", "--cfg", cfg, "--weights", tmp_path / "short.weights")
    _one_line_error(code, err, "truncated weights file")

    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8 definitely not a jpeg")
    code, _, err = cli("detect", tmp_path / "broken.jpg", *_args(model_files))
    _one_line_error(code, err, "cannot read image")

    (tmp_path / "empty").mkdir()
    code, _, err = cli("detect", tmp_path / "empty", *_args(model_files))
    _one_line_error(code, err, "no images in folder")

    code, _, err = cli("detect", tmp_path / "nope.jpg", *_args(model_files))
    _one_line_error(code, err, "source not found")

    code, _, err = cli("detect", tmp_path / "a.jpg", *_args(model_files), "--backend", "tensorrt")
    _one_line_error(code, err, "unknown backend 'tensorrt'")


def test_detect_help_lists_the_options(cli):
    code, out, _ = cli("detect", "--help")
    assert code == 0
    for opt in ("--cfg", "--weights", "--names", "--model", "--backend", "--imgsz", "--conf", "--iou",
                "--letterbox", "--save-json", "--save-csv", "--project", "--name", "--no-save"):
        assert opt in out
