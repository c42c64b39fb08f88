"""Each detector backend's ms/image on one model, idle and with one CPU-heavy process beside it.

    python benchmarks/backends_busy.py [--model yolo-fastest-1.1] [--seconds 8] [--no-report]
    python benchmarks/backends_busy.py --smoke        # a tiny random model, a second per cell (tests run it)

For each backend (torch as built now: fused copy, threads/layout probed; torch with one thread per
physical core and no probe, i.e. before issue 15; opencv; onnxruntime; auto) the network alone
(`Detector.infer` on a preprocessed coco128 image) is timed for ``--seconds`` per cell: median ms.
First on the idle machine, then with a busy neighbour: a subprocess training a small convnet with
torch's default threads (one per core), as a training run beside a live detector would. Detectors are
built anew in each condition (the torch probe sees the machine as it is). Writes the section
``backends-busy`` of docs/benchmarks.md with the torch/opencv ratio under load. Run it on a quiet
machine: the idle column is only meaningful there. About 2 x 5 x seconds + start-up (< 3 minutes).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from _report import markdown_table, write_section  # noqa: E402

# the busy neighbour: a convnet training loop on every core until killed (stdin closes)
NEIGHBOUR = """
import sys, threading, torch
stop = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
net = torch.nn.Sequential(torch.nn.Conv2d(3, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(32, 32, 3, padding=1),
                          torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(32, 10))
opt = torch.optim.SGD(net.parameters(), lr=0.01)
x, y = torch.randn(32, 3, 64, 64), torch.randint(0, 10, (32,))
print("busy", flush=True)
while not stop.is_set():
    opt.zero_grad(); torch.nn.functional.cross_entropy(net(x), y).backward(); opt.step()
"""

VARIANTS = [("auto", {"backend": "auto"}), ("torch", {"backend": "torch"}),
            ("torch, all cores, no probe (before)", {"backend": "torch", "threads": "all"}),
            ("opencv", {"backend": "opencv"}), ("onnxruntime", {"backend": "onnxruntime"})]


def _time(det: Any, blob: Any, seconds: float, max_runs: int = 1000) -> tuple[float, int]:
    det.infer(blob)
    det.infer(blob)
    ts: list[float] = []
    end = time.perf_counter() + seconds
    while (time.perf_counter() < end or len(ts) < 3) and len(ts) < max_runs:
        t = time.perf_counter()
        det.infer(blob)
        ts.append(time.perf_counter() - t)
    return statistics.median(ts) * 1e3, len(ts)


def measure(source: dict[str, Any], image: Any, seconds: float) -> dict[str, dict[str, Any]]:
    """{variant: {"ms", "runs", "line"}} for the current state of the machine."""
    import torch

    from cnnlab.detect.backends import physical_cores
    from cnnlab.detect.detector import Detector

    out = {}
    for label, opts in VARIANTS:
        opts = dict(opts)
        if opts.get("threads") == "all":
            opts["threads"] = physical_cores()
        det = Detector(**source, **opts)
        if label.startswith("torch, all cores"):   # the old backend: no probe, torch's default layout
            det.backend.channels_last = False
            det.backend.model = det.backend.model.to(memory_format=torch.contiguous_format)
            torch.set_num_threads(physical_cores())
        blob, _ = det.preprocess(image)
        ms, runs = _time(det, blob, seconds)
        out[label] = {"ms": ms, "runs": runs, "line": det.backend_line()}
        print(f"  {label}: {ms:.1f} ms ({runs} runs) - {det.backend_line()}", flush=True)
    return out


def _smoke_source(root: Path) -> dict[str, Any]:
    from cnnlab.detect.synthetic import random_yolo_files

    cfg, weights, names = random_yolo_files(root, "yolov3-tiny", num_classes=3, img_size=96, width_mult=0.25, seed=1)
    return {"cfg": cfg, "weights": weights, "names": names, "imgsz": 96}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="yolo-fastest-1.1", help="A Darknet model in $CNNLAB_DATA/yolo.")
    ap.add_argument("--seconds", type=float, default=8.0, help="Timing per backend and condition.")
    ap.add_argument("--smoke", action="store_true", help="A tiny random model, 0.2 s per cell, no report.")
    ap.add_argument("--no-report", action="store_true")
    args = ap.parse_args(argv)
    import cv2
    import numpy as np

    from cnnlab.paths import data_root

    seconds = 0.2 if args.smoke else args.seconds
    with tempfile.TemporaryDirectory(prefix="cnnlab-busy-") as tmp:
        if args.smoke:
            source = _smoke_source(Path(tmp))
            image = np.random.default_rng(0).integers(0, 255, (240, 320, 3), dtype=np.uint8)
        else:
            root = data_root(None)
            source = {"cfg": root / "yolo" / f"{args.model}.cfg", "weights": root / "yolo" / f"{args.model}.weights"}
            image = cv2.imread(str(sorted((root / "coco128" / "images" / "train2017").glob("*.jpg"))[0]))
            if image is None or not source["cfg"].is_file():
                raise SystemExit("error: the shared data (coco128, yolo/) is needed: set CNNLAB_DATA")
        print("idle:", flush=True)
        idle = measure(source, image, seconds)
        proc = subprocess.Popen([sys.executable, "-c", NEIGHBOUR], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                text=True)
        try:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "busy"
            time.sleep(0.2 if args.smoke else 2.0)          # let it reach its steady state
            print("busy (a training process on every core beside it):", flush=True)
            busy = measure(source, image, seconds)
        finally:
            if proc.stdin is not None:
                proc.stdin.close()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
    rows = [{"backend": k, "idle ms": round(idle[k]["ms"], 1), "busy ms": round(busy[k]["ms"], 1),
             "busy / idle": round(busy[k]["ms"] / idle[k]["ms"], 2), "as built when busy": busy[k]["line"]}
            for k, _ in VARIANTS]
    ratio = busy["torch"]["ms"] / busy["opencv"]["ms"]
    old = busy["torch, all cores, no probe (before)"]["ms"] / busy["opencv"]["ms"]
    print(f"torch / opencv when busy: {ratio:.2f} (before: {old:.2f})")
    if args.smoke or args.no_report:
        return 0
    body = (
        f"{args.model}, the network alone (`Detector.infer` on a preprocessed coco128 image, median of "
        f"{seconds:g} s of runs per cell), idle and with one CPU-heavy process beside it (a convnet training "
        "loop on every core). Detectors are built in each condition, so torch's probe (threads and layout) "
        "sees the machine as it is; \"before\" is the torch backend of before issue 15 (one thread per "
        "physical core, no probe).\n\n"
        + markdown_table(rows)
        + f"\n\n**torch / opencv when busy: {ratio:.2f}** (before: {old:.2f}).\n"
    )
    print(body)
    write_section("backends-busy", "Backend speed on a busy machine", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
