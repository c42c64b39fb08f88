"""Time-to-accuracy on a CPU: the course's Keras textbook CIFAR-10 program against ``cifar10-fast``,
side by side in one invocation, plus ``speedrun`` of ``mnist-fast`` and ``fashion-mnist-fast``.

Keras side: the textbook CNN (conv 32-32-pool-64-64-pool, dense 512, dropout 0.25/0.25/0.5; Adam
1e-3, batch 128) in real Keras 3 on TensorFlow CPU, trained on all 50,000 images for
``--keras-epochs`` epochs; after every epoch the test set is evaluated (not timed). Time is the sum
of Keras' epoch times (tracing included, evaluation excluded), as for cnnlab's speedrun; the curve is
kept in ``<project>/keras_textbook.json`` (``--reuse`` takes it from there).
cnnlab side: ``cnnlab.experiments.speedrun.speedrun("cifar10-fast", seeds=N)`` with the same
definition (test accuracy after every epoch, training wall time), plus ``--long-epochs`` (the 92 %
row) and ``--quick`` (a shorter, narrower schedule of the same recipe: the time-to-80 % row). Prints
time-to-79 % of both and the ratio, and writes the ``fast_recipes`` section of docs/benchmarks.md.

    python benchmarks/fast_recipes.py --threads 2 --seeds 3             # full run (hours: Keras 30 epochs)
    python benchmarks/fast_recipes.py --smoke                           # minutes: tiny subsets, no doc
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

KERAS_SCRIPT = r"""
import json, sys, time
import numpy as np
threads, epochs, path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
import tensorflow as tf
tf.config.threading.set_intra_op_parallelism_threads(threads)
tf.config.threading.set_inter_op_parallelism_threads(threads)
import keras
from keras import layers
d = np.load(path)
x, y = d["x"].astype("float32") / 255.0, d["y"].astype("int64")
xt, yt = d["xt"].astype("float32") / 255.0, d["yt"].astype("int64")
keras.utils.set_random_seed(0)
model = keras.Sequential([
    keras.Input((32, 32, 3)),
    layers.Conv2D(32, 3, activation="relu"), layers.Conv2D(32, 3, activation="relu"),
    layers.MaxPooling2D(), layers.Dropout(0.25),
    layers.Conv2D(64, 3, activation="relu"), layers.Conv2D(64, 3, activation="relu"),
    layers.MaxPooling2D(), layers.Dropout(0.25),
    layers.Flatten(), layers.Dense(512, activation="relu"), layers.Dropout(0.5),
    layers.Dense(10, activation="softmax"),
])
model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])

# one fit() per epoch, the test evaluation between them: evaluate() inside a fit() callback deadlocked
# TensorFlow's thread pools here (every thread waiting on a futex after a few epochs)
train_s, curve = 0.0, []
for epoch in range(epochs):
    t = time.perf_counter()
    model.fit(x, y, batch_size=128, epochs=epoch + 1, initial_epoch=epoch, verbose=0)
    train_s += time.perf_counter() - t
    acc = float(model.evaluate(xt, yt, batch_size=500, verbose=0)[1])
    curve.append({"epoch": epoch + 1, "time_s": train_s, "accuracy": acc})
    print(f"keras epoch {epoch + 1}: {train_s:.0f}s test {acc:.4f}", file=sys.stderr, flush=True)
print(json.dumps({"curve": curve, "params": model.count_params(),
                  "versions": f"keras {keras.__version__}, tensorflow {tf.__version__}"}))
"""


def keras_textbook(images, labels, test_images, test_labels, epochs: int, threads: int) -> dict:
    """Run the Keras textbook program in the Keras venv; its per-epoch test curve."""
    import numpy as np
    from _keras_env import run_in_keras

    with tempfile.TemporaryDirectory() as tmp:
        npz = Path(tmp) / "cifar10.npz"
        np.savez(npz, x=images.permute(0, 2, 3, 1).numpy(), y=labels.numpy(),
                 xt=test_images.permute(0, 2, 3, 1).numpy(), yt=test_labels.numpy())
        return run_in_keras(KERAS_SCRIPT, str(threads), str(epochs), str(npz),
                            env={"OMP_NUM_THREADS": str(threads)}, timeout=600 + 300 * epochs)


def _time_steps(step, steps: int) -> float:
    import time

    step()  # warm-up (oneDNN primitive creation)
    t = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - t) / steps


def conv_reference(bf16: bool, channels_last: bool, steps: int) -> float:
    """GFLOP/s of a large 3x3 conv (256 -> 256 maps, 16x16, batch 64) forward + backward: what this
    machine's convolutions can do."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    conv = torch.nn.Conv2d(256, 256, 3, padding=1, bias=False)
    x = torch.randn(64, 256, 16, 16, requires_grad=True)
    if channels_last:
        conv, x = conv.to(memory_format=torch.channels_last), x.detach().contiguous(
            memory_format=torch.channels_last).requires_grad_()

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            y = conv(x)
        y.float().sum().backward()

    with FlopCounterMode(display=False) as counter:
        step()
    return counter.get_total_flops() / _time_steps(step, steps) / 1e9


def recipe_throughput(recipe: str, bf16: bool, channels_last: bool, steps: int, compiled: bool = False) -> dict:
    """Images/s of the recipe's training step (model, batch, SGD step; synthetic batch on the CPU);
    ``compiled``: the model under ``torch.compile`` (inductor), its first step's seconds in ``compile_s``."""
    import time

    import torch

    from cnnlab.experiments.speedrun import train_flops_per_image
    from cnnlab.models import create_model
    from cnnlab.tasks.classify.run import resolve_config

    cfg = resolve_config(None, recipe=recipe)
    chans, size = (1, 28) if "mnist" in cfg.dataset else (3, 32)
    torch.manual_seed(0)
    model = create_model(cfg.model, num_classes=10, in_chans=chans, img_size=size, **cfg.model_kwargs)
    flops = train_flops_per_image(model, chans, size)
    x, y = torch.randn(cfg.batch, chans, size, size), torch.randint(0, 10, (cfg.batch,))
    if channels_last:
        model, x = model.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-3, momentum=0.9)
    net = torch.compile(model) if compiled else model

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = torch.nn.functional.cross_entropy(net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    t = time.perf_counter()
    step()  # eager: oneDNN primitives; compiled: the graph is traced and compiled here
    first = time.perf_counter() - t
    ips = cfg.batch / _time_steps(step, steps)
    return {"images_per_s": ips, "gflops_per_s": ips * flops / 1e9, "train_flops_per_image": flops,
            "compile_s": first}


def throughput_table(recipes: list[str], steps: int) -> str:
    """Recipe step images/s and GFLOP/s for fp32/bf16 x NCHW/channels_last, against the reference conv."""
    from _report import markdown_table

    rows = []
    for bf16 in (False, True):
        for cl in (False, True):
            ref = conv_reference(bf16, cl, steps)
            row = {"precision": "bf16 autocast" if bf16 else "fp32", "layout": "channels_last" if cl else "NCHW",
                   "reference conv GFLOP/s": f"{ref:.0f}"}
            for r in recipes:
                m = recipe_throughput(r, bf16, cl, steps)
                row[f"{r} img/s"] = f"{m['images_per_s']:.0f}"
                row[f"{r} GFLOP/s (% of ref)"] = f"{m['gflops_per_s']:.0f} ({100 * m['gflops_per_s'] / ref:.0f} %)"
            rows.append(row)
            print(row, flush=True)
    ref = conv_reference(True, True, steps)
    row = {"precision": "bf16 autocast", "layout": "channels_last + torch.compile",
           "reference conv GFLOP/s": f"{ref:.0f}"}
    for r in recipes:
        try:
            m = recipe_throughput(r, True, True, steps, compiled=True)
        except Exception as e:  # noqa: BLE001 - no C++ compiler, an inductor gap: a row saying so
            row[f"{r} img/s"] = f"failed: {type(e).__name__}"
            continue
        row[f"{r} img/s"] = f"{m['images_per_s']:.0f} (compile {m['compile_s']:.0f} s)"
        row[f"{r} GFLOP/s (% of ref)"] = f"{m['gflops_per_s']:.0f} ({100 * m['gflops_per_s'] / ref:.0f} %)"
    rows.append(row)
    print(row, flush=True)
    return ("Training step throughput (synthetic batch of the recipe's size, SGD step), against a reference "
            "conv (3x3, 256 maps, 16x16, batch 64, forward + backward) in the same precision and layout; "
            "GFLOP/s = images/s x the step's FLOPs per image (PyTorch's FLOP counter); the last row compiles the "
            "model with torch.compile (inductor; its first step, tracing and compiling, in brackets).\n\n"
            + markdown_table(rows))


COURSE_RECIPES = ["course-mnist-lenet5", "course-mnist-cnn", "course-fashion-mnist-cnn", "course-cifar10-cnn",
                  "course-cifar100-termproject", "course-cifar10-vgg-mixup", "course-resnet50v2-finetune"]


def course_runs(epochs: int, project: str, threads: int, data_dir: str | None, smoke: bool) -> str:
    """Each course recipe by name, shortened to ``epochs`` (ResNet50V2: 1 + 1 epochs on 2,000 images,
    224 px on a CPU); its test accuracy beside the course's figure."""
    import time

    from _report import markdown_table

    import cnnlab
    from cnnlab.errors import UserError
    from cnnlab.recipes import load_recipe

    rows = []
    for name in COURSE_RECIPES:
        opts: dict = {"epochs": epochs}
        if name == "course-resnet50v2-finetune":
            opts = {"epochs": 1, "unfreeze_epochs": 1, "subset": 200 if smoke else 2000}
        elif smoke:
            opts["subset"] = 500
        t = time.perf_counter()
        try:
            r = cnnlab.train(recipe=name, project=project, name=name, threads=threads, data_dir=data_dir, verbose=2,
                             **opts)
            acc, note = f"{100 * r.metrics.get('test_accuracy', float('nan')):.2f}", ""
            minutes = f"{r.metrics.get('train_time_s', 0) / 60:.1f}"
        except UserError as e:  # e.g. no ImageNet weights offline
            acc, minutes, note = "-", "-", str(e)[:120]
        rows.append({"recipe": name, "shortened to": ", ".join(f"{k} {v}" for k, v in opts.items()),
                     "test %": acc, "train min": minutes, "wall min": f"{(time.perf_counter() - t) / 60:.1f}",
                     "course": load_recipe(name).about.get("course", ""), "note": note})
        print(rows[-1], flush=True)
    return ("Each course recipe run by name, shortened (the full schedules take hours to days on 2 cores); "
            "the course's figure is for the full schedule.\n\n" + markdown_table(rows))


def _reused(args: argparse.Namespace, name: str):
    """A finished speedrun of ``--project`` (its speedrun.json) when ``--reuse``; None (train it) when not
    asked or not there."""
    import json
    from types import SimpleNamespace

    if not args.reuse:
        return None
    path = Path(args.project) / "speedrun" / name / "speedrun.json"
    if not path.is_file():
        print(f"--reuse: {path} not found: training it", flush=True)
        return None
    print(f"reusing {path}", flush=True)
    return SimpleNamespace(output=path.parent, summary=json.loads(path.read_text()))


def _overrides(text: str) -> dict:
    """``--quick``'s ``name=value`` options (a value may hold spaces: YAML such as ``{widths: [48, 96]}``)."""
    import re

    from cnnlab.config import TrainConfig
    from cnnlab.config.schema import parse_cli_overrides

    words = [w for w in re.split(r"\s+(?=[A-Za-z_][\w-]*=)", text.strip()) if w]
    return parse_cli_overrides(words, TrainConfig)


def first_reach(curve: list[dict], target: float) -> dict | None:
    return next((p for p in curve if p["accuracy"] >= target), None)


def minutes(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds / 60:.2f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--keras-epochs", type=int, default=30)
    ap.add_argument("--target", type=float, default=0.79, help="the side-by-side target (Keras' best is ~79.9 %%)")
    ap.add_argument("--fast-targets", type=float, nargs="+", default=[0.80, 0.90, 0.92, 0.94])
    ap.add_argument("--skip-keras", action="store_true")
    ap.add_argument("--throughput", action="store_true", help="only the throughput table (minutes)")
    ap.add_argument("--course", type=int, default=0, metavar="EPOCHS",
                    help="only run each course recipe by name, shortened to EPOCHS epochs")
    ap.add_argument("--steps", type=int, default=10, help="timed steps per throughput cell")
    ap.add_argument("--skip-mnist", action="store_true")
    ap.add_argument("--skip-throughput", action="store_true", help="no throughput table (run --throughput alone)")
    ap.add_argument("--reuse", action="store_true",
                    help="take the finished speedruns and Keras curve in --project instead of training "
                         "them again (those not there are trained)")
    ap.add_argument("--other-seeds", type=int, default=None,
                    help="seeds for mnist-fast and fashion-mnist-fast (default: --seeds)")
    ap.add_argument("--long-epochs", type=int, default=0, metavar="EPOCHS",
                    help="also run cifar10-fast with epochs=EPOCHS (one seed): the 15-minute row")
    ap.add_argument("--quick", default="", metavar="OVERRIDES",
                    help="also run cifar10-fast with these name=value options (--seeds seeds), e.g. "
                         "'epochs=2 model_kwargs={widths: [48, 96, 96]}': the time-to-80 %% row")
    ap.add_argument("--smoke", action="store_true", help="tiny subsets and 1 epoch each; docs/benchmarks.md untouched")
    ap.add_argument("--project", default="runs/bench")
    ap.add_argument("--data-dir", default=None)
    args = ap.parse_args()

    import torch

    from cnnlab.data import load_dataset
    from cnnlab.experiments.speedrun import speedrun

    torch.set_num_threads(args.threads)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    if args.course:
        body = course_runs(args.course, args.project, args.threads, args.data_dir, args.smoke)
        print(body)
        if not args.smoke:
            from _report import write_section

            write_section("course_recipes", "The course's recipes by name (shortened runs)", body)
        return
    recipes = ["cifar10-fast", "mnist-fast", "fashion-mnist-fast"]
    if args.skip_throughput:
        table = "Training step throughput: the section `fast_recipes_throughput` (`--throughput`)."
    else:
        table = throughput_table(recipes, 2 if args.smoke else args.steps)
    print(table)
    if args.throughput:
        if not args.smoke:
            from _report import write_section

            write_section("fast_recipes_throughput", "Training step throughput of the fast recipes on this CPU",
                          table)
        return
    smoke = {"subset": 1000, "epochs": 1} if args.smoke else {}
    seeds = 1 if args.smoke else args.seeds
    name = "smoke" if args.smoke else "fast"

    quick_overrides = _overrides(args.quick)  # checked before hours of training, also by --smoke
    targets = [args.target, *args.fast_targets]
    common = {"project": args.project, "data_dir": args.data_dir, "threads": args.threads}
    fast = _reused(args, f"{name}_cifar10") or speedrun("cifar10-fast", seeds=seeds, targets=targets,
                                                         name=f"{name}_cifar10", **common, **smoke)
    print(f"cifar10-fast: {fast.output}", flush=True)
    long = None
    if args.long_epochs and not args.smoke:
        long_name = f"{name}_cifar10_e{args.long_epochs}"
        long = _reused(args, long_name) or speedrun("cifar10-fast", seeds=1, targets=targets, name=long_name,
                                                     epochs=args.long_epochs, **common)
        print(f"cifar10-fast epochs={args.long_epochs}: {long.output}", flush=True)

    quick = None
    if args.quick and not args.smoke:
        quick = _reused(args, f"{name}_cifar10_quick") or speedrun("cifar10-fast", seeds=seeds, targets=targets,
                                                                   name=f"{name}_cifar10_quick", **common,
                                                                   **quick_overrides)
        print(f"cifar10-fast {args.quick}: {quick.output}", flush=True)

    keras = None
    keras_json = Path(args.project) / "keras_textbook.json"
    if not args.skip_keras and args.reuse and keras_json.is_file() and not args.smoke:
        import json

        print(f"reusing {keras_json}", flush=True)
        keras = json.loads(keras_json.read_text())
    elif not args.skip_keras:
        train = load_dataset("cifar10", split="train", data_dir=args.data_dir, download=False)
        test = load_dataset("cifar10", split="test", data_dir=args.data_dir, download=False)
        n, nt = (1000, 1000) if args.smoke else (len(train), len(test))
        keras = keras_textbook(train.images[:n], train.labels[:n], test.images[:nt], test.labels[:nt],
                               1 if args.smoke else args.keras_epochs, args.threads)
        if not args.smoke:
            from cnnlab.io import write_json

            write_json(keras_json, keras)

    others = []
    if not args.skip_mnist:
        for recipe, goals in (("mnist-fast", [0.99, 0.996]), ("fashion-mnist-fast", [0.93, 0.945])):
            n_seeds = 1 if args.smoke else (args.other_seeds or seeds)
            others.append(_reused(args, f"{name}_{recipe}")
                          or speedrun(recipe, seeds=n_seeds, targets=goals, name=f"{name}_{recipe}", **common, **smoke))

    body = (report(fast.summary, keras, others, args, long.summary if long else None,
                   quick.summary if quick else None) + "\n\n" + table)
    print(body)
    if not args.smoke:
        import shutil

        from _report import write_section

        img = Path(__file__).resolve().parent.parent / "docs" / "img" / "speedrun_cifar10_fast.png"
        shutil.copyfile(Path(fast.output) / "speedrun.png", img)  # the 3 seeds' accuracy against time
        body += (f"\n\n![cifar10-fast: test accuracy against training time, {fast.summary['final_accuracy']['n']} "
                 f"seeds](img/{img.name})")
        write_section("fast_recipes", "Time to accuracy on 2 CPU cores: cifar10-fast vs the course's Keras program",
                      body)


def _fast_row(label: str, fast: dict, args: argparse.Namespace) -> dict:
    t = f"{args.target:g}"
    hit = fast["targets"][t]
    return {"program": label,
            "final test %": _pm(fast["final_accuracy"], 100),
            "train min": _pm(fast["train_time_s"], 1 / 60),
            f"min to {args.target * 100:g} %": _pm(hit["time_s"], 1 / 60) + f" ({hit['reached']}/{hit['of']})",
            **{f"min to {float(k) * 100:g} %": _pm(v["time_s"], 1 / 60) + f" ({v['reached']}/{v['of']})"
               for k, v in fast["targets"].items() if k != t}}


def report(fast: dict, keras: dict | None, others: list, args: argparse.Namespace, long: dict | None = None,
           quick: dict | None = None) -> str:
    from _report import markdown_table

    t = f"{args.target:g}"
    fast_hit = fast["targets"][t]
    fast_s = fast_hit["time_s"]["mean"]
    lines = [f"Test accuracy after every epoch (not timed); time = training wall time. cifar10-fast: "
             f"{fast['final_accuracy']['n']} seed(s); figures are mean ± 95 % CI (t-distribution).", ""]
    rows = [_fast_row(f"cifar10-fast (cnnlab, {fast['config'].get('epochs', '?')} epochs)", fast, args)]
    if long is not None:
        rows.append(_fast_row(f"cifar10-fast epochs={args.long_epochs} (cnnlab, 1 seed)", long, args))
    if quick is not None:
        rows.append(_fast_row(f"cifar10-fast {args.quick} (cnnlab, {quick['final_accuracy']['n']} seed(s))",
                              quick, args))
    ratio = ""
    if keras is not None:
        curve = keras["curve"]
        best = max(curve, key=lambda p: p["accuracy"])
        hit = first_reach(curve, args.target)
        rows.append({"program": f"course textbook CNN (Keras 3, {len(curve)} epochs)",
                     "final test %": f"{100 * curve[-1]['accuracy']:.2f} (best {100 * best['accuracy']:.2f} "
                                     f"at {minutes(best['time_s'])} min)",
                     "train min": minutes(curve[-1]["time_s"]),
                     f"min to {args.target * 100:g} %": minutes(hit["time_s"] if hit else None)})
        if hit and fast_s:
            ratio = (f"\n**time to {args.target * 100:g} %: cifar10-fast {fast_s / 60:.2f} min, Keras "
                     f"{hit['time_s'] / 60:.2f} min: ratio {fast_s / hit['time_s']:.3f} "
                     f"({hit['time_s'] / fast_s:.1f}x faster)**\n")
        if not hit:
            ratio += f"\nKeras never reached {args.target * 100:g} % (best {100 * best['accuracy']:.2f} %).\n"
        for label, summary in (("cifar10-fast", fast), (f"cifar10-fast {args.quick}", quick)):
            reach = [first_reach(s["curve"], best["accuracy"]) for s in (summary or {}).get("per_seed", [])]
            if reach and all(reach):
                t_best = sum(p["time_s"] for p in reach) / len(reach)
                ratio += (f"\n{label} passes Keras' best ({100 * best['accuracy']:.2f} %) after {t_best / 60:.2f} min "
                          f"(mean of {len(reach)} seed(s)): {t_best / best['time_s']:.3f} of Keras' "
                          f"{best['time_s'] / 60:.2f} min.\n")
            f80 = (summary or {}).get("targets", {}).get("0.8", {}).get("time_s", {}).get("mean")
            if f80:
                ratio += (f"\n{label} reaches 80 % in {f80 / 60:.2f} min, {f80 / best['time_s']:.3f} of the "
                          f"{best['time_s'] / 60:.2f} min Keras needs for its best ({100 * best['accuracy']:.2f} %).\n")
    lines.append(markdown_table(rows))  # the first row has every column
    lines.append(ratio)
    for other in others:
        s = other.summary
        lines.append(f"\n{s['recipe']} ({s['final_accuracy']['n']} seed(s)): final test "
                     f"{_pm(s['final_accuracy'], 100)} %, training {_pm(s['train_time_s'], 1 / 60)} min; "
                     + "; ".join(f"to {float(k) * 100:g} %: {_pm(v['time_s'], 1 / 60)} min ({v['reached']}/{v['of']})"
                                 for k, v in s["targets"].items()))
    return "\n".join(lines)


def _pm(stat: dict, scale: float) -> str:
    if stat.get("mean") is None:
        return "-"
    text = f"{stat['mean'] * scale:.2f}"
    return text + (f" ± {stat['ci95'] * scale:.2f}" if stat.get("ci95") is not None else "")


if __name__ == "__main__":
    main()
