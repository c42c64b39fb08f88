"""CLI commands ``compare`` and ``report``: thin layers over :func:`cnnlab.experiments.compare.compare`
and :func:`cnnlab.experiments.report.report`; torch and matplotlib are imported inside the commands."""

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
    """Train every entry of a spec with the same data and budget; one table (MD/CSV/HTML) + curves (resumable).

    Extra --option VALUE arguments (any training option, e.g. --epochs 1 --subset 500) apply to every entry.
    """
    from cnnlab.config import TrainConfig, parse_cli_overrides
    from cnnlab.experiments.compare import compare

    overrides = parse_cli_overrides(list(ctx.args), TrainConfig)
    result = compare(spec, project=project, name=name, log=console.print, **overrides)
    console.print(result.files["table_md"].read_text(encoding="utf-8"), markup=False)
    done = ", ".join(f"{v} {k}" for k, v in result.counts.items() if v)
    console.print(f"entries: {done or 'none'}" + (f"; best: {result.best}" if result.best else ""))
    for key in ("table_csv", "table_html", "curves"):
        if key in result.files:
            console.print(f"{key.replace('_', ' ')}: {result.files[key]}", markup=False)


def report_command(
    runs: list[Path] = typer.Argument(..., help="Run folders: train runs, compare, tune or ablate folders."),
    output: Path = typer.Option(None, "--output", "-o", help="Report folder (default runs/report/<first run>)."),
    title: str = typer.Option(None, "--title", help="Report title."),
    samples: int = typer.Option(16, "--samples", help="Held-out images with predictions per train run (0: none)."),
    details: bool = typer.Option(True, "--details/--no-details", help="Add each comparison entry's own section."),
) -> None:
    """Write a Markdown report (+ assets/) and a self-contained HTML report about run folders."""
    from cnnlab.experiments.report import report

    result = report(runs, output=output, title=title, samples=samples, details=details)
    console.print(f"report: {result.markdown}", markup=False)
    console.print(f"html:   {result.html}", markup=False)


def register(app: typer.Typer) -> None:
    """Add this group's commands to the main app."""
    app.command("compare", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(
        compare_command)
    app.command("report")(report_command)
