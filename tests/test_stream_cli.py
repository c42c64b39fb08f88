"""`cnnlab stream` and `cnnlab sweep` end to end with a tiny Darknet model (random weights written by the
test), their one-line errors, and (real data) Yolo-Fastest on the shared video."""

from __future__ import annotations

import json

import pytest

from _cfgs import TINY_CFG
from test_stream_units import count_video_frames, write_video
from test_sweep_grid import make_dataset


@pytest.fixture
def tiny_model(tmp_path):
    from cnnlab.darknet.model import model_from_cfg
    from cnnlab.darknet.weights import save_darknet_weights

    cfg = tmp_path / "tiny.cfg"
    cfg.write_text(TINY_CFG)
    weights = tmp_path / "tiny.weights"
    save_darknet_weights(model_from_cfg(cfg), weights)
    names = tmp_path / "tiny.names"
    names.write_text("box\nthing\n")
    return ["--cfg", cfg, "--weights", weights, "--names", names]


def test_stream_cli_video_to_outputs(cli, tmp_path, tiny_model):
    video = write_video(tmp_path / "in.avi", 12, fps=15)
    code, out, err = cli("stream", video, *tiny_model, "--imgsz", "64", "--capture", "80x60",
                         "--max-fps", "60", "--save", tmp_path / "o.mp4", "--save-jsonl", tmp_path / "d.jsonl",
                         "--save-frames", tmp_path / "frames", "--json", tmp_path / "summary.json",
                         "--log-every", "0")
    assert code == 0, err
    assert "input 64x64" in out and "FPS achieved" in out and "inference" in out
    assert "resized from 160x120" in err                          # the source line reports the truth
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["frames"] == 12 and summary["stopped_by"] == "end"
    assert summary["source"]["width"] == 80 and summary["max_fps"] == 60
    assert summary["fps"] <= 60 * 1.05
    assert count_video_frames(tmp_path / "o.mp4") == 12
    assert len((tmp_path / "d.jsonl").read_text().splitlines()) == 12
    assert len(list((tmp_path / "frames").iterdir())) == 12


def test_stream_cli_limits_and_web(cli, tmp_path, tiny_model):
    video = write_video(tmp_path / "in.avi", 30)
    code, out, err = cli("stream", video, *tiny_model, "--max-frames", "5", "--web", "127.0.0.1:0",
                         "--token", "auto", "--log-every", "0")
    assert code == 0, err
    assert "live view: http://127.0.0.1:" in err and "?token=" in err
    assert "5 frames" in out and "max_frames" in out


@pytest.mark.parametrize("args, message", [
    (["missing.mp4"], "source not found"),
    (["VIDEO", "--token", "t"], "--token only applies"),
    (["VIDEO", "--capture", "big"], "invalid size"),
    (["VIDEO", "--max-fps", "-3"], "--max-fps must be positive"),
    (["VIDEO", "--save", "out.txt"], "unsupported video extension"),
])
def test_stream_cli_user_errors(cli, tmp_path, tiny_model, args, message):
    video = write_video(tmp_path / "in.avi", 2)
    args = [str(video) if a == "VIDEO" else a for a in args]
    code, out, err = cli("stream", args[0], *tiny_model, *args[1:])
    assert code == 2
    assert "error:" in err and message in err and "Traceback" not in err


def test_stream_cli_show_on_headless_opencv(cli, tmp_path, tiny_model):
    from cnnlab.detect.pipeline import gui_available

    if gui_available():
        pytest.skip("this OpenCV has a GUI")
    code, _, err = cli("stream", write_video(tmp_path / "in.avi", 2), *tiny_model, "--show")
    assert code == 2 and "headless" in err and "--web" in err


def test_sweep_cli(cli, tmp_path, tiny_model):
    images, _ = make_dataset(tmp_path / "data", n=3)
    code, out, err = cli("sweep", images, *tiny_model, "--captures", "80x60,160x120", "--sizes", "64",
                         "--fps", "100", "--project", tmp_path / "runs", "--name", "t")
    assert code == 0, err
    run = tmp_path / "runs" / "sweep" / "t"
    assert "results saved to" in out and "| 160x120 | 64 | 100 |" in out
    for f in ("results.csv", "results.md", "sweep.png", "metrics.json", "config.yaml"):
        assert (run / f).is_file()
    assert len((run / "results.csv").read_text().splitlines()) == 3
    code, _, err = cli("sweep", images, *tiny_model, "--sizes", "x")
    assert code == 2 and "invalid value" in err


@pytest.mark.realdata
def test_stream_yolo_fastest_on_shared_video(cli, shared_data, tmp_path):
    video = shared_data("video/vtest_480x360_h264.avi")
    yolo = shared_data("yolo")
    code, out, err = cli("stream", video, "--cfg", yolo / "yolo-fastest-1.1-xl.cfg",
                         "--weights", yolo / "yolo-fastest-1.1-xl.weights", "--names", yolo / "coco.names",
                         "--backend", "opencv", "--imgsz", "160", "--max-frames", "8",
                         "--save-jsonl", tmp_path / "d.jsonl", "--log-every", "0")
    assert code == 0, err
    records = [json.loads(line) for line in (tmp_path / "d.jsonl").read_text().splitlines()]
    assert len(records) == 8
    assert any(d["name"] == "person" for r in records for d in r["detections"])   # pedestrians found
