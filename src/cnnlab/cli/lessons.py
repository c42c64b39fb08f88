"""``cnnlab lr-find`` (the learning-rate range test, every ``train`` option) and ``cnnlab ensemble``
(averaged probabilities and majority vote of several runs); thin layers over
:func:`cnnlab.experiments.lr_find.lr_find` and :func:`cnnlab.experiments.ensemble.ensemble`."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import typer

from cnnlab.cli.common import console
from cnnlab.config.classify import TrainConfig


def _kw(name: str, annotation: Any, default: Any) -> inspect.Parameter:
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation, default=default)


LR_EXTRA = [
    _kw("config", Path | None, typer.Option(None, "--config", "-c", help="YAML file of run options.")),
    _kw("start_lr", float, typer.Option(1e-7, "--start-lr", help="First learning rate of the test.")),
    _kw("end_lr", float, typer.Option(10.0, "--end-lr", help="Last learning rate of the test.")),
    _kw("steps", int, typer.Option(100, "--steps", help="Mini-batches (the lr grows exponentially).")),
    _kw("smooth", float, typer.Option(0.98, "--smooth", help="EMA factor of the smoothed loss.")),
    _kw("diverge", float, typer.Option(4.0, "--diverge", help="Stop once the smoothed loss exceeds this x its "
                                       "minimum.")),
]


def _lr_find(options: dict[str, Any], config: Path | None, start_lr: float, end_lr: float, steps: int,
             smooth: float, diverge: float) -> None:
    from cnnlab.experiments.lr_find import lr_find

    result = lr_find(config, start_lr=start_lr, end_lr=end_lr, steps=steps, smooth=smooth, diverge=diverge,
                     **options)
    steep = "n/a" if result.steepest is None else f"{result.steepest:.3g}"
    console.print(f"suggested lr: [bold]{result.suggestion:.3g}[/] (rule: lr of the lowest smoothed loss / 10; "
                  f"lowest at {result.min_loss_lr:.3g}, steepest descent at {steep})")
    console.print(f"plot: {result.files['plot']}", markup=False)


def ensemble_command(
    runs: list[Path] = typer.Argument(..., help="Members: run folders, checkpoints or .onnx files (2 or more)."),
    weights: str = typer.Option(None, "--weights", help="Member weights, e.g. 1,1,2 (default: equal)."),
    dataset: str = typer.Option(None, "--dataset", "-d", help="Dataset (default: the first member's)."),
    split: str = typer.Option("test", "--split", help="Split to evaluate."),
    data_dir: str = typer.Option(None, "--data-dir", help="Data root."),
    batch: int = typer.Option(256, "--batch", "-b", help="Images per batch."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:N, mps."),
    output: Path = typer.Option(None, "--output", "-o", help="Folder for ensemble.json / ensemble.md."),
    onnx: Path = typer.Option(None, "--onnx", help="Export the ensemble as one ONNX model to this file."),
    json: Path = typer.Option(None, "--json", help="Also write the results as JSON."),
) -> None:
    """Evaluate runs and their ensemble (averaged probabilities, majority vote); gain over the best member."""
    from cnnlab.experiments.ensemble import ensemble
    from cnnlab.io import write_json

    result = ensemble([str(r) for r in runs], weights, dataset=dataset, split=split, data_dir=data_dir,
                      batch=batch, device=device, output=output, onnx=onnx, log=console.print)
    from rich.table import Table

    m = result.metrics
    table = Table(title=f"ensemble on {m['dataset']} {m['split']} ({m['images']} images)")
    for col in ("member", "weight", "accuracy", "loss"):
        table.add_column(col)
    for r in result.members:
        table.add_row(r["member"], f"{r['weight']:g}", f"{r['accuracy']:.4f}", f"{r['loss']:.4f}")
    table.add_row("ensemble: averaged probabilities", "", f"{m['accuracy']:.4f}", f"{m['loss']:.4f}")
    table.add_row("ensemble: majority vote", "", f"{m['vote_accuracy']:.4f}", "")
    console.print(table)
    console.print(f"gain over the best member: {m['gain_over_best']:+.4f} (averaged), "
                  f"{m['vote_gain_over_best']:+.4f} (vote)")
    if json is not None:
        write_json(json, {**m, "member_results": result.members})
    for key, path in result.files.items():
        console.print(f"{key}: {path}", markup=False)


def register(app: typer.Typer) -> None:
    """Add ``lr-find`` and ``ensemble`` to the main app."""
    from cnnlab.cli.schema import config_command

    cmd = config_command(TrainConfig, _lr_find, LR_EXTRA,
                         "Learning-rate range test (Smith): loss against an exponentially growing lr, a plot and "
                         "a suggested lr. Takes every train option (data, model, optimizer, batch...).")
    app.command("lr-find")(cmd)
    app.command("ensemble")(ensemble_command)
