"""Issue 16: small commands are fast (listings import no torch/timm once their name caches exist), the
default benchmark finishes in seconds and flags unstable cells, the demo has a quick tour with an
overall ETA and the full detection tour behind --full."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import cnnlab

SRC = Path(cnnlab.__file__).resolve().parents[1]


def _cli_in_subprocess(args: list[str], cache: Path) -> tuple[str, dict[str, bool], float]:
    code = ("import sys, time; t = time.perf_counter(); from cnnlab.cli.main import main; "
            f"rc = main({args!r}); "
            "print('\\n@@', rc, 'torch' in sys.modules, 'timm' in sys.modules, time.perf_counter() - t)")
    env = {**os.environ, "PYTHONPATH": str(SRC), "XDG_CACHE_HOME": str(cache)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    rc, torch_, timm_, seconds = out.stdout.rsplit("@@", 1)[1].split()
    assert rc == "0", out.stdout + out.stderr
    return out.stdout, {"torch": torch_ == "True", "timm": timm_ == "True"}, float(seconds)


@pytest.mark.parametrize("args", [["models"], ["models", "timm/*resnet*"], ["models", "--task", "detect"],
                                  ["datasets"]])
def test_listings_import_no_torch_once_cached(args, tmp_path):
    """`cnnlab models` took 4 s, `models 'timm/*resnet*'` 12 s, `datasets` 6 s: torch and timm were
    imported to list names. The second call reads the caches and imports neither."""
    _cli_in_subprocess(args, tmp_path)  # first call: fills ~/.cache/cnnlab (models table, timm names)
    out, imported, seconds = _cli_in_subprocess(args, tmp_path)
    assert not imported["torch"] and not imported["timm"], imported
    if args == ["models"]:
        assert "lenet5" in out and "resnet18_cifar" in out
    if args[1:2] == ["timm/*resnet*"]:
        assert "timm/resnet18" in out
    if args == ["datasets"]:
        assert "mnist" in out and "cifar10" in out


def test_models_listing_reads_its_cache(tmp_path, monkeypatch):
    from cnnlab.models import registry

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    rows = registry.cached_table_rows()
    path = tmp_path / "cnnlab" / f"models-{registry._sources_key()}.json"
    assert path.is_file() and json.loads(path.read_text()) == rows
    assert {"name", "task", "family", "input", "aliases", "description"} <= set(rows[0])
    path.write_text(json.dumps([{**rows[0], "name": "only_from_the_cache"}]))
    assert [r["name"] for r in registry.cached_table_rows()] == ["only_from_the_cache"]
    path.write_text("not json")  # a damaged cache is rebuilt
    assert len(registry.cached_table_rows()) == len(rows)


# ------------------------------------------------------------------------------------------ benchmark
def test_timing_flags_noisy_cells():
    from cnnlab.deploy.timing import Timing

    steady = Timing(np.full(50, 0.010) + np.linspace(0, 0.0005, 50), batch=1)
    assert steady.cv < 0.05 and not steady.noisy
    spiky = Timing(np.r_[np.full(49, 0.010), 4.0], batch=1)  # one call 400x slower (a busy machine)
    assert spiky.noisy and spiky.to_dict()["noisy"] is True
    tail = Timing(np.r_[np.full(95, 0.010), np.full(5, 0.05)], batch=1)  # p99 5x the median
    assert tail.noisy


def test_default_benchmark_is_quick_and_reports_noise(tmp_path, monkeypatch):
    from cnnlab.deploy import benchmark as bench
    from cnnlab.deploy.timing import Timing

    assert bench.DEFAULT_RUNTIMES == ("torch", "onnxruntime")  # no torch.compile, no INT8 calibration
    start = time.perf_counter()
    res = bench.benchmark("lenet5", batch="1,8", threads="1", iters=5)
    assert time.perf_counter() - start < 60
    assert [r["runtime"] for r in res.rows] == ["torch", "torch", "onnxruntime", "onnxruntime"]
    assert all(r["status"] == "ok" and r["cv"] is not None and r["noisy"] in (True, False) for r in res.rows)
    # a noisy cell is marked in the table and explained under it
    monkeypatch.setattr(bench, "measure", lambda *a, **k: Timing(np.r_[np.full(19, 0.001), 0.4], 1))
    noisy = bench.benchmark("lenet5", batch="1", threads="1", runtimes="torch")
    assert noisy.rows[0]["status"] == "ok" and noisy.rows[0]["noisy"] is True
    md = noisy.markdown()
    assert "| ok (noisy) |" in md and "1 noisy cell(s)" in md and "| cv |" in md


def test_benchmark_progress_when_piped(monkeypatch, capsys):
    from cnnlab.engine import progress

    monkeypatch.setattr(progress, "interactive", lambda: False)
    with progress.Progress("benchmark", 2, every=0.0, unit="cells") as bar:
        bar.note("torch batch 1 threads 1")
        bar.advance()
        bar.advance()
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("benchmark: 1/2 cells, 0s, about 0s left, torch batch 1 threads 1")


# ------------------------------------------------------------------------------------------ demo
def test_demo_quick_by_default_full_behind_a_flag(monkeypatch, tmp_path, capsys):
    import cnnlab.demo as demo
    import cnnlab.detect.train.demo as det_demo

    calls = []
    monkeypatch.setattr(det_demo, "detection_demo", lambda project, say, **kw: calls.append(kw) or {})
    part = "Detection"
    demo.demo(tmp_path, parts=[part])
    demo.demo(tmp_path, parts=[part], full=True)
    assert calls == [det_demo.QUICK, {}]
    out = capsys.readouterr().out
    assert "tour: 1 part(s), about 60 s on 2 idle cores (cnnlab demo --full" in out
    assert "tour: 1 part(s), about 2.0 min" in out and "tour about" in out and "tour done in" in out
    quick = sum(s[0] for s in demo.DEMO_SECONDS.values())
    assert quick <= 180  # the whole quick tour: at most 3 minutes on 2 idle cores
