"""Transfer learning without the internet (issue 5's "Must show").

A. ImageNet -> CIFAR-10 with few labels: Keras' ImageNet MobileNet v1 (width 0.25, the only ImageNet
   weights on this machine, ../shared/data/weights) fine-tuned in two phases (head only, then all
   layers at a lower rate) vs the same network from scratch, with the same images, augmentation and
   training-time budget. Test accuracy on the full 10,000-image CIFAR-10 test set.
B. Between cnnlab's own runs: LeNet-5 pretrained on Fashion-MNIST, re-headed and fine-tuned on 1 % of
   MNIST, vs LeNet-5 from scratch on the same 1 %, same epochs.

    CNNLAB_DATA=../shared/data python benchmarks/transfer.py [--quick] [--threads 2]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def imagenet_rows(project: Path, fractions: list[float], budget: dict[float, float], threads: int,
                  input_size: int) -> list[dict]:
    """Part A: pretrained vs scratch MobileNet 0.25 on CIFAR-10 subsets under a time budget."""
    import cnnlab
    from cnnlab.experiments.compare import TimeBudget
    from cnnlab.paths import data_root

    h5 = data_root() / "weights" / "mobilenet_2_5_224_tf_no_top.h5"
    base = dict(dataset="cifar10", model="mobilenet", batch=64, optimizer="adam", seed=0, verbose=2,
                threads=threads, augment="standard", validation_split=0.1, project=str(project),
                model_kwargs={"backbone_kwargs": {"alpha": 0.25}, "input_size": input_size})
    rows = []
    for frac in fractions:
        n = int(round(50_000 * frac / 0.9))  # the training part after the 10 % validation split
        recipes = {
            "ImageNet-pretrained, fine-tuned": dict(pretrained=str(h5), freeze="all", epochs=3, lr=1e-3,
                                                    unfreeze="none", unfreeze_epochs=200, unfreeze_lr=2e-4),
            "from scratch": dict(epochs=200, lr=2e-3, schedule="constant"),
        }
        for label, recipe in recipes.items():
            t0 = time.perf_counter()
            result = cnnlab.train(**base, **recipe, subset=n, name=f"cifar{frac:g}_{label.split()[0]}",
                                  callbacks=[TimeBudget(budget[frac])])
            m = result.metrics
            rows.append({"labels": f"{frac:.0%} ({int(n * 0.9)} train img)", "model": label,
                         "epochs": len(result.history), "train time (s)": round(m.get("train_time_s", 0) or
                                                                                  time.perf_counter() - t0),
                         "test top-1": round(m["test_accuracy"], 4),
                         "test top-5": round(m.get("test_top5_accuracy", float("nan")), 4)})
            print(rows[-1], flush=True)
    return rows


def runs_rows(project: Path, threads: int, pre_epochs: int, ft_epochs: int) -> list[dict]:
    """Part B: Fashion-MNIST-pretrained LeNet-5 re-headed for 1 % of MNIST vs scratch."""
    import cnnlab

    common = dict(model="lenet5", batch=64, optimizer="adam", lr=1e-3, seed=0, verbose=2, threads=threads,
                  project=str(project))
    pre = cnnlab.train(dataset="fashion_mnist", epochs=pre_epochs, name="fmnist_pre", **common)
    rows = []
    for label, extra in {"pretrained on Fashion-MNIST, re-headed": {"pretrained": str(pre.run_dir)},
                         "from scratch": {}}.items():
        r = cnnlab.train(dataset="mnist", epochs=ft_epochs, subset=600, name=f"mnist1_{label.split()[0]}",
                         **common, **extra)
        rows.append({"labels": "1 % of MNIST (600 img)", "model": f"LeNet-5, {label}",
                     "epochs": ft_epochs, "test top-1": round(r.metrics["test_accuracy"], 4)})
        print(rows[-1], flush=True)
    return rows


def gains(rows: list[dict]) -> str:
    lines = []
    by = {}
    for r in rows:
        by.setdefault(r["labels"], {})[r["model"]] = r["test top-1"]
    for labels, models in by.items():
        pre = [v for k, v in models.items() if "scratch" not in k]
        scratch = [v for k, v in models.items() if "scratch" in k]
        if pre and scratch:
            gain = (pre[0] - scratch[0]) * 100
            lines.append(f"- {labels}: gain of transfer over scratch **{gain:+.1f} points**"
                         + (" (negative transfer: the source task's features do not help this target "
                            "at this size; shown as measured)" if gain < 0 else ""))
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny budgets, to check the script end to end")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--input-size", type=int, default=128, help="resolution the MobileNet backbone sees")
    ap.add_argument("--part", choices=["all", "imagenet", "runs"], default="all")
    args = ap.parse_args()
    from _report import markdown_table, write_section

    fractions = [0.01, 0.1]
    budget = {0.01: 20.0, 0.1: 30.0} if args.quick else {0.01: 180.0, 0.1: 360.0}
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp)
        body = ""
        if args.part in ("all", "imagenet"):
            rows = imagenet_rows(project, fractions, budget, args.threads, args.input_size)
            body += (f"### A. ImageNet MobileNet v1 0.25 -> CIFAR-10 with few labels\n\n"
                     f"Input 32 px resized to {args.input_size} inside the model, standard augmentation, "
                     f"Adam, batch 64, 10 % of the subset held out for validation; training-time budget "
                     f"{budget[0.01]:.0f} s (1 %) and {budget[0.1]:.0f} s (10 %) per model on "
                     f"{args.threads} threads; pretrained = 3 epochs head only (lr 1e-3), then all layers "
                     f"(lr 2e-4). Test: the full CIFAR-10 test set.\n\n"
                     + markdown_table(rows) + "\n" + gains(rows) + "\n")
        if args.part in ("all", "runs"):
            rows = runs_rows(project, args.threads, 1 if args.quick else 5, 2 if args.quick else 20)
            body += ("### B. Transfer between cnnlab runs\n\n"
                     "`cnnlab train --dataset mnist --model lenet5 --subset 600 --pretrained runs/classify/fmnist_pre`"
                     " re-heads the Fashion-MNIST run's classifier for MNIST.\n\n"
                     + markdown_table(rows) + "\n" + gains(rows))
    title = "Transfer learning offline" + (" (quick smoke run, not a result)" if args.quick else "")
    print(body)
    write_section("transfer", title, body)


if __name__ == "__main__":
    main()
