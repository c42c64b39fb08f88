"""The lecture notes' lessons on real data, on this CPU (issue 18):

1. a plain 8-conv net on Fashion-MNIST: sigmoid vs ReLU vs ELU, He vs a too-small init, BatchNorm vs
   GroupNorm vs none -- one ``cnnlab compare`` over the knobs, with training diagnostics;
2. ZCA whitening vs per-channel standardisation on CIFAR-10 (textbook CNN, same recipe and budget);
3. an ensemble of 3 CIFAR-10 runs (seeds) vs its best member;
4. ``lr-find`` on the textbook CIFAR-10 CNN vs a sweep of short runs over learning rates.

    flock /work/wt/heavy.lock env OMP_NUM_THREADS=2 python benchmarks/lessons.py      # ~15-30 CPU-min
    python benchmarks/lessons.py --quick                                             # smoke test
    python benchmarks/lessons.py --parts knobs,lrfind                                # some parts only

Budgets are epochs and steps on stratified subsets (load-independent results). Writes the section
``lessons`` of docs/benchmarks.md (pictures in docs/benchmarks/lessons/); each part's numbers are kept
in ``runs/bench_lessons/<part>.json`` so parts can be re-run separately.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

IMG_DIR = REPO / "docs" / "benchmarks" / "lessons"
PARTS = ("knobs", "zca", "ensemble", "lrfind")

KNOB_ENTRIES = [
    {"name": "sigmoid (Xavier)", "activation": "sigmoid", "init": "xavier_normal"},
    {"name": "ReLU (He)", "activation": "relu", "init": "he_normal"},
    {"name": "ELU (He)", "activation": "elu", "init": "he_normal"},
    {"name": "ReLU, too-small init (He x 0.1)", "activation": "relu", "init": "he_normal", "init_gain": 0.1},
    {"name": "ReLU (He) + BatchNorm", "activation": "relu", "init": "he_normal", "norm": "batch"},
    {"name": "ReLU (He) + GroupNorm (4 groups)", "activation": "relu", "init": "he_normal", "norm": "group",
     "norm_groups": 4},
]
LR_SWEEP = [1e-4, 3e-4, 1e-3, 3e-3, 1e-2]


def settings(quick: bool) -> dict:
    if quick:
        return {"knobs": {"subset": 600, "epochs": 1, "diagnostics": 2},
                "cifar": {"subset": 600, "epochs": 1}, "sweep": {"subset": 400, "epochs": 1},
                "lrfind_steps": 30, "lrfind_subset": 600}
    return {"knobs": {"subset": 4000, "epochs": 3, "diagnostics": 10},
            "cifar": {"subset": 5000, "epochs": 5}, "sweep": {"subset": 1500, "epochs": 2},
            "lrfind_steps": 100, "lrfind_subset": 3000}


def cifar_recipe(s: dict, work: Path, **extra) -> dict:
    """The textbook CNN's recipe of parts 2-3 (Adam 1e-3, batch 64, no augmentation)."""
    return {"dataset": "cifar10", "model": "cifar10_cnn", "batch": 64, "optimizer": "adam", "lr": 1e-3,
            "verbose": 2, "threads": 2, "project": str(work), "exist_ok": True, **s["cifar"], **extra}


def lrfind_recipe(s: dict, work: Path, **extra) -> dict:
    """Part 4's recipe: the textbook CNN with Adam, batch 64, no augmentation (the lr is what varies)."""
    return {"dataset": "cifar10", "model": "cifar10_cnn", "batch": 64, "optimizer": "adam", "lr": 1e-3,
            "verbose": 2, "threads": 2, "project": str(work), "exist_ok": True, **extra}


def part_knobs(s: dict, work: Path) -> dict:
    import cnnlab
    from cnnlab.engine.diagnostics import first_last_grad_ratio, load_diagnostics

    spec = {"name": "knobs",
            "shared": {"dataset": "fashion_mnist", "model": "plain_cnn", "model_kwargs": {"depth": 8, "width": 8},
                       "batch": 64, "optimizer": "sgd", "lr": 0.02, "momentum": 0.9, "seed": 0, "verbose": 2,
                       "threads": 2, **s["knobs"]},
            "entries": KNOB_ENTRIES}
    result = cnnlab.compare(spec, project=str(work))
    rows = []
    for r, e in zip(result.rows, KNOB_ENTRIES, strict=True):
        run = Path(result.run_dir) / str(r["run_dir"])
        d = load_diagnostics(run)
        acts = [n for n in d["layers"] if n in d["saturated"]]
        sat = [v for n in acts for v in d["saturated"][n] if math.isfinite(v)]
        dead = [v for n in acts for v in d["dead"][n] if math.isfinite(v)]
        grads = [n for n in d["layers"] if n in d["grad_norm"]]
        rows.append({"entry": e["name"], "activation": e["activation"], "init": e["init"] + (
            f" x {e['init_gain']}" if "init_gain" in e else ""), "norm": e.get("norm", "none"),
            "params": r.get("params_total"), "test_accuracy": r.get("test_accuracy"),
            "grad_first": _mean(d["grad_norm"][grads[0]]), "grad_last": _mean(d["grad_norm"][grads[-1]]),
            "grad_ratio": first_last_grad_ratio(d), "saturated": _mean(sat), "dead": _mean(dead),
            "run": str(run)})
    IMG_DIR.mkdir(parents=True, exist_ok=True)
    shutil.copy(result.files["diagnostics"], IMG_DIR / "knobs_diagnostics.png")
    shutil.copy(result.files["curves"], IMG_DIR / "knobs_curves.png")
    for row, name in ((rows[0], "sigmoid"), (rows[1], "relu")):
        shutil.copy(Path(row["run"]) / "diagnostics.png", IMG_DIR / f"diagnostics_{name}.png")
    return {"settings": spec["shared"], "rows": rows, "folder": str(result.run_dir)}


def _mean(values) -> float:
    vals = [v for v in values if v is not None and math.isfinite(v)]
    return sum(vals) / len(vals) if vals else math.nan


def _train(cfg: dict) -> dict:
    import cnnlab

    start = time.perf_counter()
    r = cnnlab.train(**cfg)
    return {"run": str(r.run_dir), "test_accuracy": r.metrics.get("test_accuracy"),
            "test_loss": r.metrics.get("test_loss"), "val_accuracy": r.metrics.get("val_accuracy"),
            "seconds": round(time.perf_counter() - start, 1), "params": r.metrics.get("params_trainable")}


def part_zca(s: dict, work: Path) -> dict:
    std = _train(cifar_recipe(s, work, name="seed0", seed=0))
    zca = _train(cifar_recipe(s, work, name="zca_seed0", seed=0, whiten="zca", zca_epsilon=0.1))
    return {"settings": cifar_recipe(s, work), "standardize": std, "zca": zca}


def part_ensemble(s: dict, work: Path, zca: dict | None) -> dict:
    import cnnlab

    members = [zca["standardize"] if zca else _train(cifar_recipe(s, work, name="seed0", seed=0))]
    for seed in (1, 2):
        members.append(_train(cifar_recipe(s, work, name=f"seed{seed}", seed=seed)))
    out = work / "ensemble"
    res = cnnlab.ensemble([m["run"] for m in members], output=out, onnx=out / "ensemble.onnx")
    return {"members": members, "metrics": res.metrics, **onnx_check(res, out / "ensemble.onnx"),
            "onnx_mb": round((out / "ensemble.onnx").stat().st_size / 1e6, 2)}


def onnx_check(res, path: Path, n: int = 1000) -> dict:
    """The exported ensemble against the PyTorch one on the first ``n`` test images."""
    import numpy as np
    import torch

    from cnnlab.data import load_dataset, make_loader
    from cnnlab.deploy.runtime import load_onnx_classifier

    clf = load_onnx_classifier(path)
    ds = load_dataset("cifar10", split="test")
    ds = ds.subset(np.arange(n))
    x = torch.cat([b[0] for b in make_loader(ds, 250, shuffle=False, mean=clf.mean, std=clf.std)])
    with torch.no_grad():
        ref = res.model.eval()(x).numpy()
    got = clf(x.numpy())
    labels = np.asarray(ds.labels)
    return {"onnx_agree": float((got.argmax(1) == ref.argmax(1)).mean()),
            "onnx_max_diff": float(np.abs(got - ref).max()), "onnx_images": n,
            "onnx_accuracy": float((got.argmax(1) == labels).mean()),
            "torch_accuracy_subset": float((ref.argmax(1) == labels).mean())}


def part_lrfind(s: dict, work: Path) -> dict:
    import cnnlab

    base = lrfind_recipe(s, work, subset=s["lrfind_subset"])
    res = cnnlab.lr_find(**base, name="lr_find", start_lr=1e-6, end_lr=1.0, steps=s["lrfind_steps"])
    IMG_DIR.mkdir(parents=True, exist_ok=True)
    shutil.copy(res.files["plot"], IMG_DIR / "lr_find.png")
    sweep = []
    for lr in LR_SWEEP:
        cfg = lrfind_recipe(s, work, name=f"sweep_lr{lr:g}", lr=lr, seed=0, **s["sweep"])
        sweep.append({"lr": lr, **_train(cfg)})
    return {"suggestion": res.suggestion, "min_loss_lr": res.min_loss_lr, "steepest": res.steepest,
            "sweep": sweep, "steps": len(res.lrs), "plot_json": str(res.run_dir / "lr_find.json"),
            "optimizer": base["optimizer"], "start_lr": 1e-6, "end_lr": 1.0, "subset": s["lrfind_subset"]}


def judge_lr(lf: dict) -> dict:
    """Which swept lrs train well (validation accuracy within 0.03 of the best) and whether the
    suggestion does: the swept lr nearest to it on the log scale is one of them."""
    sweep = lf["sweep"]
    best = max(r["val_accuracy"] or 0 for r in sweep)
    good = [r["lr"] for r in sweep if (r["val_accuracy"] or 0) >= best - 0.03]
    nearest = min((r["lr"] for r in sweep), key=lambda lr: abs(math.log10(lr) - math.log10(lf["suggestion"])))
    return {"good": good, "nearest": nearest, "inside": nearest in good}


def fmt(v, spec=".4f") -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "n/a"
    return format(v, spec)


def render(results: dict, s: dict) -> str:
    out = []
    if "knobs" in results:
        k = results["knobs"]
        st = k["settings"]
        out += ["### 1. Activations, initialisation, normalisation (Fashion-MNIST, plain 8-conv net)", "",
                f"`plain_cnn` (8 conv3x3 layers, widths 8-16-32, no shortcut), {st['subset']} training images "
                f"(stratified; 10 % for validation), {st['epochs']} epochs, SGD lr {st['lr']} momentum "
                f"{st['momentum']}, batch {st['batch']}, seed 0; test = the full 10,000-image test split. "
                f"One `cnnlab compare` over the knobs (no extra code), diagnostics every {st['diagnostics']} "
                "steps. *grad first/last*: mean gradient norm of the first conv divided by that of the output "
                "layer, over all sampled steps; *saturated*: activations where the slope is ~0 (sigmoid "
                "< 0.02 or > 0.98, ReLU <= 0); *dead*: channels saturated for the whole batch.", "",
                "| run | activation | init | norm | params | test accuracy | grad first layer | grad last layer "
                "| grad first/last | saturated | dead |",
                "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for r in k["rows"]:
            out.append(f"| {r['entry']} | {r['activation']} | {r['init']} | {r['norm']} | {r['params']:,} | "
                       f"{fmt(r['test_accuracy'])} | {fmt(r['grad_first'], '.2e')} | {fmt(r['grad_last'], '.2e')} | "
                       f"{fmt(r['grad_ratio'], '.1e')} | {fmt(r['saturated'], '.2f')} | {fmt(r['dead'], '.2f')} |")
        sig, relu, small = k["rows"][0], k["rows"][1], k["rows"][3]
        out += ["", f"Reading it: with sigmoid the first conv's gradient is {fmt(sig['grad_ratio'], '.0e')} of the "
                f"output layer's (ReLU + He: {fmt(relu['grad_ratio'], '.1g')}), although its units are not "
                "saturated (Xavier keeps them near 0.5): the slope of a sigmoid is at most 0.25, so each layer "
                "shrinks the gradient; the net stays at chance. A too-small init (He x 0.1) starts with "
                f"vanishing signals (first/last {fmt(small['grad_ratio'], '.0e')}) and its ReLUs die "
                f"({fmt(small['dead'], '.0%')} dead channels on average; grey = gradient exactly 0).",
                "", "![diagnostics side by side](benchmarks/lessons/knobs_diagnostics.png)", "",
                "![validation curves](benchmarks/lessons/knobs_curves.png)", "",
                "Single-run pictures: [sigmoid](benchmarks/lessons/diagnostics_sigmoid.png) · "
                "[ReLU](benchmarks/lessons/diagnostics_relu.png)", ""]
    if "zca" in results:
        z = results["zca"]
        st = z["settings"]
        out += ["### 2. ZCA whitening vs per-channel standardisation (CIFAR-10)", "",
                f"`cifar10_cnn` (the textbook CNN), {st['subset']} training images (10 % of them for validation), "
                f"{st['epochs']} epochs, {st['optimizer']} lr {st['lr']}, batch {st['batch']}, seed 0, no "
                "augmentation; ZCA fitted "
                "on the training split (epsilon 0.1, 3072x3072, stored in the model); test = full test split.", "",
                "| input scaling | test accuracy | test loss | train s |", "| --- | --- | --- | --- |",
                f"| per-channel standardisation | {fmt(z['standardize']['test_accuracy'])} | "
                f"{fmt(z['standardize']['test_loss'])} | {z['standardize']['seconds']} |",
                f"| ZCA whitening | {fmt(z['zca']['test_accuracy'])} | {fmt(z['zca']['test_loss'])} | "
                f"{z['zca']['seconds']} |", ""]
    if "ensemble" in results:
        e = results["ensemble"]
        m = e["metrics"]
        out += ["### 3. Ensemble of 3 CIFAR-10 runs", "",
                "The same recipe as part 2 with seeds 0, 1, 2 (`cnnlab ensemble RUN RUN RUN`), full test split.", "",
                "| model | test accuracy |", "| --- | --- |"]
        out += [f"| member seed {i} | {fmt(mm['test_accuracy'])} |" for i, mm in enumerate(e["members"])]
        out += [f"| ensemble, averaged probabilities | **{fmt(m['accuracy'])}** |",
                f"| ensemble, majority vote | {fmt(m['vote_accuracy'])} |", "",
                f"Gain over the best member ({fmt(m['best_member_accuracy'])}): **{m['gain_over_best']:+.4f}** "
                f"(averaged probabilities), {m['vote_gain_over_best']:+.4f} (majority vote). Exported as one "
                f"ONNX model ({e['onnx_mb']} MB): on the first {e['onnx_images']} test images its predictions "
                f"agree with the PyTorch ensemble on {e['onnx_agree']:.1%} (largest log-probability difference "
                f"{e['onnx_max_diff']:.1e}).", ""]
    if "lrfind" in results:
        lf = results["lrfind"]
        out += ["### 4. lr-find on the textbook CIFAR-10 CNN", "",
                f"`cnnlab lr-find` ({lf['steps']} steps from {lf['start_lr']:g} to {lf['end_lr']:g}, "
                f"{lf['optimizer']}, batch 64, {lf['subset']} training images): suggested "
                f"lr **{lf['suggestion']:.3g}** (rule: lr of the lowest smoothed loss / 10; lowest at "
                f"{lf['min_loss_lr']:.3g}). Sweep: the same recipe trained {s['sweep']['epochs']} epochs on "
                f"{s['sweep']['subset']} images at each lr; \"trains well\" = validation accuracy within 0.03 of "
                "the best of the sweep.", "",
                "| lr | validation accuracy | test accuracy |", "| --- | --- | --- |"]
        out += [f"| {r['lr']:g} | {fmt(r['val_accuracy'])} | {fmt(r['test_accuracy'])} |" for r in lf["sweep"]]
        j = judge_lr(lf)
        out += ["", f"Learning rates that train well: {', '.join(f'{v:g}' for v in j['good'])}. The swept lr "
                f"nearest to the suggestion {lf['suggestion']:.3g} (log scale) is {j['nearest']:g}, which "
                + ("**trains well**." if j["inside"] else "does **not** train well."), "",
                "![lr-find](benchmarks/lessons/lr_find.png)", ""]
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="tiny smoke test (numbers meaningless, no docs write)")
    ap.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated: {', '.join(PARTS)}")
    ap.add_argument("--work", default=str(REPO / "runs" / "bench_lessons"), help="folder for runs and results")
    args = ap.parse_args()
    os.environ.setdefault("CNNLAB_DATA", "/work/shared/data")
    parts = [p for p in args.parts.split(",") if p]
    unknown = set(parts) - set(PARTS)
    if unknown:
        ap.error(f"unknown parts: {', '.join(sorted(unknown))}")
    s = settings(args.quick)
    work = Path(args.work) / ("quick" if args.quick else "full")
    if args.quick:  # a smoke test's pictures stay out of the docs
        global IMG_DIR
        IMG_DIR = work / "img"
    work.mkdir(parents=True, exist_ok=True)
    results: dict = {}
    for part in PARTS:
        path = work / f"{part}.json"
        if part in parts:
            start = time.perf_counter()
            if part == "knobs":
                results[part] = part_knobs(s, work)
            elif part == "zca":
                results[part] = part_zca(s, work)
            elif part == "ensemble":
                results[part] = part_ensemble(s, work, results.get("zca"))
            else:
                results[part] = part_lrfind(s, work)
            results[part]["wall_s"] = round(time.perf_counter() - start, 1)
            path.write_text(json.dumps(results[part], indent=2, default=str))
            print(f"part {part}: {results[part]['wall_s']} s", flush=True)
        elif path.is_file():
            results[part] = json.loads(path.read_text())
    if "lrfind" in results and Path(results["lrfind"].get("plot_json", "")).is_file():
        from cnnlab.experiments.lr_find import plot_lr_find

        IMG_DIR.mkdir(parents=True, exist_ok=True)
        plot_lr_find(results["lrfind"]["plot_json"], IMG_DIR / "lr_find.png")
    body = render(results, s)
    walls = ", ".join(f"{p} {results[p]['wall_s']:.0f} s" for p in PARTS if p in results)
    body += f"\nWall time per part on this (shared) machine: {walls}.\n"
    if args.quick:
        print(body)
        return 0
    from _report import write_section

    write_section("lessons", "Lessons: activations, init, norm, ZCA, ensembles, lr-find (CPU)", body,
                  command="flock /work/wt/heavy.lock env OMP_NUM_THREADS=2 python benchmarks/lessons.py")
    return 0


if __name__ == "__main__":
    sys.exit(main())
