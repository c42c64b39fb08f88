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
        import fnmatch

        from rich.table import Table

        from cnnlab.cli.common import console
        from cnnlab.errors import UserError
        from cnnlab.models import TASKS, cached_table_rows, list_models, models_table_rows

        if pattern and pattern.startswith("timm/"):
            names = list_models(pattern, task=task)
            if not names:
                raise UserError(f"no timm model matches {pattern!r}" + (f" for task {task}" if task else ""))
            console.print("\n".join(names))
            console.print(f"[dim]{len(names)} timm architectures (random init: cnnlab train --model NAME)[/]")
            return
        if task is not None and task not in TASKS:
            raise UserError(f"unknown task {task!r} (tasks: {', '.join(TASKS)})")
        every = cached_table_rows()  # no torch import once cached
        rows = [r for r in every if (not pattern or fnmatch.fnmatchcase(r["name"], pattern))
                and (task is None or r["task"] == task)]
        if not rows:
            raise UserError(f"no model matches {pattern!r}" + (f" for task {task}" if task else "")
                            + f" (registered: {', '.join(r['name'] for r in every)})")
        if params:
            rows = models_table_rows([r["name"] for r in rows], params=True)
        for r in rows if params else ():
            r["trainable_s"], r["non_trainable_s"] = f"{r['trainable']:,}", f"{r['non_trainable']:,}"
        columns = [("name", "name", {"style": "bold"}), ("task", "task", {}), ("family", "family", {}),
                   ("input", "input", {}), ("trainable", "trainable_s", {"justify": "right"}),
                   ("non-trainable", "non_trainable_s", {"justify": "right"}),
                   ("total", "total_short", {"justify": "right"})]
        shown = ("trainable", "non-trainable", "total") if params else ("family",)
        columns = [c for c in columns if c[0] in ("name", "task", "input", *shown)]
        table = Table(title="cnnlab models", show_lines=False)
        for header, key, kw in columns:
            width = max([len(header)] + [len(str(r[key])) for r in rows])
            table.add_column(header, no_wrap=True, min_width=width, **kw)
        table.add_column("description", overflow="fold", ratio=1)
        for row in rows:
            table.add_row(*(row[key] for _, key, _ in columns), row["description"])
        console.print(table)
        for row in rows:
            if row["aliases"]:
                console.print(f"[dim]{row['name']} also answers to: {', '.join(row['aliases'])}[/]")
        console.print("[dim]any timm architecture: timm/<name> (list with `cnnlab models 'timm/*'`)[/]")
