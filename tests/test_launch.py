"""`cnnlab train --nproc N / --devices 0,1`: the plan, the command torchrun gets back, one-line errors,
and (slow) a real 2-process run started from the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer

from cnnlab.cli.main import app
from cnnlab.cli.schema import collect
from cnnlab.config import DetectTrainConfig, TrainConfig
from cnnlab.engine.launch import option_args, plan, torchrun_command
from cnnlab.errors import UserError

SRC = Path(__file__).resolve().parents[1] / "src"


def test_plan():
    assert plan(None, "0,1") == (2, [0, 1])
    assert plan(3, None) == (3, None)
    assert plan(None, None) == (1, None)
    assert plan(1, "2") == (1, [2])
    for nproc, devices, match in [(None, "a,b", "device indices"), (None, "0,0", "twice"), (0, None, ">= 1"),
                                  (3, "0,1", "does not match")]:
        with pytest.raises(UserError, match=match):
            plan(nproc, devices)


def _parsed(command: str, cls, args: list[str]) -> dict:
    """The config options the CLI command reads from ``args`` (parsed, not run)."""
    root = typer.main.get_command(app)
    ctx = root.make_context("cnnlab", [command, *args])
    rest = [*(getattr(ctx, "_protected_args", None) or getattr(ctx, "protected_args", [])), *ctx.args]
    name, cmd, rest = root.resolve_command(ctx, rest)
    sub = cmd.make_context(name, rest, parent=ctx)
    return collect(cls, {k: v for k, v in sub.params.items() if k in cls.field_names()})


@pytest.mark.parametrize("command,cls", [("train", TrainConfig), ("detect-train", DetectTrainConfig)])
def test_the_launched_command_gets_the_same_options_back(command, cls):
    options = {"epochs": 3, "lr": 0.05, "amp": False, "channels_last": True, "betas": [0.9, 0.99],
               "monitor": "val_loss", "name": "big run", "sync_bn": True, "device": "cuda", "grad_clip": None}
    if cls is TrainConfig:
        options.update(augment={"horizontal_flip": True, "width_shift_range": 0.1}, model_kwargs={"drop_rate": 0.0},
                       boundaries=[10.0, 20.0], min_lr=None)
    args = option_args(options)
    flags = [a for a in args if "=" not in a]
    extra = [a for a in args if "=" in a]   # None: `name=null`, which `train` reads as an extra argument
    parsed = _parsed(command, cls, flags)
    if cls is TrainConfig:
        from cnnlab.config.schema import parse_cli_overrides

        parsed.update(parse_cli_overrides(extra, TrainConfig))
        assert parsed == options
    else:
        assert parsed == {k: v for k, v in options.items() if v is not None}


def test_torchrun_command_hides_cnnlab_options_from_torchrun():
    from torch.distributed.run import get_args_parser

    cmd = torchrun_command(["train", "--monitor", "loss", "--nproc-per-node", "7"], 2)
    assert cmd[:3] == [sys.executable, "-m", "torch.distributed.run"]
    args = get_args_parser().parse_args(cmd[3:])
    assert args.nproc_per_node == "2" and args.module and args.training_script == "cnnlab"
    assert args.training_script_args == ["train", "--monitor", "loss", "--nproc-per-node", "7"]


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="checks the message of a CPU-only machine")
def test_devices_without_cuda_is_one_line_before_anything_starts(cli):
    code, out, err = cli("train", "--dataset", "digits", "--devices", "0,1", "--epochs", "1")
    assert code == 2 and "CUDA is not available" in err and len(err.strip().splitlines()) == 1


@pytest.mark.slow
def test_cli_nproc_2_trains_in_two_processes(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore",
           "CUDA_VISIBLE_DEVICES": ""}
    cmd = [sys.executable, "-m", "cnnlab", "train", "--nproc", "2", "--device", "cpu", "--dataset", "digits",
           "--subset", "128", "--model", "mnist_cnn", "--epochs", "1", "--batch", "32", "--threads", "1",
           "--no-plots", "--verbose", "2", "--monitor", "val_loss", "--name", "two"]
    p = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    assert p.returncode == 0, p.stderr[-3000:]
    assert p.stdout.count("distributed: 2 processes, global batch 32") == 1   # rank 0 alone prints
    assert p.stdout.count("results (runs/classify/two)") == 1
    assert [d.name for d in (tmp_path / "runs/classify").iterdir()] == ["two"]
    again = subprocess.run([*cmd[:4], "--resume", "runs/classify/two", "--epochs", "2"], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=240)
    assert again.returncode == 2
    assert "trained on 2 process(es), not 1: resume it with --nproc 2" in again.stderr


def test_mistakes_are_one_line_before_torchrun_starts(cli, tmp_path, monkeypatch):
    import cnnlab.engine.launch as launch

    monkeypatch.setattr(launch.subprocess, "run", lambda *a, **k: pytest.fail("torchrun started"))
    code, _, err = cli("train", "--dataset", "nosuch", "--nproc", "2")
    assert code == 2 and err.count("\n") == 1 and "unknown dataset 'nosuch'" in err
    code, _, err = cli("detect-train", "missing.yaml", "--nproc", "2")
    assert code == 2 and "dataset not found: missing.yaml" in err
    code, _, err = cli("train", "--dataset", "digits", "--subset", "64", "--model", "mnist_cnn", "--epochs", "1",
                       "--verbose", "0", "--no-plots", "--threads", "1")
    assert code == 0
    code, _, err = cli("train", "--resume", "runs/classify/exp", "--epochs", "2", "--nproc", "2")
    assert code == 2 and err.count("\n") == 1
    assert "trained on 1 process(es), not 2: resume it in one process (no torchrun, no --nproc)" in err
