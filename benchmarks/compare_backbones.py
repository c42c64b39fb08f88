"""Five from-scratch backbones on a CIFAR-10 subset, each with the same data and the same time budget.

    python benchmarks/compare_backbones.py            # full: 5 entries x 4 min training + evaluation (~30 min)
    python benchmarks/compare_backbones.py --quick    # smoke test: 2 small models, tiny subset, 1 epoch

Runs ``cnnlab.compare`` (resumable: an interrupted run continues where it stopped; ``--fresh`` starts
over) and writes the section ``compare_backbones`` of docs/benchmarks.md: the comparison table
(parameters, FLOPs, accuracies, times, throughput) and the validation curves of every entry
(copied to docs/benchmarks/compare_backbones/). ``--entries FILE`` appends entries from a YAML list
(e.g. transfer backbones) to the five built-in ones.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

IMG_DIR = REPO / "docs" / "benchmarks" / "compare_backbones"
ENTRIES = [
    {"name": "lenet5", "model": "lenet5"},
    {"name": "cifar10_cnn", "model": "cifar10_cnn"},
    {"name": "vgg11_bn", "model": "vgg11_bn_cifar"},
    {"name": "resnet18", "model": "resnet18_cifar"},
    {"name": "preact_resnet18", "model": "preact_resnet18"},
]
SHOWN = ["entry", "model", "status", "params_total", "mflops", "epochs", "train_accuracy", "val_accuracy",
         "test_accuracy", "test_top5_accuracy", "test_loss", "train_time_s", "eval_time_s",
         "train_images_per_s", "eval_images_per_s", "note"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smoke test: 2 small models, tiny subset, 1 epoch")
    ap.add_argument("--dataset", default="cifar10")
    ap.add_argument("--data-dir", default=os.environ.get("CNNLAB_DATA") or str(REPO.parent / "shared" / "data"))
    ap.add_argument("--project", default=str(REPO / "runs" / "bench"))
    ap.add_argument("--subset", type=int, default=None, help="training images (default 5000; quick 300)")
    ap.add_argument("--budget", type=float, default=None, help="training seconds per entry (default 240; quick 60)")
    ap.add_argument("--epochs", type=int, default=None, help="epoch cap per entry (default 30; quick 1)")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    ap.add_argument("--entries", type=Path, default=None, help="YAML list of extra entries to append")
    ap.add_argument("--fresh", action="store_true", help="delete the previous comparison and start over")
    ap.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = ap.parse_args()
    os.environ.setdefault("MPLBACKEND", "Agg")

    from _report import markdown_table, write_section

    import cnnlab
    from cnnlab.io import read_yaml

    quick = args.quick
    subset = args.subset or (300 if quick else 5000)
    budget = args.budget or (60.0 if quick else 240.0)
    epochs = args.epochs or (1 if quick else 30)
    entries = [dict(e) for e in (ENTRIES[:2] if quick else ENTRIES)]
    if args.entries is not None:
        extra = read_yaml(args.entries)
        if not isinstance(extra, list):
            raise SystemExit(f"{args.entries}: expected a YAML list of entries")
        entries += extra
    spec = {
        "description": "from-scratch backbones, same data, same training-time budget",
        "shared": {"dataset": args.dataset, "data_dir": args.data_dir, "subset": subset,
                   "validation_split": 0.02, "batch": 64, "optimizer": "adam", "lr": 1e-3, "epochs": epochs,
                   "augment": {"horizontal_flip": True, "crop_padding": 4}, "seed": 0,
                   "threads": args.threads, "verbose": 2},
        "time_budget": budget,
        "entries": entries,
    }
    name = f"backbones_{args.dataset}" + ("_quick" if quick else "")
    folder = Path(args.project) / "compare" / name
    if args.fresh or quick:
        shutil.rmtree(folder, ignore_errors=True)

    t0 = time.perf_counter()
    result = cnnlab.compare(spec, project=args.project, name=name)
    wall = time.perf_counter() - t0
    table = markdown_table(result.rows, SHOWN)
    print(table)
    print(f"wall time {wall:.0f} s; folder {result.run_dir}")
    if args.no_write:
        return 0

    links = ""
    curves = result.files.get("curves")
    if curves is not None:
        IMG_DIR.mkdir(parents=True, exist_ok=True)
        dest = IMG_DIR / ("curves_quick.png" if quick else "curves.png")
        shutil.copyfile(curves, dest)
        links = f"![validation accuracy of every entry]({dest.relative_to(REPO / 'docs')})\n"
    setup = (f"{args.dataset}: {subset} training images, 2 % of the training split held out for validation, "
             f"the full test split; Adam lr 1e-3, batch 64, flip + 4-pixel crop augmentation, seed 0; each entry "
             f"trains for at most {budget:.0f} s (it stops before an epoch would pass the budget) or "
             f"{epochs} epochs, {args.threads} threads. Accuracies: training = last epoch (with "
             f"augmentation), validation = best epoch, test = best checkpoint. MFLOPs per image from "
             f"`cnnlab.inspect.summary`. Total wall time {wall / 60:.1f} min.")
    body = (
        ("**Quick smoke run (tiny subset, 1 epoch): figures are not meaningful.** "
         "Run `python benchmarks/compare_backbones.py` for the real comparison.\n\n" if quick else "")
        + setup + "\n\n" + table + "\n" + links + "\n"
        + "For reference, the course's textbook CIFAR-10 CNN (`cifar10_cnn`) reached 79.89 % after 30 epochs "
          "on all 50,000 training images; here every model gets the same few minutes of CPU time.\n"
    )
    cmd = "python benchmarks/compare_backbones.py" + (" --quick" if quick else "")
    write_section("compare_backbones", f"Backbone comparison ({args.dataset}, same time budget, CPU)", body,
                  command=cmd)
    return 0


if __name__ == "__main__":
    sys.exit(main())
