"""The train / evaluate / predict commands, resume through the CLI, and one-line errors (exit 2)."""

from __future__ import annotations

import json

import pytest
import torch

import cnnlab
from _kill import KillMidEpoch
from cnnlab.engine.callbacks import Callback
from cnnlab.engine.checkpoint import load_checkpoint, save_checkpoint
from cnnlab.io import read_yaml

FAST = ["--dataset", "digits", "--model", "lenet5", "--batch", "64", "--optimizer", "adam", "--lr", "3e-3",
        "--verbose", "2", "--threads", "1", "--no-plots"]


def one_line_error(code, err):
    assert code == 2, err
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in err, err
    return lines[0]


def test_train_flags_config_and_evaluate(cli, tmp_path):
    (tmp_path / "x.yaml").write_text("epochs: 3\nlabel_smoothing: 0.05\nseed: 7\n")
    code, out, err = cli("train", *FAST, "--config", "x.yaml", "--epochs", "1", "--label-smoothing", "0.1",
                         "--name", "a")
    assert code == 0, err
    assert "trainable" in out and "test_accuracy" in out
    cfg = read_yaml(tmp_path / "runs/classify/a/config.yaml")
    assert (cfg["epochs"], cfg["label_smoothing"], cfg["seed"]) == (1, 0.1, 7)  # flags override the file

    code, out, err = cli("evaluate", "runs/classify/a", "--json", "ev.json", "--per-class")
    assert code == 0, err
    ev = json.loads((tmp_path / "ev.json").read_text())
    assert ev["dataset"] == "digits" and ev["images"] == 360 and len(ev["confusion_matrix"]) == 10
    assert "accuracy" in out

    import cv2
    import numpy as np

    cv2.imwrite(str(tmp_path / "d.png"), np.zeros((16, 16, 3), np.uint8))
    code, out, err = cli("predict", "runs/classify/a", "d.png", "--topk", "2")
    assert code == 0, err
    assert "d.png" in out and out.count(",") >= 1


class InterruptAt(Callback):
    def on_epoch_end(self, trainer, epoch, logs):
        if epoch == 1:
            raise KeyboardInterrupt


def test_cli_resume_matches_uninterrupted(cli, tmp_path):
    opts = {"dataset": "digits", "model": "mnist_cnn", "epochs": 2, "batch": 64, "optimizer": "sgd",
            "lr": 0.05, "nesterov": True, "verbose": 0, "threads": 1, "plots": False, "project": "runs",
            "schedule": "onecycle", "augment": {"width_shift_range": 0.1}}
    full = cnnlab.train(opts, name="full")
    with pytest.raises(KeyboardInterrupt):
        cnnlab.train(opts, name="cut", callbacks=[InterruptAt()])
    code, out, err = cli("train", "--resume", "runs/classify/cut", "--verbose", "2")
    assert code == 0, err
    assert "resuming after epoch 1" in out
    a = load_checkpoint(full.run_dir / "weights/last.pt")["model"]
    b = load_checkpoint(tmp_path / "runs/classify/cut/weights/last.pt")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_bad_input_is_one_line_exit_2(cli, tmp_path):
    line = one_line_error(*_code_err(cli("train", "--model", "lenet6", "--dataset", "digits")))
    assert "lenet5" in line  # close match suggested
    line = one_line_error(*_code_err(cli("train", *FAST, "--optimizer", "adan")))
    assert "did you mean adam" in line
    assert not (tmp_path / "runs" / "classify").exists()  # refused before a run folder was made

    (tmp_path / "bad.yaml").write_text("epochs: 1\nlearning_rate: 0.1\n")
    line = one_line_error(*_code_err(cli("train", "--config", "bad.yaml")))
    assert "learning_rate" in line and "did you mean" in line
    line = one_line_error(*_code_err(cli("train", "--dataset", "digits", "--momentun", "0.5")))
    assert "momentum" in line

    # a real checkpoint, then a truncated copy of it
    code, _, err = cli("train", *FAST, "--epochs", "1", "--name", "ok", "--validation-split", "0")
    assert code == 0, err
    best = tmp_path / "runs/classify/ok/weights/best.pt"
    cut = tmp_path / "cut.pt"
    cut.write_bytes(best.read_bytes()[:500])
    line = one_line_error(*_code_err(cli("evaluate", str(cut))))
    assert "not a readable checkpoint" in line

    # weights of another architecture: as a warm start, and inside a checkpoint claiming another model
    line = one_line_error(*_code_err(cli("train", *FAST, "--model", "mnist_cnn", "--epochs", "1",
                                         "--weights", str(best))))
    assert "is for lenet5" in line
    ckpt = load_checkpoint(best)
    other = cnnlab.create_model("mnist_cnn", num_classes=10, in_chans=1, img_size=8)
    ckpt["model"] = other.state_dict()
    save_checkpoint(tmp_path / "mixed.pt", ckpt)
    line = one_line_error(*_code_err(cli("evaluate", "mixed.pt")))
    assert "is for lenet5" in line

    line = one_line_error(*_code_err(cli("predict", str(best), "missing.png")))
    assert "missing.png" in line
    line = one_line_error(*_code_err(cli("evaluate", "nowhere")))
    assert "not found" in line


def _code_err(result):
    code, _, err = result
    return code, err


def test_demo_runs_offline_and_reports_the_run_folder(cli, tmp_path):
    code, out, err = cli("demo", "--project", "tour", "--part", "classification")
    assert code == 0, err
    run = tmp_path / "tour" / "classify" / "demo"
    for f in ("config.yaml", "history.csv", "metrics.json", "weights/best.pt", "curves.png", "confusion.png"):
        assert (run / f).is_file() and str(run.relative_to(tmp_path) / f) in out.replace("\n", "")
    assert json.loads((run / "metrics.json").read_text())["test_accuracy"] > 0.9
    code, _, err = cli("demo", "--part", "no-such-part")
    assert code == 2 and "no demo part" in err


def test_demo_tour_has_classification_and_detection_parts():
    from cnnlab.demo import DEMO_PARTS

    titles = [t.lower() for t, _ in DEMO_PARTS]
    assert any(t.startswith("classification") for t in titles)
    assert any(t.startswith("detection") for t in titles)


def test_resume_after_a_mid_epoch_kill_is_bit_exact(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    opts = {"dataset": "digits", "model": "mnist_cnn", "epochs": 3, "batch": 64, "optimizer": "adamw",
            "lr": 0.01, "verbose": 0, "threads": 1, "plots": False, "schedule": "cosine", "warmup_epochs": 1,
            "ema": 0.9, "ema_warmup": 5, "augment": {"width_shift_range": 0.1, "horizontal_flip": True}}
    full = cnnlab.train(opts, name="full")
    with pytest.raises(KeyboardInterrupt):
        cnnlab.train(opts, name="cut", callbacks=[KillMidEpoch(2, 5)])
    assert load_checkpoint(tmp_path / "runs/classify/cut/weights/last.pt")["epoch"] == 1
    resumed = cnnlab.train(resume=tmp_path / "runs/classify/cut")
    a = load_checkpoint(full.run_dir / "weights/last.pt")
    b = load_checkpoint(resumed.run_dir / "weights/last.pt")
    for key in ("model", "ema"):
        assert all(torch.equal(a[key][k], b[key][k]) for k in a[key]), key
    assert [h["loss"] for h in a["history"]] == [h["loss"] for h in b["history"]]
    assert full.metrics["test_accuracy"] == resumed.metrics["test_accuracy"]
