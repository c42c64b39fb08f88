"""CLI: ``cnnlab recipes [NAME]`` lists the shipped training recipes (or prints one);
``cnnlab speedrun RECIPE --seeds N --target 0.9`` measures time-to-accuracy. Thin layers over
:mod:`cnnlab.recipes` and :func:`cnnlab.experiments.speedrun.speedrun`."""

from __future__ import annotations

from pathlib import Path

import typer


def recipes_command(
    name: str = typer.Argument(None, help="Print this recipe's YAML instead of the list."),
) -> None:
    """List the named training recipes (cnnlab train --recipe NAME) with their expected figures."""
    from rich.markup import escape

    from cnnlab.cli.common import console
    from cnnlab.recipes import list_recipes, load_recipe

    if name:
        console.print(load_recipe(name).text, markup=False, highlight=False)
        return
    for key in list_recipes():
        r = load_recipe(key)
        console.print(f"[bold]{key}[/]  {escape(r.summary)}")
        for label, field in (("2-core CPU", "cpu"), ("GPU", "gpu"), ("course", "course")):
            if r.about.get(field):
                console.print(f"    [dim]{label}:[/] {escape(r.about[field])}")
    console.print("[dim]use: cnnlab train --recipe NAME \\[options]; cnnlab recipes NAME prints one[/]")


def speedrun_command(
    ctx: typer.Context,
    recipe: str = typer.Argument(..., help="A recipe name (cnnlab recipes) or a YAML config file."),
    seeds: int = typer.Option(3, "--seeds", help="Number of seeds (runs)."),
    target: list[float] = typer.Option([0.9], "--target", help="Accuracy target(s), e.g. --target 0.90 "
                                       "--target 0.92."),
    split: str = typer.Option("test", "--split", help="Curve split evaluated after every epoch: test or val."),
    seed: int = typer.Option(0, "--seed", help="First seed (then seed+1, ...)."),
    project: Path = typer.Option(Path("runs"), "--project", help="Parent folder of run folders."),
    name: str = typer.Option("exp", "--name", help="Run name: <project>/speedrun/<name>."),
) -> None:
    """Train a recipe with N seeds: mean ± 95 % CI of the final accuracy and time/epochs/FLOPs to each
    target; extra name=value arguments are training options (e.g. epochs=4)."""
    from rich.table import Table

    from cnnlab.cli.common import console
    from cnnlab.config import TrainConfig
    from cnnlab.config.schema import parse_cli_overrides
    from cnnlab.experiments.speedrun import speedrun

    overrides = parse_cli_overrides(list(ctx.args), TrainConfig)
    result = speedrun(recipe, seeds=seeds, targets=target, split=split, seed=seed, project=str(project), name=name,
                      **overrides)
    table = Table(title=f"speedrun {result.summary['recipe']} ({result.output})")
    for column in ("measure", "value", "seeds"):
        table.add_column(column)
    for row in result.summary["table"]:
        table.add_row(str(row["measure"]), str(row["value"]), str(row["seeds"]))
    console.print(table)
    console.print(f"written: {result.output / 'speedrun.json'}, speedrun.csv, speedrun.png", markup=False)


def register(app: typer.Typer) -> None:
    """Add ``recipes`` and ``speedrun`` to the main app."""
    app.command("recipes")(recipes_command)
    app.command("speedrun", context_settings={"allow_extra_args": True,
                                              "ignore_unknown_options": True})(speedrun_command)
