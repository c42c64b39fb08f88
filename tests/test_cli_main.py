"""The `cnnlab` command itself: one-line usage errors with every typer/click, a light start, and options that
mean the same thing in every command (one spelling, one short name, one default)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import typer

from cnnlab.cli.main import app

SRC = Path(__file__).resolve().parents[1] / "src"


def _script() -> str:
    beside = Path(sys.executable).parent / "cnnlab"
    found = str(beside) if beside.is_file() else shutil.which("cnnlab")
    if found is None:
        pytest.skip("the cnnlab console script is not installed")
    return found


def _env() -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")])))
    env.update(NO_COLOR="1", COLUMNS="100")
    return env


def _run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([_script(), *args], capture_output=True, text=True, env=_env(), cwd=cwd, timeout=120)


@pytest.mark.parametrize("args, words", [
    (["trian"], "no such command 'trian'"),
    (["train", "--epochs", "abc"], "--epochs"),
    (["evaluate", "--bogus", "x"], "no such option: --bogus"),
    (["detect"], "missing argument"),
    (["evaluate", "RUN", "--tta", "true"], "unexpected extra argument"),
    (["evaluate", "RUN", "--device", "gpu"], "unknown device 'gpu'"),
])
def test_usage_errors_of_the_installed_script_are_one_line_exit_2(args, words, tmp_path):
    r = _run(*args, cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].strip(), r.stderr
    assert lines[0].startswith("error: ") and words in lines[0].lower(), r.stderr
    assert "Traceback" not in r.stderr + r.stdout


def test_no_command_shows_the_help_and_help_lists_every_command(tmp_path):
    r = _run(cwd=tmp_path)
    assert r.returncode == 0 and "Traceback" not in r.stderr
    assert "Usage: cnnlab" in r.stdout and "detect-eval" in r.stdout
    r = _run("visualize", cwd=tmp_path)
    assert r.returncode == 0 and "gradcam" in r.stdout


def test_the_cli_starts_without_torch():
    code = "import sys, cnnlab.cli.main; print('torch' in sys.modules, 'cv2' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env(), timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["False", "False"]


def _commands() -> dict:
    root = typer.main.get_command(app)
    found = {}

    def walk(cmd, path):
        subs = getattr(cmd, "commands", None) or {}
        if cmd is not root:
            found[path] = cmd
        for name, sub in subs.items():
            walk(sub, f"{path} {name}".strip())

    walk(root, "")
    return found


def _options(cmd):
    return [p for p in cmd.params if getattr(p, "param_type_name", "") == "option"]


COMMANDS = _commands()


def test_every_command_has_help_and_flags_show_as_flags(cli):
    assert {"train", "evaluate", "detect", "detect-eval", "stream", "sweep", "export"} <= set(COMMANDS)
    for path in COMMANDS:
        code, out, err = cli(*path.split(), "--help")
        assert code == 0, (path, err)
        assert "<bool>" not in out and "BOOLEAN" not in out, path


SHORT = {"-b": "--batch", "-o": "--output", "-m": "--model", "-d": "--dataset", "-c": "--config",
         "-q": "--quiet", "-i": "--input", "-e": "--epochs", "-h": "--help"}


def test_one_meaning_per_option():
    for path, cmd in COMMANDS.items():
        for p in _options(cmd):
            longs = [o for o in p.opts if o.startswith("--")]
            for short, long in SHORT.items():
                if short in p.opts:
                    assert long in longs, f"{path}: {short} is {longs}, everywhere else {long}"
            assert not {"--out", "--output-dir", "--markdown", "--outdir"} & set(longs), f"{path}: {longs}"
            if "--device" in longs and p.default is not None:  # None: the run config's default (auto)
                assert p.default == "auto", f"{path}: --device defaults to {p.default!r}"
            if "--resume" in longs:
                assert not p.is_flag, f"{path}: --resume takes a run folder"
            if "--name" in longs and p.default is not None:  # None: compare names the folder after its spec
                assert p.default == "exp", f"{path}: --name defaults to {p.default!r}"


def test_detector_commands_share_one_option_block():
    from cnnlab.cli import detect_options as opt

    block = {"--cfg": opt.CFG, "--weights": opt.WEIGHTS, "--model": opt.MODEL, "--names": opt.NAMES,
             "--backend": opt.BACKEND, "--device": opt.DEVICE}
    for path in ("detect", "stream", "detect-eval", "sweep"):
        by_name = {o: p for p in _options(COMMANDS[path]) for o in p.opts}
        for name, info in block.items():
            p = by_name[name]
            assert p.default == info.default and p.help == info.help, (path, name)
    thresholds = {path: {o: p.default for p in _options(COMMANDS[path]) for o in p.opts if o in ("--conf", "--iou")}
                  for path in ("detect", "stream", "detect-eval", "sweep")}
    assert thresholds["detect"] == thresholds["stream"] == {"--conf": 0.25, "--iou": 0.45}
    assert thresholds["detect-eval"] == thresholds["sweep"] == {"--conf": 0.001, "--iou": 0.6}


def test_device_specs():
    from cnnlab.devices import check_device_spec, resolve_device, runtime_device
    from cnnlab.errors import UserError

    assert [check_device_spec(s) for s in ("AUTO", "cpu", "cuda", "cuda:1", "0", "mps")] == \
        ["auto", "cpu", "cuda", "cuda:1", "0", "mps"]
    for bad in ("gpu", "cuda:x", "", "cpu0"):
        with pytest.raises(UserError, match="unknown device"):
            check_device_spec(bad)
    import torch

    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    assert runtime_device("auto", "opencv") == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="CUDA is not available"):
            resolve_device("cuda:0")
