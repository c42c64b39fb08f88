"""CLI commands of classification + localisation: ``localize-train`` (options generated from
``LocalizeConfig``), ``localize-eval``, ``localize`` (predict and draw) and ``localize-export``; thin layers
over ``cnnlab.tasks.localize``. torch is imported only inside the commands."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from cnnlab.cli.common import console
from cnnlab.config.localize import LocalizeConfig
from cnnlab.errors import UserError

MODEL = typer.Argument(..., help="A localize run folder or its weights/best.pt.")


def _train(options: dict[str, Any], config: Path | None, resume: Path | None) -> None:
    from cnnlab.tasks.localize.run import train_localizer

    if resume is not None:
        if config is not None:
            raise UserError("--resume continues a run with its own config; drop --config")
        result = train_localizer(resume=resume, **options)
    else:
        result = train_localizer(config, **options)
    m = result.metrics
    console.print(f"val: top-1 {m['val_accuracy']:.4f}, mean IoU {m['val_iou']:.4f}, correct (class and IoU >= 0.5) "
                  f"{m['val_correct']:.4f} (best epoch {m['best_epoch']}, {m['train_time_s']:.0f}s of training)")
    console.print(f"results saved to [bold]{result.run_dir}[/]; try: cnnlab localize IMAGE -m {result.run_dir}")


def eval_command(model: Path = MODEL,
                 data: str = typer.Option(None, "--data", help="Detection data (data.yaml, YOLO, COCO, VOC) "
                                          "or synthetic; default: the run's own validation data."),
                 split: str = typer.Option("val", "--split", help="Split of a data.yaml."),
                 objects: str = typer.Option(None, "--objects", help="largest | single (default: the run's)."),
                 batch: int = typer.Option(128, "--batch", "-b", help="Images per batch."),
                 json_out: Path | None = typer.Option(None, "--json", help="Also write the results here.")) -> None:
    """Top-1 accuracy, mean IoU and "correct" (class right and IoU >= 0.5) of a localiser."""
    from cnnlab.tasks.localize.infer import evaluate_localizer

    r = evaluate_localizer(model, data, split, objects, batch, json_out)
    console.print(f"{r['images']} images: top-1 {r['accuracy']:.4f}, mean IoU {r['iou']:.4f}, "
                  f"correct {r['correct']:.4f}, loss {r['loss']:.4f}")


def predict_command(images: list[Path] = typer.Argument(..., help="Image files."), model: Path = typer.Option(
                        ..., "--model", "-m", help="A localize run folder or its weights/best.pt."),
                    output: Path | None = typer.Option(None, "--output", "-o", help="Folder for the images with "
                                                       "their box drawn."),
                    json_out: Path | None = typer.Option(None, "--json", help="Also write the results here.")) -> None:
    """Class and box of each image (one object per image); -o draws the box into copies of the images."""
    from cnnlab.tasks.localize.infer import predict_localizer

    results = predict_localizer(model, images, output)
    for r in results:
        console.print(f"{r['image']}: {r['class']} {r['score']:.3f} box {r['box']}")
    if json_out is not None:
        from cnnlab.io import write_json

        write_json(json_out, results)
    if output is not None:
        console.print(f"drawn into {output}")


def export_command(model: Path = MODEL, output: Path = typer.Option(..., "--output", "-o", help="The .onnx file."),
                   opset: int = typer.Option(17, "--opset", help="ONNX opset.")) -> None:
    """Export a localiser to ONNX (outputs logits and xyxy boxes), checked against PyTorch."""
    from cnnlab.tasks.localize.infer import export_localizer

    r = export_localizer(model, output, opset)
    console.print(f"wrote {r['path']} ({len(r['classes'])} classes, {r['img_size']}px); ONNX Runtime vs PyTorch "
                  f"max abs diff {r['max_abs_diff']:.2e}")


def register(app: typer.Typer) -> None:
    """Add the localize commands to the main app."""
    from cnnlab.cli.schema import config_command
    from cnnlab.cli.train import CONFIG, RESUME

    train_cmd = config_command(
        LocalizeConfig, _train, [CONFIG, RESUME],
        "Train a classifier + box regressor (one object per image) on synthetic scenes or detection data "
        "(YOLO, COCO, VOC); writes <project>/localize/<name>.")
    app.command("localize-train")(train_cmd)
    app.command("localize-eval")(eval_command)
    app.command("localize")(predict_command)
    app.command("localize-export")(export_command)
