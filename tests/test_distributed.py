"""Distributed data-parallel training with torchrun on CPU (gloo): 2 processes train like 1, a killed
2-process run resumes exactly, only rank 0 writes, resuming on another world size is refused.

Tolerance of "2 processes train like 1": each rank sums the gradients of its half of the global batch
and gloo adds the two halves, where one process sums all images at once. The data, the global batches
(augmentation included) and the steps are the same; only float32 rounding of the sums differs
(~1e-7 relative per step), so after 18 SGD steps the weights agree to 1e-5 (measured: 1.5e-8). The
model has no BatchNorm and no dropout (mnist_cnn with drop rates 0): per-rank batch statistics would
differ by design without SyncBatchNorm, which PyTorch runs on CUDA only.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import cnnlab
from cnnlab.io import torch_load_safe

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"
OPTS = {"dataset": "digits", "subset": 256, "validation_split": 0.25, "model": "mnist_cnn",
        "model_kwargs": {"drop_rate": 0.0, "conv_drop_rate": 0.0}, "epochs": 3, "batch": 32,
        "optimizer": "sgd", "lr": 0.05, "momentum": 0.9, "schedule": "cosine", "warmup_epochs": 1,
        "ema": 0.9, "ema_warmup": 5, "augment": {"width_shift_range": 0.1, "horizontal_flip": True},
        "verbose": 0, "threads": 1, "plots": False, "device": "cpu", "channels_last": False}


def torchrun(task: str, options: dict, cwd: Path, kill: str | None = None, nproc: int = 2,
             timeout: float = 240) -> subprocess.CompletedProcess:
    """``torchrun --standalone --nproc-per-node N tests/_ddp_run.py TASK OPTIONS [KILL]`` on CPU."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([str(SRC), str(HERE)]),
           "PYTHONWARNINGS": "ignore", "CUDA_VISIBLE_DEVICES": ""}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
           str(HERE / "_ddp_run.py"), task, json.dumps(options)] + ([kill] if kill else [])
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def _last(run_dir: Path) -> dict:
    return torch_load_safe(run_dir / "weights" / "last.pt")


@pytest.fixture(scope="module")
def two_process_run(tmp_path_factory) -> Path:
    """An uninterrupted 2-process run of OPTS (shared by the tests below)."""
    cwd = tmp_path_factory.mktemp("ddp_full")
    p = torchrun("classify", {**OPTS, "name": "full"}, cwd)
    assert p.returncode == 0, p.stderr[-3000:]
    assert p.stdout.count("done: runs/classify/full") == 2   # both ranks return the run folder
    return cwd


@pytest.mark.slow  # ~30 s on the shared 2-core box: torchrun starts 3 Python processes that import torch
def test_two_gloo_processes_train_like_one_process(two_process_run, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    one = cnnlab.train(OPTS, name="one")
    a, b = _last(one.run_dir), _last(two_process_run / "runs/classify/full")
    assert (a["world_size"], b["world_size"]) == (1, 2) and a["global_step"] == b["global_step"] == 18
    for key in ("model", "ema"):
        for k, v in a[key].items():
            torch.testing.assert_close(b[key][k], v, rtol=1e-5, atol=1e-5, msg=f"{key}.{k}")
    assert any(not torch.equal(a["model"][k], a["ema"][k]) for k in a["model"])  # EMA is on
    for ha, hb in zip(a["history"], b["history"], strict=True):  # metrics reduced over ranks: the same numbers
        for k in ("loss", "accuracy", "val_loss", "val_accuracy"):
            assert hb[k] == pytest.approx(ha[k], rel=1e-5, abs=1e-6), k
    # only rank 0 wrote: one run folder, one history, the global throughput in metrics.json
    assert [p.name for p in (two_process_run / "runs/classify").iterdir()] == ["full"]
    rows = (two_process_run / "runs/classify/full/history.csv").read_text().splitlines()
    assert len(rows) == 1 + 3


@pytest.mark.slow
def test_killed_two_process_run_resumes_to_the_same_weights(two_process_run, tmp_path):
    cut = torchrun("classify", {**OPTS, "name": "cut"}, tmp_path, kill="2,3")  # rank 0 dies in epoch 2
    assert cut.returncode != 0
    run = tmp_path / "runs/classify/cut"
    assert _last(run)["epoch"] == 1
    once = torchrun("classify", {"resume": str(run), "verbose": 0}, tmp_path, nproc=1)
    assert once.returncode != 0 and "trained on 2 process(es), not 1: resume it with --nproc 2" in once.stderr
    resumed = torchrun("classify", {"resume": str(run), "verbose": 0}, tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a, b = _last(two_process_run / "runs/classify/full"), _last(run)
    assert a["epoch"] == b["epoch"] == 3
    for key in ("model", "ema", "optimizer"):
        if key == "optimizer":
            assert all(torch.equal(a[key]["state"][i]["momentum_buffer"], b[key]["state"][i]["momentum_buffer"])
                       for i in a[key]["state"])
            continue
        assert all(torch.equal(v, b[key][k]) for k, v in a[key].items()), key
    assert [h["loss"] for h in a["history"]] == [h["loss"] for h in b["history"]]
    assert [p.name for p in (tmp_path / "runs/classify").iterdir()] == ["cut"]   # resumed in place


def test_resume_in_another_number_of_processes_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = cnnlab.train({**OPTS, "epochs": 1, "subset": 64}, name="one").run_dir
    ckpt = _last(run)
    ckpt["world_size"] = 4
    torch.save(ckpt, run / "weights" / "last.pt")
    with pytest.raises(cnnlab.errors.UserError, match=r"trained on 4 process\(es\), not 1: resume it with --nproc 4"):
        cnnlab.train(resume=run, epochs=2)


def test_sharded_loaders_cut_the_global_batches_of_one_process():
    """Rank slices of every global batch put together are the one-process batch (augmentation included)."""
    from cnnlab.data import load_dataset, make_loader

    ds = load_dataset("digits").subset(range(70))
    kw = {"batch_size": 16, "shuffle": True, "seed": 3, "augment": {"width_shift_range": 0.2, "mixup_alpha": 0.4}}
    one = make_loader(ds, **kw)
    ranks = [make_loader(ds, **kw) for _ in range(3)]
    for r, loader in enumerate(ranks):
        loader.shard(r, 3)
    for loader in (one, *ranks):
        loader.set_epoch(2)
    assert len(one) == 5 and all(len(x) == 5 for x in ranks)  # 70 = 4 x 16 + 6 (>= 3 images: kept)
    for (x, y), *parts in zip(one, *ranks, strict=True):
        xs = torch.empty_like(x)
        ys = torch.empty_like(y)
        for r, (xr, yr) in enumerate(parts):
            xs[r::3], ys[r::3] = xr, yr
        assert torch.equal(xs, x) and torch.equal(ys, y)
    tiny = make_loader(ds.subset(range(18)), batch_size=16, shuffle=False)
    tiny.shard(1, 3)
    assert len(tiny) == 1   # a last global batch of 2 images cannot feed 3 processes: left out


@pytest.mark.slow
def test_detection_trains_in_two_processes(tmp_path):
    from cnnlab.detect.train.scenes import write_scene_dataset

    data = write_scene_dataset(tmp_path / "data", n_train=8, n_val=4, size=64, seed=0)
    opts = {"data": str(data), "model": "yolov3-tiny", "width_mult": 0.125, "imgsz": 64, "epochs": 2, "batch": 4,
            "optimizer": "adam", "lr": 1e-3, "verbose": 0, "mosaic": 0.5, "ema_warmup": 5, "device": "cpu",
            "threads": 1, "name": "ddp"}
    p = torchrun("detect", opts, tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    run = tmp_path / "runs/detect/ddp"
    assert [d.name for d in (tmp_path / "runs/detect").iterdir()] == ["ddp"]
    for f in ("metrics.json", "results.png", "train_batch0.jpg", "weights/best.pt", "weights/best.weights"):
        assert (run / f).is_file(), f
    ckpt = _last(run)
    assert ckpt["world_size"] == 2 and ckpt["global_step"] == 4 and ckpt["epoch"] == 2
    assert all(torch.isfinite(torch.tensor(h["loss"])) for h in ckpt["history"])


def test_sync_bn_on_cpu_is_one_line():
    from torch import nn

    from cnnlab.engine.distributed import convert_sync_bn

    with pytest.raises(cnnlab.errors.UserError, match="sync_bn needs CUDA"):
        convert_sync_bn(nn.BatchNorm2d(3), torch.device("cpu"))


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(["WORLD_SIZE", "RANK", "LOCAL_RANK"]), st.text(max_size=6)))
def test_any_torchrun_environment_is_a_world_or_one_line(env):
    """WORLD_SIZE/RANK/LOCAL_RANK as found: a consistent World, or a one-line UserError."""
    from cnnlab.engine.distributed import world

    old = {k: os.environ.pop(k, None) for k in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    try:
        os.environ.update({k: v for k, v in env.items() if "\x00" not in v})
        try:
            w = world()
        except cnnlab.errors.UserError as e:
            assert "\n" not in str(e)
            return
        assert w.size >= 1 and 0 <= w.rank < w.size and w.local_rank >= 0
    finally:
        for k, v in old.items():
            os.environ.pop(k, None)
            if v is not None:
                os.environ[k] = v
