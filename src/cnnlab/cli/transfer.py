"""CLI commands for bringing models in from elsewhere: ``import-keras``."""

from __future__ import annotations

from pathlib import Path

import typer

from cnnlab.cli.common import NAME, PROJECT, console


def register(app: typer.Typer) -> None:
    """Add this group's commands to the main app."""
    app.command("import-keras")(import_keras_cmd)


def import_keras_cmd(
    h5: Path = typer.Argument(..., help="Keras model saved with model.save('model.h5')."),
    project: Path = PROJECT,
    name: str = NAME,
    classes: str = typer.Option(None, "--classes", help="Class names, comma-separated, or a file with one per line."),
    preprocess: str = typer.Option("scale", "--preprocess", help="Pixel scaling the Keras model expects: scale "
                                   "(x/255), tf (x/127.5-1), torch (ImageNet mean/std) or raw."),
    dataset: str = typer.Option(None, "--dataset", "-d", help="Dataset the model was trained on (default for "
                                "evaluate)."),
) -> None:
    """Rebuild a Keras .h5 CNN as a cnnlab run (weights converted), ready to evaluate/export/fine-tune."""
    from cnnlab.engine.checkpoint import load_checkpoint, model_from_checkpoint
    from cnnlab.models import count_params
    from cnnlab.models.keras_import import import_keras

    names = None
    if classes:
        p = Path(classes)
        names = [ln.strip() for ln in p.read_text().splitlines() if ln.strip()] if p.is_file() \
            else [c.strip() for c in classes.split(",")]
    run = import_keras(h5, project=project, name=name, classes=names, preprocess=preprocess, dataset=dataset)
    model = model_from_checkpoint(load_checkpoint(run / "weights" / "best.pt"))
    trainable, frozen = count_params(model)
    console.print(f"imported [bold]{h5}[/] -> [bold]{run}[/] "
                  f"({trainable:,} trainable + {frozen:,} non-trainable parameters)")
