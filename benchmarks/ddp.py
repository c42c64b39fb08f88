"""Data-parallel training throughput: images/s of the engine with 1 and 2 processes (torchrun + gloo on
CPU), and where CUDA is present, one GPU with AMP + channels_last against plain eager fp32 (and 2 GPUs
with NCCL when there are two). Writes the `ddp` section of docs/benchmarks.md.

    CNNLAB_DATA=../shared/data python benchmarks/ddp.py                       # quiet box: CIFAR-10 subset
    python benchmarks/ddp.py --dataset digits --model mnist_cnn --subset 512 --epochs 2 --no-write   # smoke

Every variant is the same `cnnlab train` command (same data, model, global batch, seed, epochs),
started with `python -m torch.distributed.run --standalone --nproc-per-node N -m cnnlab train ...`.
On CPU each process gets cores / N torch threads, so every variant uses the whole machine. The figure
is the engine's own `images_per_s` (training images of all processes per second of the training
loop), the median over the epochs after the first (which includes warm-up).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from _report import markdown_table, write_section  # noqa: E402


def train_args(a: argparse.Namespace, name: str, extra: list[str]) -> list[str]:
    return ["train", "--dataset", a.dataset, "--model", a.model, "--subset", str(a.subset), "--epochs",
            str(a.epochs), "--batch", str(a.batch), "--validation-split", "0", "--monitor", "loss",
            "--optimizer", "sgd", "--lr", "0.01", "--seed", "0", "--no-plots", "--verbose", "2",
            "--project", a.project, "--name", name, "--exist-ok", *extra]


def run_variant(a: argparse.Namespace, name: str, nproc: int, extra: list[str], env: dict[str, str]) -> dict[str, Any]:
    """One `cnnlab train` under torchrun; its per-epoch throughput from the run folder's history."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
           "-m", "cnnlab", "--", *train_args(a, name, extra)]
    full_env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")]),
                **env}
    print("$", " ".join(cmd), flush=True)
    t0 = time.perf_counter()
    p = subprocess.run(cmd, env=full_env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        sys.exit(f"{name} failed (exit {p.returncode}):\n{p.stdout[-2000:]}\n{p.stderr[-3000:]}")
    history = json.loads((Path(a.project) / "classify" / name / "history.json").read_text())
    rates = [h["images_per_s"] for h in history]
    steady = rates[1:] or rates
    return {"images_per_s": statistics.median(steady), "epoch_s": statistics.median(h["epoch_time"] for h in history),
            "loss": history[-1]["loss"], "wall_s": wall, "epochs": len(history)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="cifar10")
    ap.add_argument("--model", default="cifar10_cnn")
    ap.add_argument("--subset", type=int, default=10000, help="training images (a stratified subset)")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch", type=int, default=256, help="global batch (split over the processes)")
    ap.add_argument("--nprocs", default="1,2", help="CPU process counts to compare")
    ap.add_argument("--gpu-batch", type=int, default=512)
    ap.add_argument("--gpu-subset", type=int, default=45000)
    ap.add_argument("--cpu-only", action="store_true", help="skip the GPU variants even when CUDA is present")
    ap.add_argument("--project", default="runs/bench_ddp")
    ap.add_argument("--no-write", action="store_true", help="print the table only (smoke runs)")
    a = ap.parse_args()

    import torch

    cores = os.cpu_count() or 1
    rows: list[dict[str, Any]] = []
    nprocs = [int(n) for n in a.nprocs.split(",")]
    for n in nprocs:
        threads = max(1, cores // n)
        r = run_variant(a, f"cpu_{n}proc", n, ["--device", "cpu", "--threads", str(threads)],
                        {"OMP_NUM_THREADS": str(threads), "CUDA_VISIBLE_DEVICES": ""})
        rows.append({"variant": f"CPU, {n} process{'es' if n > 1 else ''} (gloo)" if n > 1 else "CPU, 1 process",
                     "processes": n, "threads/process": threads, "global batch": a.batch,
                     "img/s": r["images_per_s"], "speed-up": r["images_per_s"] / rows[0]["img/s"] if rows else 1.0,
                     "s/epoch": r["epoch_s"], "last loss": r["loss"]})
    gpu_note = "no CUDA device on this machine: GPU rows not measured"
    if torch.cuda.is_available() and not a.cpu_only:
        gpu = torch.cuda.get_device_name(0)
        ga = argparse.Namespace(**{**vars(a), "batch": a.gpu_batch, "subset": a.gpu_subset})
        variants = [("fp32 eager", 1, ["--no-amp", "--no-channels-last"], {"CUDA_VISIBLE_DEVICES": "0"}),
                    ("AMP + channels_last", 1, ["--amp", "--channels-last"], {"CUDA_VISIBLE_DEVICES": "0"})]
        if torch.cuda.device_count() >= 2:
            variants.append(("AMP + channels_last, 2 GPUs (NCCL)", 2, ["--amp", "--channels-last"],
                             {"CUDA_VISIBLE_DEVICES": "0,1"}))
        first = None
        for i, (label, n, extra, env) in enumerate(variants):
            r = run_variant(ga, f"gpu_{i}", n, ["--device", "cuda", *extra], env)
            first = first or r["images_per_s"]
            rows.append({"variant": f"{gpu}: {label}", "processes": n, "threads/process": "-",
                         "global batch": a.gpu_batch, "img/s": r["images_per_s"], "speed-up": r["images_per_s"] / first,
                         "s/epoch": r["epoch_s"], "last loss": r["loss"]})
        gpu_note = (f"GPU rows: {gpu}, batch {a.gpu_batch}, {a.gpu_subset} images; speed-up relative to fp32 "
                    "eager on the same GPU")
    table = markdown_table(rows)
    print(table)
    if a.no_write:
        return
    body = (f"`cnnlab train --dataset {a.dataset} --model {a.model} --subset {a.subset} --batch {a.batch} "
            f"--epochs {a.epochs}` (SGD, seed 0, no validation) under `torchrun --standalone --nproc-per-node N`; "
            f"img/s = the engine's training images of all processes per second, median of epochs 2-{a.epochs}; "
            "CPU speed-up relative to 1 process.\n\n" + table + f"\n{gpu_note}.\n\n"
            "On CPU, N processes split the same cores (cores / N threads each): DDP adds a gradient "
            "all-reduce per step and wins only where one process cannot keep every core busy (small "
            "per-layer work, Python overhead); on GPUs each process drives its own device.")
    write_section("ddp", "Distributed data-parallel training (DDP) and one-GPU AMP", body,
                  command="python " + " ".join(["benchmarks/ddp.py", *sys.argv[1:]]))


if __name__ == "__main__":
    main()
