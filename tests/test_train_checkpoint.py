"""Checkpoints: plain data (weights_only), RNG round trip, one-line errors for bad files."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from cnnlab.engine.checkpoint import (
    load_checkpoint,
    load_weights,
    model_from_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from cnnlab.errors import ModelError, UserError
from cnnlab.models import create_model


def ckpt_of(net, **extra):
    return {"model_spec": net.cnnlab_spec, "model": net.state_dict(), "ema": None, "epoch": 1,
            "rng": rng_state(), "classes": [str(i) for i in range(10)], **extra}


def test_rng_state_round_trip_through_weights_only(tmp_path):
    save_checkpoint(tmp_path / "c.pt", {"model_spec": {"name": "x"}, "model": {}, "rng": rng_state()})
    expected = (random.random(), np.random.rand(), torch.rand(3))
    set_rng_state(load_checkpoint(tmp_path / "c.pt")["rng"])  # restored via torch.load(weights_only=True)
    got = (random.random(), np.random.rand(), torch.rand(3))
    assert got[0] == expected[0] and got[1] == expected[1] and torch.equal(got[2], expected[2])


def test_model_round_trip(tmp_path):
    m = create_model("lenet5", num_classes=10, in_chans=1, img_size=8)
    save_checkpoint(tmp_path / "best.pt", ckpt_of(m))
    back = model_from_checkpoint(load_checkpoint(tmp_path / "best.pt"))
    x = torch.randn(2, 1, 8, 8)
    m.eval()
    assert torch.equal(back(x), m(x)) and not back.training


def test_other_architecture_is_one_line_model_error(tmp_path):
    lenet = create_model("lenet5", num_classes=10, in_chans=1, img_size=8)
    other = create_model("mnist_cnn", num_classes=10, in_chans=1, img_size=28)
    with pytest.raises(ModelError, match=r"checkpoint is for lenet5 \(10 classes, 1 channels, 8 px\)"):
        load_weights(other, lenet.state_dict(), lenet.cnnlab_spec)
    # spec says lenet5 but the weights are from something else (e.g. a hand-edited file)
    save_checkpoint(tmp_path / "x.pt", ckpt_of(lenet, model=other.state_dict()))
    with pytest.raises(ModelError) as e:
        model_from_checkpoint(load_checkpoint(tmp_path / "x.pt"), "x.pt")
    assert "\n" not in str(e.value) and "x.pt is for lenet5" in str(e.value)


def test_corrupt_and_foreign_files(tmp_path):
    m = create_model("lenet5", num_classes=10, in_chans=1, img_size=8)
    good = save_checkpoint(tmp_path / "good.pt", ckpt_of(m))
    cut = tmp_path / "cut.pt"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(UserError, match="not a readable checkpoint"):
        load_checkpoint(cut)
    torch.save({"weights": torch.ones(1)}, tmp_path / "foreign.pt")
    with pytest.raises(UserError, match="not a cnnlab classification checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt")
    with pytest.raises(UserError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")


# --- issue 12: malformed fields are one UserError line, never a ValueError/TypeError ------------------

def _saved(tmp_path, ckpt, name="c.pt"):
    path = tmp_path / name
    torch.save(ckpt, path)
    return path


@pytest.mark.parametrize("edit, match", [
    ({"version": "1"}, r"'version' must be a positive integer, found str '1'"),
    ({"version": "abc"}, r"'version' must be a positive integer, found str 'abc'"),
    ({"version": 1.0}, r"'version' must be a positive integer, found float 1\.0"),
    ({"version": [1]}, r"'version' must be a positive integer, found list"),
    ({"version": True}, r"'version' must be a positive integer, found bool"),
    ({"version": 0}, r"'version' must be a positive integer, found int 0"),
    ({"version": 2**70}, r"checkpoint version 1180591620717411303424 is newer"),
    ({"model": [torch.ones(1)]}, r"'model' must be a state dict \(names -> tensors\), found list"),
    ({"model": {"w": 1.0}}, r"'model' must be a state dict"),
    ({"model": {3: torch.ones(1)}}, r"'model' must be a state dict"),
    ({"ema": "x"}, r"'ema' must be a state dict \(names -> tensors\) or null"),
    ({"model_spec": "lenet5"}, r"'model_spec' must be a mapping, found str"),
    ({"model_spec": {"name": 5}}, r"'model_spec.name' must be a model name, found int 5"),
    ({"model_spec": {"name": "lenet5", "num_classes": "10"}}, r"'model_spec.num_classes' must be a positive"),
    ({"model_spec": {"name": "lenet5", "num_classes": 0}}, r"'model_spec.num_classes' must be a positive"),
    ({"model_spec": {"name": "lenet5", "img_size": 8.5}}, r"'model_spec.img_size' must be"),
    ({"model_spec": {"name": "lenet5", "kwargs": [1]}}, r"'model_spec.kwargs' must be a mapping"),
    ({"classes": "abc"}, r"'classes' must be a list of class names, found str"),
    ({"classes": [0, 1]}, r"'classes' must be a list of class names"),
    ({"classes": ["a", "b"]}, r"2 class names for a model with 10 classes"),
    ({"preprocess": [1]}, r"'preprocess' must be a mapping"),
    ({"preprocess": {"mean": ["x"]}}, r"'preprocess.mean' must be a list of numbers"),
    ({"preprocess": {"img_size": "8"}}, r"'preprocess.img_size' must be a positive integer"),
    ({"preprocess": {"in_chans": 0}}, r"'preprocess.in_chans' must be a positive integer"),
    ({"epoch": "3"}, r"'epoch' must be a non-negative integer, found str '3'"),
    ({"epoch": 2.5}, r"'epoch' must be a non-negative integer, found float 2\.5"),
    ({"epoch": -1}, r"'epoch' must be a non-negative integer"),
    ({"optimizer": "adam"}, r"'optimizer' must be an optimizer state dict"),
    ({"optimizer": {"state": {}, "param_groups": [1]}}, r"'optimizer' must be an optimizer state dict"),
    ({"scheduler": []}, r"'scheduler' must be a mapping"),
    ({"config": "x"}, r"'config' must be a mapping or null"),
    ({"metrics": [1]}, r"'metrics' must be a mapping or null"),
    ({"history": {"a": 1}}, r"'history' must be a list of mappings"),
    ({"callbacks": {"ModelCheckpoint": 3}}, r"'callbacks' must be a mapping of mappings"),
    ({"train_time": "1s"}, r"'train_time' must be a non-negative number"),
    ({"phase": torch.ones(2)}, r"'phase' must be 1 or 2, found Tensor float32 \(2,\)"),
    ({"rng": [1]}, r"'rng' must be a mapping or null"),
    ({"rng": {"python": (3, (1, 2), None)}}, r"'rng.python' must be a Python random state"),
    ({"rng": {"numpy": {"name": "MT19937", "keys": torch.zeros(3, dtype=torch.int64), "pos": 0,
                        "has_gauss": 0, "gauss": 0.0}}}, r"'rng.numpy' must be a NumPy MT19937 state"),
    ({"rng": {"torch": torch.zeros(4, dtype=torch.uint8)}}, r"'rng.torch' must be a torch CPU generator state"),
])
def test_malformed_classification_checkpoint_is_one_line(tmp_path, edit, match):
    m = create_model("lenet5", num_classes=10, in_chans=1, img_size=8)
    ckpt = {"format": "cnnlab.classify", "version": 1, **ckpt_of(m), "optimizer": {"state": {}, "param_groups": []},
            "scheduler": {}}
    for key, value in edit.items():
        ckpt[key] = value
    path = _saved(tmp_path, ckpt)
    with pytest.raises(UserError, match=match) as e:
        load_checkpoint(path)
    assert str(e.value).startswith(f"{path}: ") and "\n" not in str(e.value)


def test_a_real_checkpoint_passes_every_check(tmp_path):
    import cnnlab
    from cnnlab.engine.checkpoint import check_checkpoint

    run = cnnlab.train(dataset="digits", model="lenet5", epochs=1, batch=128, verbose=0, threads=1, plots=False,
                       project=tmp_path, ema=0.9)
    for name in ("last.pt", "best.pt"):
        ckpt = load_checkpoint(run.run_dir / "weights" / name)
        check_checkpoint(ckpt, name, resumable=True)
    ckpt["version"] = "1"
    save_checkpoint(tmp_path / "edited.pt", ckpt)  # save_checkpoint's defaults do not hide the edit
    with pytest.raises(UserError, match="'version' must be a positive integer"):
        load_checkpoint(tmp_path / "edited.pt")


def test_checkpoint_without_training_state_loads_but_does_not_resume(tmp_path):
    from cnnlab.engine.checkpoint import check_checkpoint

    m = create_model("lenet5", num_classes=10, in_chans=1, img_size=8)
    path = save_checkpoint(tmp_path / "imported.pt", ckpt_of(m, optimizer=None, scheduler=None, rng=None))
    ckpt = load_checkpoint(path)  # an imported model (keras-import writes these) is a valid checkpoint
    with pytest.raises(UserError, match=r"not a resumable checkpoint \(it holds no optimizer state\); start a "
                                        r"new run from its weights with --weights"):
        check_checkpoint(ckpt, path, resumable=True)
    ckpt.update(optimizer={"state": {}, "param_groups": []}, scheduler={}, history=None)
    with pytest.raises(UserError, match="'history' must be a list of mappings, found NoneType None"):
        check_checkpoint(ckpt, path, resumable=True)


def test_cli_reports_a_malformed_checkpoint_in_one_line(tmp_path, cli):
    m = create_model("lenet5", num_classes=10, in_chans=1, img_size=8)
    torch.save({"format": "cnnlab.classify", "version": "one", **ckpt_of(m)}, tmp_path / "v.pt")
    for args in (("evaluate", "v.pt", "--dataset", "digits"), ("predict", "v.pt", "x.png"), ("export", "v.pt")):
        code, _, err = cli(*args)
        assert code == 2 and err.strip().count("\n") == 0 and "Traceback" not in err, (args, err)
        assert "'version' must be a positive integer, found str 'one'" in err, err


def _detector_file(tmp_path):
    from _cfgs import NET, yolo_head
    from cnnlab.darknet.cfg import parse_cfg_text
    from cnnlab.darknet.model import DarknetModel
    from cnnlab.detect.checkpoint import save_detector_checkpoint

    model = DarknetModel(parse_cfg_text(NET + yolo_head()))
    return save_detector_checkpoint(tmp_path / "det.pt", model, names=["a", "b"])


@pytest.mark.parametrize("edit, match", [
    ({"version": "2"}, r"'version' must be a positive integer, found str '2'"),
    ({"version": 3}, r"checkpoint version 3 is newer"),
    ({"cfg": 5}, r"'cfg' must be the Darknet cfg text, found int 5"),
    ({"cfg": None}, r"'cfg' must be the Darknet cfg text"),
    ({"model": "weights"}, r"'model' must be a state dict"),
    ({"model": {}}, r"weights do not match its cfg \(\d+ missing"),
    ({"ema": {"0.conv.weight": torch.zeros(1)}}, r"weights do not match its cfg"),
    ({"names": "ab"}, r"'names' must be a list of class names"),
    ({"imgsz": 64}, r"'imgsz' must be \[width, height\] in pixels"),
    ({"imgsz": [64, "64"]}, r"'imgsz' must be \[width, height\]"),
    ({"letterbox": "yes"}, r"'letterbox' must be true or false"),
    ({"epoch": "1"}, r"'epoch' must be a non-negative integer"),
    ({"format": ["cnnlab.detect"]}, r"not a cnnlab detection checkpoint \(format list\)"),
])
def test_malformed_detection_checkpoint_is_one_line(tmp_path, edit, match):
    from cnnlab.detect.checkpoint import load_detector_checkpoint
    from cnnlab.io import torch_load_safe

    path = _detector_file(tmp_path)
    model, names, imgsz, _ = load_detector_checkpoint(path)
    assert names == ["a", "b"] and imgsz == (64, 64)
    ckpt = torch_load_safe(path)
    for key, value in edit.items():
        ckpt[key] = value
    torch.save(ckpt, path)
    with pytest.raises(UserError, match=match) as e:
        load_detector_checkpoint(path)
    assert str(e.value).startswith(f"{path}: ") and "\n" not in str(e.value)


def test_source_peek_of_an_unhashable_format(tmp_path):
    from cnnlab.sources.kinds import checkpoint_task

    path = _saved(tmp_path, {"format": ["cnnlab.classify"], "model": {}})
    with pytest.raises(UserError, match=r"not a cnnlab checkpoint \(format a list"):
        checkpoint_task(path)


def test_garbage_file_message_says_why_in_one_line(tmp_path):
    (tmp_path / "g.pt").write_bytes(b"garbage, not a checkpoint")
    with pytest.raises(UserError) as e:
        load_checkpoint(tmp_path / "g.pt")
    assert "refused to load (not a plain weights file: Unsupported operand" in str(e.value)
    assert "PyTorch 2.6" not in str(e.value) and "\n" not in str(e.value)
    for raw in (b"\x8aj", b"\\G", b"\x80\x02}q\x00(X\x01\x00\x00\x00aq\x01G"):  # struct.error inside torch
        (tmp_path / "s.pt").write_bytes(raw)
        with pytest.raises(UserError):
            load_checkpoint(tmp_path / "s.pt")


# --- issue 12: a run killed while writing a checkpoint -------------------------------------------------

FAST = {"dataset": "digits", "model": "lenet5", "batch": 128, "verbose": 0, "threads": 1, "plots": False}


def test_resume_removes_unfinished_checkpoint_writes(tmp_path):
    import cnnlab

    run = cnnlab.train(FAST, epochs=1, project=tmp_path, name="r").run_dir
    weights = run / "weights"
    leftovers = [weights / ".last.pt.k3j2_x.tmp", weights / ".best.pt.a1b2c3.tmp", run / ".history.json.zz.tmp"]
    for f in leftovers:
        f.write_bytes(b"PK\x03\x04 half written")
    resumed = cnnlab.train(resume=run, epochs=2)
    assert resumed.metrics["epochs"] == 2
    assert not any(f.exists() for f in leftovers)
    assert not list(run.rglob("*.tmp"))


def test_resume_restores_best_when_killed_while_writing_it(tmp_path):
    import cnnlab
    from cnnlab.config.classify import TrainConfig
    from cnnlab.engine.run import load_resume

    run = cnnlab.train(FAST, epochs=1, project=tmp_path, name="r").run_dir
    last, best = run / "weights" / "last.pt", run / "weights" / "best.pt"
    assert load_checkpoint(last)["callbacks"]["ModelCheckpoint"]["best_epoch"] == 1
    best.unlink()  # killed after last.pt of epoch 1 and before best.pt: an older (here: no) best
    (run / "weights" / ".best.pt.x1.tmp").write_bytes(b"PK")
    load_resume(run, TrainConfig, {"epochs": 2}, "cnnlab.classify")
    assert best.read_bytes() == last.read_bytes() and not list(run.rglob("*.tmp"))


KILL_DURING_FIRST_CHECKPOINT = """
import os, sys
import torch
import cnnlab

def dying_save(obj, f, *args, **kwargs):  # half a zip, then SIGKILL-like death (no finally blocks run)
    out = f if hasattr(f, "write") else open(f, "wb")  # a path or an open file, as torch.save takes
    out.write(b"PK\\x03\\x04" + bytes(100))
    out.flush()
    os._exit(137)

torch.save = dying_save
cnnlab.train(dataset="digits", model="lenet5", epochs=2, batch=128, verbose=0, threads=1, plots=False,
             project=sys.argv[1], name="killed")
"""


def test_run_killed_during_its_first_checkpoint(tmp_path, cli):
    import os
    import subprocess
    import sys
    from pathlib import Path

    src = str(Path(__file__).resolve().parents[1] / "src")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", KILL_DURING_FIRST_CHECKPOINT, str(tmp_path / "runs")], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 137, proc.stderr
    run = tmp_path / "runs" / "classify" / "killed"
    left = list((run / "weights").iterdir())
    assert len(left) == 1 and left[0].name.startswith(".last.pt.") and left[0].suffix == ".tmp"

    code, out, err = cli("train", "--resume", str(run))
    assert code == 2 and err.strip().count("\n") == 0 and "Traceback" not in err, err
    assert "no epoch was completed" in err and "removed 1 unfinished file(s)" in err
    assert f"start it again with: cnnlab train --config {run / 'config.yaml'}" in err
    assert not left[0].exists()
    # the suggested command works (with one epoch, to stay fast)
    code, out, err = cli("train", "--config", str(run / "config.yaml"), "--epochs", "1")
    assert code == 0, err
    assert (tmp_path / "runs" / "classify" / "killed2" / "weights" / "last.pt").is_file()


def test_resume_of_a_run_without_weights_or_config(tmp_path):
    from cnnlab.config.detect import DetectTrainConfig
    from cnnlab.engine.run import load_resume

    run = tmp_path / "runs" / "detect" / "exp"
    (run / "weights").mkdir(parents=True)
    (run / "config.yaml").write_text("data: data.yaml\n")
    with pytest.raises(UserError, match=r"no epoch was completed \(no weights/last.pt\); start it again with: "
                                        r"cnnlab detect-train --config .*config.yaml$"):
        load_resume(run, DetectTrainConfig, {}, "cnnlab.detect")
    (run / "config.yaml").unlink()
    with pytest.raises(UserError, match="it has no config.yaml either"):
        load_resume(run, DetectTrainConfig, {}, "cnnlab.detect")


def test_resume_with_an_optimizer_of_other_groups_is_one_line(tmp_path, cli):
    import cnnlab
    from cnnlab.io import torch_load_safe, torch_save_atomic

    run = cnnlab.train(FAST, epochs=1, project=tmp_path, name="r").run_dir
    last = run / "weights" / "last.pt"
    ckpt = torch_load_safe(last)
    groups = ckpt["optimizer"]["param_groups"]
    sizes = [len(g["params"]) for g in groups]
    merged = [p for g in groups for p in g["params"]]
    ckpt["optimizer"]["param_groups"] = [{**groups[0], "params": merged[:2]}, {**groups[0], "params": merged[2:]}]
    torch_save_atomic(ckpt, last)
    code, out, err = cli("train", "--resume", str(run), "--epochs", "2")
    assert code == 2 and err.strip().count("\n") == 0 and "Traceback" not in err, err
    assert f"parameter groups of [2, {len(merged) - 2}] tensors, this run's has {sizes}" in err


def test_resume_of_a_folder_another_process_trains_is_refused(tmp_path, cli):
    import cnnlab
    from cnnlab.engine.runlock import run_lock

    run = cnnlab.train(FAST, epochs=1, project=tmp_path, name="r").run_dir
    inflight = run / "weights" / ".last.pt.inflight.tmp"          # the other process's write in progress
    inflight.write_bytes(b"PK")
    with run_lock(run):                                             # held by "the other process"
        code, out, err = cli("train", "--resume", str(run), "--epochs", "2")
    assert code == 2 and err.strip().count("\n") == 0, err
    assert "is being trained by another process (pid " in err
    assert inflight.exists()                                        # its unfinished write was left alone
    assert cnnlab.train(resume=run, epochs=2).metrics["epochs"] == 2   # once released, resume proceeds
    assert not inflight.exists()
