"""CLI command ``cnnlab detect-eval``: mAP of a detector (or of saved predictions) on a labelled dataset."""

from __future__ import annotations

from pathlib import Path

import typer

from cnnlab.cli import detect_options as opt
from cnnlab.cli.common import NAME, PROJECT, console, err_console


@opt.detector_options(scores_map=True, skip=("letterbox", "max_det", "threads"))
def detect_eval_cmd(
    detector: dict,
    data: Path = typer.Argument(..., help="data.yaml, YOLO images folder, COCO .json or VOC folder."),
    predictions: Path = typer.Option(None, "--predictions",
                                     help="Saved detections: COCO results JSON or 'cnnlab detect' JSON."),
    split: str = typer.Option("val", "--split", help="Split of a data.yaml / VOC folder."),
    images: Path = typer.Option(None, "--images", help="Image folder of a COCO .json."),
    max_det: int = typer.Option(100, "--max-det", help="Detections per image and class counted (COCO)."),
    project: Path = PROJECT,
    name: str = NAME,
    exist_ok: bool = typer.Option(False, "--exist-ok", help="Reuse <project>/detect/<name> if it exists."),
    plots: bool = typer.Option(True, "--plots/--no-plots", help="Write PR/F1 curves and confusion matrices."),
    json_out: Path = typer.Option(None, "--json", help="Also write the metrics to this JSON file."),
) -> None:
    """mAP@0.5 and mAP@0.5:0.95 (COCO protocol) with per-class AP, PR curve and confusion matrix.

    Writes <project>/detect/<name>/. --conf and --iou default to the mAP settings (0.001, 0.6), not to
    those of `cnnlab detect` (0.25, 0.45): the precision-recall curve needs the low-score boxes.
    """
    import warnings

    from cnnlab.errors import UserError

    if predictions is not None and any(detector[k] for k in ("cfg", "weights", "model")):
        raise UserError("give either --predictions or a detector (--cfg/--weights/--model), not both")

    from cnnlab.detect.evaluate import detect_eval, rich_table

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = detect_eval(data, predictions=predictions, split=split, images=images, max_det=max_det,
                             project=project, name=name, exist_ok=exist_ok, plots=plots, json=json_out,
                             verbose=True, **detector)
    for w in result["warnings"]:
        err_console.print(f"[yellow]warning:[/] {w}", soft_wrap=True)
    console.print(rich_table(result))
    if result["speed_ms"]:
        console.print("speed per image: " + ", ".join(f"{k} {v:.1f} ms" for k, v in result["speed_ms"].items()))
    console.print(f"results saved to [bold]{result['run_dir']}[/]")
    if json_out is not None:
        console.print(f"metrics written to {json_out}")


def register(app: typer.Typer) -> None:
    """Add ``detect-eval`` to the main app."""
    app.command("detect-eval")(detect_eval_cmd)
