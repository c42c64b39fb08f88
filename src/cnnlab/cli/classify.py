"""CLI commands of the classification core: ``train``, ``evaluate``, ``predict``, ``demo``.

Thin layers over ``cnnlab.api``; torch is imported only inside the commands.
"""

from __future__ import annotations

from pathlib import Path

import typer

from cnnlab.cli.common import DEVICE, console
from cnnlab.cli.train import print_metrics


def evaluate_command(
    source: Path = typer.Argument(..., help="Run folder, checkpoint (.pt) or ONNX model."),
    dataset: str | None = typer.Option(None, "--dataset", "-d", help="Default: the dataset it was trained on."),
    split: str = typer.Option("test", "--split", help="test, train or val (val: the run's own validation split)."),
    data_dir: str | None = typer.Option(None, "--data-dir"),
    batch: int = typer.Option(256, "--batch", "-b"),
    tta: bool = typer.Option(False, "--tta", help="Average with mirrored images, using only the flips the run "
                             "trained with (none: a warning and no TTA)."),
    json_out: Path | None = typer.Option(None, "--json", help="Also write the results as JSON."),
    runtime: str | None = typer.Option(None, "--runtime", help="torch (checkpoints) or onnxruntime (.onnx)."),
    device: str = DEVICE,
    per_class: bool = typer.Option(False, "--per-class", help="Print accuracy per class."),
) -> None:
    """Evaluate a trained model: loss, top-1/top-5 accuracy, per-class accuracy, confusion matrix."""
    from cnnlab import api

    result = api.evaluate(source, dataset=dataset, split=split, data_dir=data_dir, batch=batch, tta=tta,
                          json=json_out, runtime=runtime, device=device)
    ops = "+".join(result.get("tta") or [])
    print_metrics(result, f"{result['dataset']} {result.get('split', split)}{f' (TTA: {ops})' if ops else ''}: {source}")
    if per_class:
        from rich.table import Table

        table = Table("class", "accuracy", "images")
        for c, a in result["per_class_accuracy"].items():
            table.add_row(c, f"{a:.4f}", str(result["support"][c]))
        console.print(table)
    if json_out:
        console.print(f"wrote {json_out}")


def predict_command(
    source: Path = typer.Argument(..., help="Run folder, checkpoint (.pt) or ONNX model."),
    images: list[Path] = typer.Argument(..., help="Image files."),
    topk: int = typer.Option(5, "--topk", "-k"),
    runtime: str | None = typer.Option(None, "--runtime", help="torch or onnxruntime."),
    json_out: Path | None = typer.Option(None, "--json", help="Also write the predictions as JSON."),
    device: str = DEVICE,
) -> None:
    """Print the top-k classes (with probabilities) of each image."""
    from cnnlab import api

    results = api.predict(source, [str(p) for p in images], topk=topk, runtime=runtime, device=device)
    for path, top in zip(images, results, strict=True):
        console.print(f"[bold]{path}[/]: " + ", ".join(f"{c} {p:.3f}" for c, p in top))
    if json_out:
        from cnnlab.io import write_json

        write_json(json_out, [{"image": str(p), "top": [{"class": c, "probability": q} for c, q in t]}
                              for p, t in zip(images, results, strict=True)])


def demo_command(
    project: Path = typer.Option(Path("runs"), "--project", help="Where the demo writes its runs."),
    part: list[str] | None = typer.Option(None, "--part", help="Run only the parts whose title contains this."),
    full: bool = typer.Option(False, "--full", help="The full detection tour (30 epochs, about 3 min) instead "
                              "of the quick one (the whole tour in about 1 min on 2 idle cores)."),
) -> None:
    """The embedded tour (no downloads): a small CNN on the bundled digits, then a small YOLO on synthetic scenes streamed through the real-time pipeline."""
    from cnnlab import api

    api.demo(project, parts=part or None, full=full)


def register(app: typer.Typer) -> None:
    """Add this group's commands to the main app."""
    app.command("evaluate")(evaluate_command)
    app.command("predict")(predict_command)
    app.command("demo")(demo_command)
