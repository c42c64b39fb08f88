"""CLI: ``cnnlab models [PATTERN] [--task T] [--params]`` lists the registered architectures."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this group's commands to the main app."""

    @app.command("models")
    def models_cmd(
        pattern: str = typer.Argument(None, help="fnmatch pattern, e.g. 'resnet*'; 'timm/<pattern>' lists "
                                                 "timm architectures."),
        task: str = typer.Option(None, "--task", "-t", help="Only models for this task: classify or detect."),
        params: bool = typer.Option(False, "--params", "-p",
                                    help="Build each model (10 classes, its default input) and count "
                                         "parameters."),
    ) -> None:
        """List registered models (and timm's, with a timm/ pattern)."""
        from rich.table import Table

        from cnnlab.cli.common import console
        from cnnlab.errors import UserError
        from cnnlab.models import list_models, model_entries, models_table_rows

        if pattern and pattern.startswith("timm/"):
            names = list_models(pattern, task=task)
            if not names:
                raise UserError(f"no timm model matches {pattern!r}" + (f" for task {task}" if task else ""))
            for n in names:
                console.print(n)
            console.print(f"[dim]{len(names)} timm architectures (random init: cnnlab train --model NAME)[/]")
            return
        names = list_models(pattern, task=task)
        if not names:
            raise UserError(f"no model matches {pattern!r}" + (f" for task {task}" if task else "")
                            + f" (registered: {', '.join(model_entries())})")
        rows = models_table_rows(names, params=params)
        table = Table(title="cnnlab models", show_lines=False)

        def col(header: str, key: str, **kw) -> None:
            width = max([len(header)] + [len(str(r[key])) for r in rows])
            table.add_column(header, no_wrap=True, min_width=width, **kw)

        col("name", "name", style="bold")
        col("task", "task")
        if not params:
            col("family", "family")
        col("input", "input")
        if params:
            for r in rows:
                r["trainable_s"], r["non_trainable_s"] = f"{r['trainable']:,}", f"{r['non_trainable']:,}"
            col("trainable", "trainable_s", justify="right")
            col("non-trainable", "non_trainable_s", justify="right")
            col("total", "total_short", justify="right")
        table.add_column("description", overflow="fold", ratio=1)
        for row in rows:
            cells = [row["name"], row["task"]] + ([] if params else [row["family"]]) + [row["input"]]
            if params:
                cells += [row["trainable_s"], row["non_trainable_s"], row["total_short"]]
            table.add_row(*cells, row["description"])
        console.print(table)
        for row in rows:
            if row["aliases"]:
                console.print(f"[dim]{row['name']} also answers to: {', '.join(row['aliases'])}[/]")
        console.print("[dim]any timm architecture: timm/<name> (list with `cnnlab models 'timm/*'`)[/]")
