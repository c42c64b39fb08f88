"""Deploy benchmark: batch-1 evaluation of the whole MNIST test set with ONNX Runtime, PyTorch eager and
Keras 3 ``model.evaluate(batch_size=1)`` on the same architecture and weights, measured in one run; the
course's 9.28 M-parameter CIFAR-100 net at batch 1 (the Jetson Nano comparison); and a model-zoo ONNX
model (mobilenetv2-12-int8) through ``cnnlab predict`` and ``cnnlab benchmark``.

    nice -n 10 python benchmarks/deploy_eval.py [--data-dir ../shared/data] [--epochs 1] [--subset 20000]
        [--no-keras]

Keras runs in its own virtual environment (benchmarks/_keras_env.py: created on first use with
``pip install keras tensorflow-cpu`` after checking the package index), never in cnnlab's.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import markdown_table, write_section  # noqa: E402

HERE = Path(__file__).resolve().parent
JETSON_NANO_IMG_S = 10_000 / 700  # the course: 700 s for 10,000 CIFAR-100 test images at batch 1


# ------------------------------------------------------------------------------------------ Keras venv
def keras_python(log: list[str]) -> Path | None:
    """The Python of the shared Keras + TensorFlow venv (benchmarks/_keras_env.py); None when unavailable."""
    from _keras_env import KerasUnavailable, keras_venv

    try:
        return keras_venv()
    except KerasUnavailable as e:
        log.append(str(e))
        return None


def keras_weights(model) -> dict[str, np.ndarray]:
    """mnist_cnn's PyTorch weights in Keras layouts (HWIO kernels; NHWC flatten order for dense1)."""
    import torch

    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    denses = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert len(convs) == 2 and len(denses) == 2, "expected the mnist_cnn architecture"
    w = {}
    for i, c in enumerate(convs, 1):
        w[f"conv{i}_kernel"] = c.weight.detach().numpy().transpose(2, 3, 1, 0)
        w[f"conv{i}_bias"] = c.bias.detach().numpy()
    d1, d2 = denses
    ch = convs[-1].out_channels
    side = int(round((d1.in_features / ch) ** 0.5))
    w["dense1_kernel"] = (d1.weight.detach().numpy().reshape(d1.out_features, ch, side, side)
                          .transpose(2, 3, 1, 0).reshape(-1, d1.out_features))
    w["dense1_bias"] = d1.bias.detach().numpy()
    w["dense2_kernel"] = d2.weight.detach().numpy().T
    w["dense2_bias"] = d2.bias.detach().numpy()
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in w.items()}


# ------------------------------------------------------------------------------------------ batch 1
def batch1_torch(model, x: np.ndarray, y: np.ndarray) -> dict:
    import torch

    xt = torch.from_numpy(x)
    with torch.inference_mode():
        for i in range(100):
            model(xt[i:i + 1])
        correct = 0
        start = time.perf_counter()
        for i in range(len(xt)):
            correct += int(model(xt[i:i + 1]).argmax(1).item() == y[i])
        seconds = time.perf_counter() - start
    return {"seconds": seconds, "accuracy": correct / len(y)}


def batch1_onnx(path: Path, x: np.ndarray, y: np.ndarray, threads: int) -> dict:
    from cnnlab.deploy.runtime import load_onnx_classifier

    clf = load_onnx_classifier(path, threads=threads)
    for i in range(100):
        clf(x[i:i + 1])
    correct = 0
    start = time.perf_counter()
    for i in range(len(x)):
        correct += int(clf(x[i:i + 1]).argmax(1)[0] == y[i])
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "accuracy": correct / len(y)}


def batch1_keras(model, x: np.ndarray, y: np.ndarray, log: list[str], tmp: Path, threads: int) -> dict | None:
    py = keras_python(log)
    if py is None:
        return None
    np.savez(tmp / "data.npz", x=np.ascontiguousarray(x.transpose(0, 2, 3, 1)), y=y)
    np.savez(tmp / "weights.npz", **keras_weights(model))
    out = tmp / "keras.json"
    r = subprocess.run([str(py), str(HERE / "deploy_keras_worker.py"), str(tmp / "data.npz"),
                        str(tmp / "weights.npz"), str(out), str(threads)], capture_output=True, text=True)
    if r.returncode != 0:
        log.append("Keras worker failed: " + (r.stderr.strip().splitlines() or ["?"])[-1])
        return None
    return json.loads(out.read_text())


# ------------------------------------------------------------------------------------------ main
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=os.environ.get("CNNLAB_DATA") or str(HERE.parent.parent / "shared" / "data"))
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--subset", type=int, default=20000, help="training images (0: all 60,000)")
    ap.add_argument("--run", help="use this mnist_cnn run folder instead of training one")
    ap.add_argument("--threads", type=int, default=1,
                    help="threads for every runtime (1: fair and stable on a shared machine)")
    ap.add_argument("--no-keras", action="store_true")
    args = ap.parse_args()

    import torch

    import cnnlab
    from cnnlab.deploy.benchmark import benchmark
    from cnnlab.deploy.calibration import dataset_sample

    notes: list[str] = []
    threads = args.threads
    torch.set_num_threads(threads)
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="cnnlab-deploy-eval-") as tmpdir:
        tmp = Path(tmpdir)
        t0 = time.perf_counter()
        if args.run:  # reuse: copy so the exports do not land in the user's run folder
            shutil.copytree(args.run, tmp / "run")
            run_dir = tmp / "run"
            from cnnlab.runs import read_run_config, read_run_metrics

            cfg, met = read_run_config(run_dir), read_run_metrics(run_dir)
            trained = (f"{cfg.get('epochs')} epoch(s) of {cfg.get('optimizer')} on {cfg.get('subset') or 60000} "
                       f"{cfg.get('dataset')} training images, {met.get('train_time_s', 0):.0f} s; "
                       "`--run` given")
        else:
            run_dir = cnnlab.train(dataset="mnist", model="mnist_cnn", data_dir=args.data_dir, epochs=args.epochs,
                                   optimizer="adam", lr=1e-3, batch=128, subset=args.subset or None,
                                   project=str(tmp / "runs"), name="mnist_cnn", verbose=0).run_dir
            trained = (f"{args.epochs} epoch(s) of Adam on {args.subset or 60000} MNIST training images, "
                       f"{time.perf_counter() - t0:.0f} s")
        print(f"model: {trained}")

        # exports, checked against PyTorch, and whole-test-set accuracy per runtime (batch 256)
        exports = {"fp32": cnnlab.export(run_dir),
                   "int8 static": cnnlab.export(run_dir, int8="static", calib_samples=256),
                   "int8 dynamic": cnnlab.export(run_dir, int8="dynamic")}
        acc_rows = []
        m_torch = cnnlab.evaluate(run_dir)
        acc_rows.append({"model": "PyTorch (checkpoint)", "accuracy %": 100 * m_torch["accuracy"],
                         "loss": m_torch["loss"], "Δ vs PyTorch (points)": 0.0, "file MB": "",
                         "max abs diff at export": ""})
        for name, res in exports.items():
            m = cnnlab.evaluate(res.path, dataset="mnist", data_dir=args.data_dir)
            acc_rows.append({"model": f"ONNX Runtime {name}", "accuracy %": 100 * m["accuracy"], "loss": m["loss"],
                             "Δ vs PyTorch (points)": 100 * (m["accuracy"] - m_torch["accuracy"]),
                             "file MB": res.size_bytes / 1e6, "max abs diff at export": f"{res.max_abs_diff:.2g}"})
            print(acc_rows[-1])

        # batch-1 evaluation of all 10,000 test images, one process, same weights
        loaded = cnnlab.load(run_dir)
        pre = exports["fp32"].metadata["preprocess"]
        from cnnlab.deploy.metadata import Preprocess

        x, y = dataset_sample("mnist", Preprocess.from_dict(pre), None, split="test", data_dir=args.data_dir)
        results = {}
        results["PyTorch eager"] = batch1_torch(loaded.model, x, y)
        results["ONNX Runtime fp32"] = batch1_onnx(exports["fp32"].path, x, y, threads)
        results["ONNX Runtime int8 (static)"] = batch1_onnx(exports["int8 static"].path, x, y, threads)
        keras = None if args.no_keras else batch1_keras(loaded.model, x, y, notes, tmp, threads)
        if keras is not None:
            results[f"Keras {keras['keras']} model.evaluate (TF {keras['tensorflow']})"] = keras
        for k, v in results.items():
            print(f"{k}: {v['seconds']:.1f} s, {len(y) / v['seconds']:.0f} img/s, acc {v['accuracy']:.4f}")
        base = len(y) / results["PyTorch eager"]["seconds"]
        b1_rows = []
        for k, v in results.items():
            ips = len(y) / v["seconds"]
            b1_rows.append({"runtime (batch 1)": k, "seconds for 10,000": v["seconds"], "images/s": ips,
                            "vs PyTorch eager": ips / base, "vs Jetson Nano (14 img/s)": ips / JETSON_NANO_IMG_S,
                            "accuracy %": 100 * v["accuracy"]})
        if keras is None:
            b1_rows.append({"runtime (batch 1)": "Keras 3 model.evaluate", "seconds for 10,000": "not run",
                            "images/s": "; ".join(notes) or "--no-keras"})

        # the course's own network at batch 1 (what the Jetson Nano ran: 9.28 M parameters, CIFAR-100)
        course = benchmark("course_cifar100", batch=[1], threads=[threads], runtimes="torch,onnxruntime,onnxruntime-int8",
                           num_classes=100, input_size="3x32x32", min_time=3.0)
        course_rows = [{"runtime": r["runtime"], "p50 ms": r["p50_ms"], "images/s": r["images_per_s"],
                        "vs Jetson Nano (14 img/s)": (r["images_per_s"] or 0) / JETSON_NANO_IMG_S,
                        "10,000 images take (s)": 10_000 / r["images_per_s"] if r["images_per_s"] else "",
                        "status": r["status"]} for r in course.rows]

    # a model from the ONNX model zoo through the same commands
    zoo = Path(args.data_dir) / "weights" / "mobilenetv2-12-int8.onnx"
    import sklearn.datasets

    imgs = [Path(sklearn.datasets.__path__[0]) / "images" / n for n in ("china.jpg", "flower.jpg")]
    exe = Path(sys.executable).parent / "cnnlab"
    cli = [str(exe)] if exe.is_file() else [sys.executable, "-m", "cnnlab.cli.main"]
    top5 = cnnlab.predict(zoo, imgs, topk=5)
    zoo_rows = [{"image": p.name, **{f"top-{i + 1}": f"{label} ({prob:.2f})" for i, (label, prob) in enumerate(t)}}
                for p, t in zip(imgs, top5, strict=True)]
    cli_pred = subprocess.run([*cli, "predict", str(zoo), *(p.name for p in imgs)], capture_output=True,
                              text=True, env={**os.environ, "COLUMNS": "250"}, cwd=imgs[0].parent)
    zoo_bench = benchmark(zoo, batch=[1, 8], threads=sorted({1, os.cpu_count() or 1}), runtimes="onnxruntime", min_time=2.0)

    acc_eval = {r["model"]: r["accuracy %"] for r in acc_rows}
    flips = round(abs(acc_eval["ONNX Runtime int8 static"] - 100 * results["ONNX Runtime int8 (static)"]["accuracy"])
                  * len(y) / 100)
    fp32_gap = abs(acc_eval["ONNX Runtime fp32"] - acc_eval["PyTorch (checkpoint)"])
    int8_note = ((f"fp32 ONNX Runtime is within {fp32_gap:.2f} points of PyTorch. " if fp32_gap else
                  "fp32 ONNX Runtime gives exactly PyTorch's accuracy. ")
                 + (f"The static INT8 model's accuracy here and in the batch-1 table differs by {flips} of "
                    f"{len(y):,} images: `cnnlab.evaluate`'s loader and the batch-1 loop normalise pixels with "
                    "float results that differ in the last bit, and INT8 rounding turns that into a few "
                    "different predictions." if flips else ""))
    body = [
        "Same architecture and weights everywhere: the textbook MNIST CNN (`mnist_cnn`: conv32-conv64-maxpool-"
        f"dense128, {sum(p.numel() for p in loaded.model.parameters()):,} parameters), trained by "
        f"`cnnlab.train` ({trained}), "
        "exported with `cnnlab.export` (checked against PyTorch), the PyTorch weights copied into an identical "
        "Keras 3 model (HWIO kernels, NHWC flatten order), so all runtimes must agree on accuracy. "
        f"Threads: {threads} for every runtime (`torch.set_num_threads`, ONNX Runtime `intra_op_num_threads`, "
        "TensorFlow intra/inter-op threads). "
        "Each runtime classifies the 10,000 test images one at a time (Keras: `model.evaluate(x, y, batch_size=1)`, "
        "which also computes loss/metrics per step, as the course measured it); input tensors are prepared beforehand.",
        "",
        "#### Batch-1 evaluation of the MNIST test set (one run)",
        "",
        markdown_table(b1_rows),
        "The course's Jetson Nano took 700 s for 10,000 CIFAR-100 images at batch 1 (≈ 14 img/s) with its "
        "9.28 M-parameter network, a heavier model than this one; the same-network comparison follows.",
        "",
        "#### The course's CIFAR-100 network (`course_cifar100`, 9.28 M parameters) at batch 1 on this CPU",
        "",
        markdown_table(course_rows),
        "#### Whole-test-set accuracy per runtime (batch 256): fp32 parity and the INT8 loss",
        "",
        markdown_table(acc_rows),
        int8_note,
        "",
        "#### A model from elsewhere: `mobilenetv2-12-int8.onnx` (ONNX model zoo, no cnnlab metadata)",
        "",
        "`cnnlab predict ../shared/data/weights/mobilenetv2-12-int8.onnx china.jpg flower.jpg` (ImageNet "
        "preprocessing assumed: short side 256, centre crop 224, ImageNet mean/std; class names from timm's "
        "ImageNetInfo). flower.jpg is a dahlia, which ImageNet has no class for.",
        "",
        markdown_table(zoo_rows),
        "```",
        cli_pred.stdout.strip() or cli_pred.stderr.strip(),
        "```",
        "",
        "`cnnlab benchmark ../shared/data/weights/mobilenetv2-12-int8.onnx --batch 1,8 --runtimes onnxruntime`:",
        "",
        markdown_table([{k: r[k] for k in ("runtime", "batch", "threads", "p50_ms", "p90_ms", "p99_ms",
                                            "images_per_s", "iters", "status")} for r in zoo_bench.rows]),
        "Figures are from a shared 2-core machine with other engineers' jobs running (load average "
        f"{load_before:.1f} at the start, {os.getloadavg()[0]:.1f} at the end), so expect noticeable noise "
        "between runs; the ratios measured within this one run are the robust part.",
    ]
    if notes:
        body += ["", "Notes: " + "; ".join(notes)]
    write_section("deploy_eval", "Deploy: batch-1 evaluation (ONNX Runtime vs PyTorch vs Keras), INT8, model zoo",
                  "\n".join(body))


if __name__ == "__main__":
    main()
