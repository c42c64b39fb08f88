"""Time-to-accuracy: ``cnnlab speedrun RECIPE --seeds N --target 0.90`` trains a recipe (or a config
file) with N seeds and reports the mean and 95 % confidence interval (t-distribution) of the final
accuracy and, for each target, the training wall time, epochs and training FLOPs until the curve
first reaches it.

The curve is the accuracy of the evaluation weights (EMA when on; the run's test-time augmentation
when its ``tta`` is on; bfloat16 with ``bf16_cpu``) on ``split`` after every epoch: ``test`` (the
usual definition of time-to-accuracy, as DAWNBench and airbench measure it; tune on ``val`` so the
test split is not tuned on) or ``val`` (the run's held-out part of the training set). Time is the engine's training wall time only: the per-epoch
evaluations are not counted. Training FLOPs per image are counted once by PyTorch's FLOP counter
(forward + backward of the model in training mode); the run's images/s times that is the compute
rate the loop reached.

Writes ``<project>/speedrun/<name>/``: ``speedrun.json`` (everything), ``speedrun.csv`` (the table),
``speedrun.png`` (accuracy against wall time, one line per seed) and one train run per seed under
``runs/``.
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnnlab.engine.callbacks import Callback
from cnnlab.errors import UserError

SPLITS = ("test", "val")


@dataclass
class SpeedrunResult:
    """What :func:`speedrun` returns: its folder, the summary (as in speedrun.json) and the seed runs."""

    output: Path
    summary: dict[str, Any]
    runs: list[Path]

    def __fspath__(self) -> str:
        return str(self.output)


class AccuracyClock(Callback):
    """After every epoch: (epoch, training seconds so far, images seen, accuracy on ``split``)."""

    def __init__(self, split: str = "test") -> None:
        self.split = split
        self.curve: list[dict[str, float]] = []

    def on_epoch_end(self, trainer: Any, epoch: int, logs: dict[str, Any]) -> None:
        acc = self._accuracy(trainer, logs)
        data = getattr(trainer.task, "data", None)
        seen = int(getattr(data, "num_train", 0)) * epoch
        self.curve.append({"epoch": epoch, "time_s": float(trainer.train_time), "images": seen,
                           "accuracy": float(acc)})

    def _accuracy(self, trainer: Any, logs: dict[str, Any]) -> float:
        if self.split == "val":
            if logs.get("val_accuracy") is None:
                raise UserError("speedrun --split val needs a validation split (validation_split > 0)")
            return float(logs["val_accuracy"])
        from cnnlab.tasks.classify.evaluate import evaluate_model

        task = trainer.task
        loader = getattr(getattr(task, "data", None), "test", None)
        if loader is None:
            raise UserError(f"speedrun --split test: dataset {trainer.cfg.dataset} has no test split; use --split val")
        result, _ = evaluate_model(trainer.eval_model, loader, task.num_classes, trainer.device,
                                   tta=getattr(task, "tta_ops", ()), amp=trainer.amp,
                                   channels_last=trainer.channels_last, bf16=trainer.bf16_cpu)
        trainer.task.train_mode(trainer.model)
        return float(result["accuracy"])


def train_flops_per_image(model: Any, in_chans: int, img_size: int) -> int:
    """FLOPs of one training step per image (forward + backward in training mode, batch of 2)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    net = copy.deepcopy(model).train()
    p = next(net.parameters())
    x = torch.randn(2, in_chans, img_size, img_size, device=p.device, dtype=p.dtype)
    with FlopCounterMode(display=False) as counter:
        out = net(x)
        out.float().sum().backward()
    return int(counter.get_total_flops() // 2)


def mean_ci(values: Sequence[float], level: float = 0.95) -> dict[str, Any]:
    """Mean, sample std and the half-width of the ``level`` confidence interval (t-distribution)."""
    vals = [float(v) for v in values]
    n = len(vals)
    if n == 0:
        return {"n": 0, "mean": None, "std": None, "ci95": None}
    mean = sum(vals) / n
    if n == 1:
        return {"n": 1, "mean": mean, "std": None, "ci95": None}
    from scipy.stats import t

    std = math.sqrt(sum((v - mean) ** 2 for v in vals) / (n - 1))
    half = float(t.ppf(0.5 + level / 2, n - 1)) * std / math.sqrt(n)
    return {"n": n, "mean": mean, "std": std, "ci95": half}


def time_to_target(curve: list[dict[str, float]], target: float, flops_per_image: int) -> dict[str, Any] | None:
    """The first epoch of ``curve`` at or above ``target``: its time, epoch and training FLOPs; None if never."""
    for point in curve:
        if point["accuracy"] >= target:
            return {"time_s": point["time_s"], "epochs": point["epoch"],
                    "flops": float(point["images"]) * flops_per_image}
    return None


def _check_targets(targets: Sequence[float]) -> list[float]:
    out = sorted({float(t) for t in targets})
    if not out or not all(0.0 < t <= 1.0 for t in out):
        raise UserError(f"targets must be accuracies in (0, 1], e.g. 0.90; got {list(targets)}")
    return out


def speedrun(recipe: str | os.PathLike, seeds: int = 3, targets: Sequence[float] = (0.9,), *,
             split: str = "test", seed: int = 0, project: str | os.PathLike = "runs", name: str = "exp",
             plots: bool = True, **overrides: Any) -> SpeedrunResult:
    """Train ``recipe`` (a recipe name, or a YAML config file) with seeds ``seed .. seed + seeds - 1``;
    ``overrides`` are TrainConfig options on top of it (e.g. ``epochs=4``)."""
    from cnnlab.io import write_json
    from cnnlab.runs import new_run_dir
    from cnnlab.tasks.classify.run import resolve_config, train

    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise UserError(f"seeds must be a whole number >= 1, got {seeds!r}")
    if split not in SPLITS:
        raise UserError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    goals = _check_targets(targets)
    if "seed" in overrides or "project" in overrides:
        raise UserError("speedrun sets seed and project itself; use --seed (the first seed) and --project")
    is_file = Path(str(recipe)).suffix in (".yaml", ".yml") or Path(str(recipe)).is_file()
    if is_file and not Path(str(recipe)).is_file():
        raise UserError(f"config file not found: {recipe}")
    base: dict[str, Any] = {} if is_file else {"recipe": str(recipe)}
    config = str(recipe) if is_file else None
    verbose = overrides.pop("verbose", 2)
    cfg = resolve_config(config, **base, **overrides)  # a bad recipe or option fails before any folder exists
    out = new_run_dir(project, "speedrun", name)
    runs, per_seed = [], []
    for i in range(seeds):
        clock = AccuracyClock(split)
        result = train(config, callbacks=[clock], **base, **overrides, seed=seed + i, project=str(out),
                       name=f"seed{seed + i}", verbose=verbose)
        model = result.model
        pre = _preprocess(result.run_dir)
        flops = train_flops_per_image(model, pre["in_chans"], pre["img_size"])
        m = result.metrics
        final = m.get(f"{split}_accuracy", clock.curve[-1]["accuracy"] if clock.curve else None)
        per_seed.append({"seed": seed + i, "run": str(result.run_dir), "final_accuracy": final,
                         "last_epoch_accuracy": clock.curve[-1]["accuracy"] if clock.curve else None,
                         "test_accuracy": m.get("test_accuracy"),
                         "train_time_s": m.get("train_time_s"), "epochs": m.get("epochs"),
                         "images_per_s": m.get("images_per_s"), "train_flops_per_image": flops,
                         "gflops_per_s": (m.get("images_per_s") or 0.0) * flops / 1e9,
                         "curve": clock.curve,
                         "targets": {f"{t:g}": time_to_target(clock.curve, t, flops) for t in goals}})
        runs.append(result.run_dir)
    summary = summarise(per_seed, goals)
    summary.update({"recipe": cfg.recipe or str(recipe), "dataset": cfg.dataset, "model": cfg.model,
                    "split": split, "seeds": [s["seed"] for s in per_seed],
                    "config": cfg.to_dict(),
                    "time": "training wall time of the engine (per-epoch evaluations excluded)",
                    "flops": "training FLOPs = images seen x (forward + backward FLOPs per image)",
                    "per_seed": per_seed})
    rows = table_rows(summary)
    summary["table"] = rows
    write_json(out / "speedrun.json", summary)
    _write_csv(out / "speedrun.csv", rows)
    if plots:
        plot_curves(summary, out / "speedrun.png")
    return SpeedrunResult(out, summary, runs)


def _preprocess(run_dir: Path) -> dict[str, Any]:
    from cnnlab.engine.checkpoint import load_checkpoint

    ckpt = load_checkpoint(run_dir / "weights" / "last.pt")
    return dict(ckpt.get("preprocess") or {"in_chans": 3, "img_size": 32})


def summarise(per_seed: list[dict[str, Any]], targets: Sequence[float]) -> dict[str, Any]:
    """Mean ± 95 % CI of the final accuracy and of time/epochs/FLOPs to each target (over the seeds
    that reached it; ``reached`` counts them)."""
    out: dict[str, Any] = {"final_accuracy": mean_ci([s["final_accuracy"] for s in per_seed
                                                       if s["final_accuracy"] is not None]),
                           "train_time_s": mean_ci([s["train_time_s"] for s in per_seed if s["train_time_s"]]),
                           "targets": {}}
    for t in targets:
        hits = [s["targets"][f"{t:g}"] for s in per_seed if s["targets"].get(f"{t:g}")]
        out["targets"][f"{t:g}"] = {"reached": len(hits), "of": len(per_seed),
                                    **{k: mean_ci([h[k] for h in hits]) for k in ("time_s", "epochs", "flops")}}
    return out


def _fmt(stat: dict[str, Any], scale: float = 1.0, digits: int = 2, unit: str = "") -> str:
    if stat.get("mean") is None:
        return "-"
    text = f"{stat['mean'] * scale:.{digits}f}"
    if stat.get("ci95") is not None:
        text += f" ± {stat['ci95'] * scale:.{digits}f}"
    return text + unit


def table_rows(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """One row for the final accuracy and one per target (mean ± 95 % CI over the seeds)."""
    n = summary["final_accuracy"]["n"]
    rows = [{"measure": f"final {summary['split']} accuracy %", "value": _fmt(summary["final_accuracy"], 100),
             "seeds": n}]
    for t, info in summary["targets"].items():
        rows.append({"measure": f"to {float(t) * 100:g} %: minutes", "value": _fmt(info["time_s"], 1 / 60),
                     "seeds": f"{info['reached']}/{info['of']} reached"})
        rows.append({"measure": f"to {float(t) * 100:g} %: epochs", "value": _fmt(info["epochs"], 1, 1),
                     "seeds": f"{info['reached']}/{info['of']}"})
        rows.append({"measure": f"to {float(t) * 100:g} %: training TFLOPs", "value": _fmt(info["flops"], 1e-12, 1),
                     "seeds": f"{info['reached']}/{info['of']}"})
    return rows


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    import csv
    import io

    from cnnlab.io import atomic_write_text

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=["measure", "value", "seeds"])
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def plot_curves(summary: dict[str, Any], path: Path) -> Path:
    """Accuracy on the curve's split against training wall time, one line per seed, targets dashed."""
    from cnnlab.plots import pyplot, save_figure

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for s in summary["per_seed"]:
        curve = s["curve"]
        ax.plot([p["time_s"] / 60 for p in curve], [100 * p["accuracy"] for p in curve], marker="o",
                markersize=3, label=f"seed {s['seed']}")
    for t in summary["targets"]:
        ax.axhline(100 * float(t), linestyle="--", color="grey", linewidth=0.8)
        ax.annotate(f"{float(t) * 100:g} %", (0, 100 * float(t)), textcoords="offset points", xytext=(2, 2),
                    fontsize=8, color="grey")
    fin = summary["final_accuracy"]
    ax.set_title(f"{summary['recipe']}: {summary['split']} accuracy vs training time "
                 f"(final {_fmt(fin, 100)} %, {fin['n']} seed{'' if fin['n'] == 1 else 's'})", fontsize=10)
    ax.set_xlim(left=0)
    ax.set_xlabel("training wall time (minutes, evaluations excluded)")
    ax.set_ylabel(f"{summary['split']} accuracy %")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, path)
