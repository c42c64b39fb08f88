"""The learning-rate range test (Smith 2017, "Cyclical learning rates", section 3.3): ``cnnlab lr-find``.

    result = cnnlab.lr_find(dataset="cifar10", model="cifar10_cnn", optimizer="sgd")
    result.suggestion   # a learning rate; result.plot: lr_find.png

A fresh model (the run's config: data, model, optimiser, batch) trains for ``steps`` mini-batches while
the learning rate grows exponentially from ``start_lr`` to ``end_lr``. The loss is smoothed with an
exponential moving average (``smooth``, bias-corrected); the test stops early once the smoothed loss
exceeds ``diverge`` x its minimum (the loss has blown up). Nothing is saved but the curve.

The suggestion rule (documented, deterministic): **the learning rate at the minimum of the smoothed
loss, divided by 10** ("one order of magnitude before the loss is lowest", the rule of thumb of Smith
and of fastai). Also reported: ``steepest``, the learning rate where the smoothed loss falls fastest
against log(lr) (before the minimum), a more aggressive choice.

Files in ``<project>/lr_find/<name>``: ``lr_find.png`` (loss against lr, log scale, both values marked),
``lr_find.csv`` and ``lr_find.json``.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnnlab.config import TrainConfig
from cnnlab.config.signature import with_config_signature
from cnnlab.errors import UserError


@dataclass
class LRFindResult:
    """The learning rates tried, the raw and smoothed losses, the suggestion and the files."""

    run_dir: Path
    lrs: list[float]
    losses: list[float]
    smoothed: list[float]
    suggestion: float
    min_loss_lr: float
    steepest: float | None
    files: dict[str, Path] = field(default_factory=dict)

    def __fspath__(self) -> str:
        return str(self.run_dir)


def suggest(lrs: list[float], smoothed: list[float]) -> tuple[float, float, float | None]:
    """(suggestion, lr at the minimum smoothed loss, steepest-descent lr) of a range test.

    suggestion = lr at the minimum / 10 (the minimum is sought after the first tenth of the steps, where
    the moving average is still settling). The steepest point is the most negative slope of the smoothed
    loss against log10(lr) (central differences) between the first tenth of the test and the minimum.
    """
    if len(lrs) != len(smoothed) or len(lrs) < 3:
        raise UserError("the range test needs at least 3 steps")
    lo = max(1, len(lrs) // 10)   # the first tenth: the moving average is still settling
    finite = [i for i, v in enumerate(smoothed) if math.isfinite(v) and i >= lo]
    if not finite:
        raise UserError("the range test gave no finite loss (lower start_lr)")
    i_min = min(finite, key=lambda i: smoothed[i])
    min_lr = lrs[i_min]
    steepest = None
    best = 0.0
    for i in range(lo, min(i_min, len(lrs) - 1)):
        dx = math.log10(lrs[i + 1]) - math.log10(lrs[i - 1])
        slope = (smoothed[i + 1] - smoothed[i - 1]) / dx if dx > 0 else 0.0
        if math.isfinite(slope) and slope < best:
            best, steepest = slope, lrs[i]
    return min_lr / 10, min_lr, steepest


@with_config_signature(TrainConfig)
def lr_find(config: TrainConfig | dict | str | os.PathLike | None = None, *, start_lr: float = 1e-7,
            end_lr: float = 10.0, steps: int = 100, smooth: float = 0.98, diverge: float = 4.0,
            **options: Any) -> LRFindResult:
    """Run the learning-rate range test on the run that ``config`` + ``options`` describe (every
    ``cnnlab.train`` option; ``lr`` and the schedule are ignored). Returns the curve and the suggestion."""
    from cnnlab.engine.optim import create_optimizer
    from cnnlab.engine.run import printer
    from cnnlab.engine.seeding import run_context, seed_everything
    from cnnlab.runs import new_run_dir
    from cnnlab.tasks.classify.run import check_run, resolve_config
    from cnnlab.tasks.classify.task import ClassifyTask

    if not 0 < start_lr < end_lr:
        raise UserError(f"need 0 < start_lr < end_lr, got {start_lr} and {end_lr}")
    if steps < 3:
        raise UserError(f"steps must be >= 3, got {steps}")
    if not 0 <= smooth < 1:
        raise UserError(f"smooth must be in [0, 1), got {smooth}")
    if not diverge > 1:
        raise UserError(f"diverge must be > 1, got {diverge}")
    cfg = resolve_config(config, **options)
    cfg = cfg.replace(lr=start_lr, schedule="constant", warmup_epochs=0.0, ema=None, validation_split=0.0,
                      unfreeze_epochs=0)
    check_run(cfg)
    say = printer(cfg.verbose)
    from cnnlab.devices import resolve_device

    with run_context(cfg.threads, cfg.deterministic):
        device = resolve_device(cfg.device)
        seed_everything(cfg.seed, cfg.deterministic)
        task = ClassifyTask(cfg)
        model, loader = task.setup(cfg, device)
        model = model.to(device)
        run_dir = new_run_dir(cfg.project, "lr_find", cfg.name, exist_ok=cfg.exist_ok)
        optimizer = create_optimizer(model, cfg.optim())
        factor = (end_lr / start_lr) ** (1.0 / (steps - 1))
        lrs: list[float] = []
        losses: list[float] = []
        smoothed: list[float] = []
        avg, best = 0.0, math.inf
        say(f"lr-find {cfg.model} on {cfg.dataset}: {steps} steps, lr {start_lr:g} -> {end_lr:g} ({run_dir})")
        from cnnlab.engine.progress import Progress

        model.train()
        step, epoch, done = 0, 0, False
        with Progress("lr-find", steps, enabled=cfg.verbose == 1) as bar:
            while not done:
                if hasattr(loader, "set_epoch"):
                    loader.set_epoch(epoch)
                for batch in loader:
                    lr = start_lr * factor ** step
                    for g in optimizer.param_groups:
                        g["lr"] = lr * g.get("lr_scale", 1.0)
                    batch = task.to_device(batch, device, False)
                    loss, _, _ = task.loss(model, batch, None)  # type: ignore[arg-type]
                    value = float(loss.detach())
                    optimizer.zero_grad(set_to_none=True)
                    if math.isfinite(value):
                        loss.backward()
                        optimizer.step()
                    step += 1
                    avg = smooth * avg + (1 - smooth) * (value if math.isfinite(value) else 1e30)
                    sm = avg / (1 - smooth ** step)
                    lrs.append(lr)
                    losses.append(value)
                    smoothed.append(sm)
                    best = min(best, sm)
                    bar.advance(info=f"lr {lr:.2e} loss {sm:.4f}")
                    if step >= steps or not math.isfinite(value) or (step > 5 and sm > diverge * best):
                        done = True  # the last lr, or the loss blew up
                        break
                epoch += 1
                done = done or step == 0  # an empty loader
        if len(lrs) < 3:
            raise UserError("the range test stopped after fewer than 3 steps (lower start_lr or use more data)")
        suggestion, min_lr, steepest = suggest(lrs, smoothed)
        start = smoothed[max(1, len(smoothed) // 10)]
        if min(v for v in smoothed if math.isfinite(v)) > 0.97 * start:
            say("warning: the loss hardly fell during the test (less than 3 %); the suggestion is unreliable: "
                "use more --steps, a larger --end-lr or another optimiser")
    files = _write(run_dir, cfg, lrs, losses, smoothed, suggestion, min_lr, steepest)
    say(f"suggested lr {suggestion:.3g} (loss lowest at {min_lr:.3g}; steepest descent at "
        f"{'n/a' if steepest is None else f'{steepest:.3g}'}) -> {files['plot']}")
    return LRFindResult(run_dir, lrs, losses, smoothed, suggestion, min_lr, steepest, files)


def _write(run_dir: Path, cfg: TrainConfig, lrs: list[float], losses: list[float], smoothed: list[float],
           suggestion: float, min_lr: float, steepest: float | None) -> dict[str, Path]:
    from cnnlab.io import atomic_write_text, write_json

    lines = ["step,lr,loss,smoothed_loss"] + [f"{i + 1},{lr:.6g},{loss:.6g},{sm:.6g}" for i, (lr, loss, sm)
                                                in enumerate(zip(lrs, losses, smoothed, strict=True))]
    files = {"csv": atomic_write_text(run_dir / "lr_find.csv", "\n".join(lines) + "\n")}
    files["json"] = write_json(run_dir / "lr_find.json", {
        "model": cfg.model, "dataset": cfg.dataset, "optimizer": cfg.optimizer, "batch": cfg.batch,
        "rule": "lr at the minimum of the smoothed loss / 10", "suggestion": suggestion, "min_loss_lr": min_lr,
        "steepest": steepest, "lrs": lrs, "losses": [v if math.isfinite(v) else None for v in losses],
        "smoothed": [v if math.isfinite(v) else None for v in smoothed]})
    files["plot"] = plot_lr_find(run_dir / "lr_find.json", run_dir / "lr_find.png")
    return files


def plot_lr_find(source: str | os.PathLike, path: str | os.PathLike) -> Path:
    """``lr_find.png`` from ``lr_find.json``: the loss per batch and smoothed against the lr (log scale),
    the suggestion, the lowest loss and the steepest descent marked; the y range follows the smoothed
    curve up to a little above its start, so a shallow dip stays visible."""
    from cnnlab.io import read_json
    from cnnlab.plots import pyplot, save_figure

    d = read_json(source)
    lrs = d["lrs"]
    losses = [math.nan if v is None else v for v in d["losses"]]
    smoothed = [math.nan if v is None else v for v in d["smoothed"]]
    suggestion, min_lr, steepest = d["suggestion"], d["min_loss_lr"], d.get("steepest")
    fig, ax = pyplot().subplots(figsize=(8, 5))
    ax.semilogx(lrs, losses, color="0.75", lw=0.8, label="loss per batch")
    ax.semilogx(lrs, smoothed, color="C0", lw=2, label="smoothed loss")
    finite = [v for v in smoothed if math.isfinite(v)]
    if finite:
        first, low = finite[max(1, len(finite) // 10) if len(finite) > 1 else 0], min(finite)
        top = first + max(0.5 * (first - low), 0.05 * abs(first), 1e-3)
        ax.set_ylim(low - 0.15 * (top - low), top)
    ax.axvline(suggestion, color="C2", ls="--", label=f"suggested lr {suggestion:.2g} (minimum / 10)")
    ax.axvline(min_lr, color="C3", ls=":", label=f"lowest loss at {min_lr:.2g}")
    if steepest is not None:
        ax.axvline(steepest, color="C1", ls="-.", lw=1, label=f"steepest descent at {steepest:.2g}")
    ax.set(xlabel="learning rate (log scale)", ylabel="training loss",
           title=f"Learning-rate range test: {d.get('model')} on {d.get('dataset')} ({d.get('optimizer')}, "
                 f"batch {d.get('batch')})")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path)
