"""The one engine and its contracts: public signatures, generated CLI options, progress when piped,
early stopping / time budget / TensorBoard for detection as for classification."""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import io
import json

import pytest

import cnnlab
from cnnlab.config import DetectTrainConfig, TrainConfig


@pytest.mark.parametrize(("fn", "cls"), [("train", TrainConfig), ("train_detector", DetectTrainConfig)])
def test_entry_points_are_functions_with_every_option_in_their_signature(fn, cls):
    f = getattr(cnnlab, fn)
    assert inspect.isfunction(f)
    params = inspect.signature(f).parameters
    for field in dataclasses.fields(cls):
        if field.name == "data":
            continue
        assert field.name in params, field.name
        assert params[field.name].default == cls.default_of(field.name)
    with pytest.raises(cnnlab.UserError, match="did you mean momentum"):
        f(momentun=0.5)


@pytest.mark.parametrize(("command", "cls"), [("train", TrainConfig), ("detect-train", DetectTrainConfig)])
def test_help_lists_every_option_with_its_default(cli, command, cls):
    import os

    os.environ["COLUMNS"] = "250"
    code, out, _ = cli(command, "--help")
    assert code == 0
    for field in dataclasses.fields(cls):
        if field.name == "data":
            continue
        flag = "--" + field.name.replace("_", "-")
        assert flag in out, flag
    assert "[default: 10]" in out or "[default: 30]" in out
    assert "<bool>" not in out


def test_progress_prints_lines_when_piped(monkeypatch):
    from cnnlab.engine import progress

    monkeypatch.setattr(progress, "interactive", lambda: False)
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), progress.Progress("epoch 1/2", 3, every=0.0) as bar:
        for i in range(3):
            bar.advance(info=f"loss {i}")
    lines = buf.getvalue().splitlines()
    assert lines == ["epoch 1/2: 1/3 batches, 0s, about 0s left, loss 0",
                     "epoch 1/2: 2/3 batches, 0s, about 0s left, loss 1",
                     "epoch 1/2: 3/3 batches, 0s, about 0s left, loss 2"]


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    from cnnlab.detect.train.scenes import write_scene_dataset

    return write_scene_dataset(tmp_path_factory.mktemp("scenes") / "data", n_train=8, n_val=4, size=64, seed=1)


TINY = {"model": "yolov3-tiny", "width_mult": 0.125, "imgsz": 64, "batch": 4, "optimizer": "adam",
        "verbose": 0, "plots": False, "ema_warmup": 5}


def test_detection_gets_early_stopping_and_the_time_budget(scenes, tmp_path):
    res = cnnlab.train_detector(scenes, project=tmp_path, name="es", epochs=8, lr=1e-9, patience=1,
                                monitor="val_loss", min_delta=10.0, **TINY)
    assert len(res.history) == 2                   # no improvement of 10 in val_loss: stops after 1 + 1
    res = cnnlab.train_detector(scenes, project=tmp_path, name="tb", epochs=5, lr=1e-3, time=1e-9, **TINY)
    assert len(res.history) == 1                   # the budget is spent by the first epoch
    metrics = json.loads((res.run_dir / "metrics.json").read_text())
    assert metrics["epochs_done"] == 1 and metrics["train_cpu_seconds"] > 0


def test_detection_logs_to_tensorboard(scenes, tmp_path):
    pytest.importorskip("tensorboard")
    res = cnnlab.train_detector(scenes, project=tmp_path, name="tb", epochs=1, tensorboard=True, **TINY)
    assert list((res.run_dir / "tensorboard").glob("events.*"))


def test_detection_trains_channels_last_and_logs_parts_that_add_up(scenes, tmp_path):
    res = cnnlab.train_detector(scenes, project=tmp_path, name="cl", epochs=1, channels_last=True, **TINY)
    row = res.history[0]
    assert row["loss"] == pytest.approx(row["box_loss"] + row["obj_loss"] + row["cls_loss"], rel=1e-5)
    assert row["val_loss"] == pytest.approx(row["val_box_loss"] + row["val_obj_loss"] + row["val_cls_loss"])
    assert 0.0 <= row["mAP50"] <= 1.0 and "fitness" in row


def test_a_detection_run_config_trains_again(scenes, tmp_path):
    first = cnnlab.train_detector(scenes, project=tmp_path, name="a", epochs=1, **TINY)
    again = cnnlab.train_detector(config=first.run_dir / "config.yaml", name="b", exist_ok=False)
    assert again.run_dir.name == "b" and again.history[0]["loss"] == first.history[0]["loss"]
