"""CLI command ``anchors``: k-means anchors of a dataset (``detect-train`` is in ``cnnlab.cli.train``).

torch and OpenCV are imported only inside the commands.
"""

from __future__ import annotations

from pathlib import Path

import typer

from cnnlab.cli.common import console


def anchors_command(
    data: Path = typer.Argument(..., help="data.yaml, YOLO images folder, COCO .json or VOC folder."),
    n: int = typer.Option(9, "-n", "--num", help="Number of anchors (9 for yolov3, 6 for yolov3-tiny)."),
    imgsz: int = typer.Option(416, "--imgsz", help="Network input size the anchors are for."),
    split: str = typer.Option("train", "--split", help="Split of a data.yaml to measure."),
    seed: int = typer.Option(0, "--seed", help="Seed of the k-means initialisation."),
    json_out: Path | None = typer.Option(None, "--json", help="Also write the result to this JSON file."),
) -> None:
    """k-means anchors (distance 1 - IoU) for a dataset, as a Darknet cfg line."""
    from cnnlab.detect.train.anchors import anchors_cfg_text, dataset_anchors

    result = dataset_anchors(data, n=n, imgsz=imgsz, split=split, seed=seed)
    console.print(f"{result['boxes']} boxes in {result['images']} images at {imgsz}px -> {n} anchors:")
    console.print(anchors_cfg_text(result["anchors"]))
    console.print(f"mean best IoU {result['mean_iou']:.3f}, best possible recall {result['bpr']:.3f}")
    if "default_fitness" in result:
        d = result["default_fitness"]
        console.print(f"(YOLOv3 default anchors: mean best IoU {d['mean_iou']:.3f}, recall {d['bpr']:.3f})")
    if json_out is not None:
        from cnnlab.io import write_json

        write_json(json_out, result)


def register(app: typer.Typer) -> None:
    """Add this group's commands to the main app."""
    app.command("anchors")(anchors_command)
