"""Benchmark: output shape (JSON keys, Markdown rows per runtime x batch x threads), failures per cell."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from cnnlab.errors import UserError


def tiny() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(4, 3)).eval()


ROW_KEYS = {"runtime", "batch", "threads", "status", "p50_ms", "p90_ms", "p99_ms", "mean_ms", "images_per_s",
            "iters", "vs_torch"}


def test_benchmark_rows_json_and_markdown(tmp_path):
    from cnnlab.deploy.benchmark import benchmark

    res = benchmark(tiny(), batch="1,4", threads=[1], runtimes="torch,onnxruntime,onnxruntime-int8",
                    iters=3, input_size="1x8x8", json=tmp_path / "b.json", md=tmp_path / "b.md")
    data = json.loads((tmp_path / "b.json").read_text())
    assert set(data) == {"header", "results"}
    h = data["header"]
    for key in ("model", "source", "input_shape", "device", "versions", "providers", "timing", "date"):
        assert key in h
    assert h["input_shape"] == [1, 8, 8] and {"torch", "onnxruntime", "numpy"} <= set(h["versions"])
    rows = data["results"]
    assert [(r["runtime"], r["batch"]) for r in rows] == [
        ("torch", 1), ("torch", 4), ("onnxruntime", 1), ("onnxruntime", 4),
        ("onnxruntime-int8", 1), ("onnxruntime-int8", 4)]
    for r in rows:
        assert set(r) >= ROW_KEYS, r
        assert r["status"] == "ok" and r["iters"] == 3 and r["threads"] == 1
        assert 0 < r["p50_ms"] <= r["p90_ms"] <= r["p99_ms"]
        assert r["images_per_s"] == pytest.approx(r["batch"] / (r["mean_ms"] / 1e3))
    assert rows[0]["vs_torch"] == pytest.approx(1.0)
    md = (tmp_path / "b.md").read_text()
    table = [line for line in md.splitlines() if line.startswith("| ")]
    assert table[0].startswith("| runtime | batch | threads | p50 ms | p90 ms | p99 ms")
    assert len(table) == 1 + len(rows)
    assert sum(line.startswith("| onnxruntime-int8 | 4 | 1 |") for line in table) == 1
    assert res.markdown() == md


def test_compile_failure_is_reported_per_cell(monkeypatch):
    from cnnlab.deploy.benchmark import benchmark

    def broken(*args, **kwargs):
        raise RuntimeError("inductor exploded\nlong traceback")

    monkeypatch.setattr(torch, "compile", broken)
    res = benchmark(tiny(), batch=[1, 2], threads=[1], runtimes=["torch", "compile"], iters=2,
                    input_size=(1, 8, 8))
    status = {(r["runtime"], r["batch"]): r["status"] for r in res.rows}
    assert status[("torch", 1)] == status[("torch", 2)] == "ok"
    assert status[("compile", 1)] == "error: RuntimeError: inductor exploded"
    assert res.rows[-1]["images_per_s"] is None and res.rows[-1]["vs_torch"] is None


def test_onnx_file_source_skips_torch_runtimes(tmp_path):
    from cnnlab.deploy.benchmark import benchmark
    from cnnlab.deploy.export import export

    path = export(tiny(), output=tmp_path / "t.onnx", img_size=8).path
    res = benchmark(path, batch=[2], threads=[1], runtimes="eager,ort,int8", iters=2)
    assert [r["runtime"] for r in res.rows] == ["torch", "onnxruntime", "onnxruntime-int8"]
    assert res.rows[0]["status"].startswith("skipped:")
    assert res.rows[1]["status"] == res.rows[2]["status"] == "ok"
    assert "random inputs" in res.header["calibration"]
    assert res.header["input_shape"] == [1, 8, 8]


def test_measure_auto_and_fixed():
    from cnnlab.deploy.timing import measure

    calls = []
    t = measure(lambda: calls.append(1), 4, iters=7, warmup=2)
    assert t.iters == 7 and len(calls) == 9 and t.batch == 4
    t = measure(lambda: None, 1, min_time=0.01, min_iters=25, warmup_time=0.0)
    assert t.iters >= 25 and t.to_dict()["p50_ms"] >= 0


def test_parsing_errors():
    from cnnlab.deploy.benchmark import parse_input, parse_int_list, parse_iters, parse_runtimes

    assert parse_int_list("1,8,32,8", "--batch") == [1, 8, 32]
    assert parse_runtimes("eager,ort,int8") == ["torch", "onnxruntime", "onnxruntime-int8"]
    assert parse_iters("auto") is None and parse_iters("5") == 5
    assert parse_input("3x224x224") == (3, 224, 224)
    for fn, arg in ((parse_int_list, "0"), (parse_runtimes, "tensorflow"), (parse_iters, "lots"),
                    (parse_input, "224")):
        with pytest.raises(UserError):
            fn(arg, "--x") if fn is parse_int_list else fn(arg)


def test_benchmark_cli(cli, tmp_path):
    code, out, err = cli("benchmark", "mnist_cnn", "--batch", "1", "--threads", "1", "--runtimes",
                         "torch,onnxruntime", "--iters", "2", "--json", "r.json", "--md", "r.md")
    assert code == 0, err
    assert "| torch | 1 | 1 |" in out and "| onnxruntime | 1 | 1 |" in out
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["header"]["input_shape"] == [1, 28, 28] and len(data["results"]) == 2
    code, _, err = cli("benchmark", "mnist_cnn", "--batch", "0")
    assert code == 2 and "--batch" in err
    code, _, err = cli("benchmark", "mnist_cnn", "--runtimes", "tflite")
    assert code == 2 and "unknown runtime" in err


@pytest.mark.slow
def test_real_torch_compile_cell_runs_or_reports():
    from cnnlab.deploy.benchmark import benchmark

    res = benchmark(tiny(), batch=[1], threads=[1], runtimes="torch,compile", iters=5, input_size="1x8x8")
    row = res.rows[-1]
    assert row["runtime"] == "compile"
    assert row["status"] == "ok" or row["status"].startswith("error:")
    if row["status"] == "ok":
        assert row["iters"] == 5 and row["vs_torch"] > 0
