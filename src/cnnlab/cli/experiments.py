"""CLI commands of the experiments group: `compare`, `tune`, `ablate` and `report`.

Thin layers over :func:`cnnlab.experiments.compare.compare`, :func:`cnnlab.experiments.tune.tune`,
:func:`cnnlab.experiments.ablate.ablate` and :func:`cnnlab.experiments.report.report`; optuna, torch and
matplotlib are imported inside the commands only.
"""

from __future__ import annotations

from pathlib import Path

import typer

from cnnlab.cli.common import console


def compare_command(
    ctx: typer.Context,
    spec: Path = typer.Argument(..., help="Comparison spec (YAML): shared settings + a list of entries."),
    project: str = typer.Option("runs", "--project", help="Project folder."),
    name: str = typer.Option(None, "--name", help="Comparison name: the folder <project>/compare/<name> "
                             "(default: the spec's name, else its file name); the same name resumes."),
) -> None:
    """Train each entry of a spec with the same data and budget; one table (MD/CSV/HTML) + curves (resumable).

    Extra --option VALUE arguments (any training option, e.g. --epochs 1 --subset 500) apply to every entry.
    """
    from cnnlab.config import TrainConfig, parse_cli_overrides
    from cnnlab.experiments.compare import compare

    overrides = parse_cli_overrides(list(ctx.args), TrainConfig)
    result = compare(spec, project=project, name=name, log=console.print, **overrides)
    console.print(result.files["table_md"].read_text(encoding="utf-8"), markup=False)
    done = ", ".join(f"{v} {k}" for k, v in result.counts.items() if v)
    console.print(f"entries: {done or 'none'}" + (f"; best: {result.best}" if result.best else ""))
    _print_files(result.files, "table_csv", "table_html", "curves", "diagnostics")


def report_command(
    runs: list[Path] = typer.Argument(..., help="Run folders: train runs, compare, tune or ablate folders."),
    output: Path = typer.Option(None, "--output", "-o",
                                help="Report folder (default runs/report/<first run>)."),
    title: str = typer.Option(None, "--title", help="Report title."),
    samples: int = typer.Option(16, "--samples",
                                help="Held-out images with predictions per train run (0: none)."),
    details: bool = typer.Option(True, "--details/--no-details",
                                 help="Add each comparison entry's own section."),
) -> None:
    """Write a Markdown report (+ assets/) and a self-contained HTML report about run folders."""
    from cnnlab.experiments.report import report

    result = report(runs, output=output, title=title, samples=samples, details=details)
    console.print(f"report: {result.markdown}", markup=False)
    console.print(f"html:   {result.html}", markup=False)


def tune_command(
    config: Path = typer.Argument(..., help="Base run config (YAML, as for cnnlab train --config)."),
    space: Path = typer.Option(..., "--space", help="Search space YAML: option: {grid|choice|uniform|loguniform|int: ...}."),
    sampler: str = typer.Option("tpe", "--sampler", help="grid, random or tpe."),
    trials: str = typer.Option(None, "--trials", help="Number of trials, or 'auto' (top-x % rule; default; grid: whole grid)."),
    top: float = typer.Option(0.05, "--top", help="--trials auto: the top fraction to land in."),
    confidence: float = typer.Option(0.95, "--confidence", help="--trials auto: the chance of landing there."),
    metric: str = typer.Option("val_accuracy", "--metric", help="Run metric to optimise."),
    direction: str = typer.Option(None, "--direction", help="maximize or minimize (default: minimize losses, else maximize)."),
    pruner: str = typer.Option("median", "--pruner", help="median, hyperband or none (per-epoch pruning)."),
    storage: str = typer.Option(None, "--storage", help="Storage shared by workers: postgresql://user:pass@host/db, or "
                                                        "an Optuna journal file on a shared file system "
                                                        "(journal:///path/search.log, or a path ending in .log); "
                                                        "default: SQLite in the search folder."),
    workers: int = typer.Option(1, "--workers", help="Local worker processes (on one storage; start the same "
                                                     "command on other machines to add more)."),
    project: str = typer.Option("runs", "--project", help="Project folder."),
    name: str = typer.Option("exp", "--name", help="Search name: the folder <project>/tune/<name>; the same name "
                                                   "resumes."),
    seed: int = typer.Option(0, "--seed", help="Sampler seed."),
    plots: bool = typer.Option(True, "--plots/--no-plots", help="Write Optuna's plots (PNG)."),
) -> None:
    """Search hyperparameters with Optuna (resumable; several workers or machines can share one search)."""
    from cnnlab.experiments.tune import tune

    result = tune(config, space, sampler=sampler, trials=trials, top=top, confidence=confidence, metric=metric,
                  direction=direction, pruner=pruner, storage=storage, workers=workers, project=project,
                  name=name, seed=seed, plots=plots, log=console.print)
    counts = ", ".join(f"{v} {k}" for k, v in result.counts.items() if v)
    console.print(f"trials: {counts or 'none'}")
    if result.best_value is not None:
        params = ", ".join(f"{k}={v!r}" for k, v in result.best_params.items())
        console.print(f"best {metric} = {result.best_value:.4f} with {params}")
        console.print(f"best config: {result.best_config}  (cnnlab train --config {result.best_config})")
    console.print(f"trials table: {result.run_dir / 'trials.md'}"
                  + (f"; plots: {result.run_dir / 'plots'}" if result.plots else ""))


def ablate_command(
    config: Path = typer.Argument(..., help="Base run config (YAML, as for cnnlab train --config)."),
    factors: Path = typer.Option(..., "--factors", help="Factors YAML: factor: {on: {overrides}, off: {overrides}}."),
    folds: int = typer.Option(5, "--folds", help="Stratified folds of the training set per cell."),
    metric: str = typer.Option("val_accuracy", "--metric", help="Run metric to compare."),
    direction: str = typer.Option(None, "--direction", help="maximize or minimize (default: minimize losses, else maximize)."),
    project: str = typer.Option("runs", "--project", help="Project folder."),
    name: str = typer.Option("exp", "--name", help="Study name: the folder <project>/ablate/<name>; the same name "
                                                   "resumes."),
    plots: bool = typer.Option(True, "--plots/--no-plots", help="Write the box plot (PNG)."),
) -> None:
    """Full-factorial ablation, each cell cross-validated over k folds (table + box plot; resumable)."""
    from cnnlab.experiments.ablate import ablate

    result = ablate(config, factors, folds, metric=metric, direction=direction, project=project, name=name,
                    plots=plots, log=console.print)
    console.print(result.files["table_md"].read_text(encoding="utf-8"), markup=False)
    if result.best:
        console.print(f"best cell: {result.best}")
    _print_files(result.files, "table_csv", "box_plot")


def _print_files(files: dict[str, Path], *keys: str) -> None:
    for key in keys:
        if key in files:
            console.print(f"{key.replace('_', ' ')}: {files[key]}", markup=False)


def register(app: typer.Typer) -> None:
    """Add this group's commands to the main app."""
    app.command("compare", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(
        compare_command)
    app.command("tune")(tune_command)
    app.command("ablate")(ablate_command)
    app.command("report")(report_command)
