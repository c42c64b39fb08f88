"""CLI commands of semantic segmentation: ``segment-train`` (options generated from ``SegmentConfig``),
``segment-eval``, ``segment`` (predict and draw) and ``segment-export``; thin layers over
``cnnlab.tasks.segment``. torch is imported only inside the commands."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from cnnlab.cli.common import console
from cnnlab.config.segment import SegmentConfig
from cnnlab.errors import UserError

MODEL = typer.Argument(..., help="A segment run folder or its weights/best.pt.")


def _train(options: dict[str, Any], config: Path | None, resume: Path | None) -> None:
    from cnnlab.tasks.segment.run import train_segmenter

    if resume is not None:
        if config is not None:
            raise UserError("--resume continues a run with its own config; drop --config")
        result = train_segmenter(resume=resume, **options)
    else:
        result = train_segmenter(config, **options)
    m = result.metrics
    console.print(f"val: pixel accuracy {m['val_pixel_accuracy']:.4f}, mIoU {m['val_miou']:.4f} (best epoch "
                  f"{m['best_epoch']}, {m['train_time_s']:.0f}s of training)")
    console.print(f"results saved to [bold]{result.run_dir}[/]; try: cnnlab segment IMAGE -m {result.run_dir}")


def eval_command(model: Path = MODEL,
                 data: str = typer.Option(None, "--data", help="synthetic, an images/ + masks/ folder or a VOC "
                                          "folder; default: the run's own validation data."),
                 batch: int = typer.Option(16, "--batch", "-b", help="Images per batch."),
                 json_out: Path | None = typer.Option(None, "--json", help="Also write the results here.")) -> None:
    """Pixel accuracy, per-class IoU and mIoU of a segmenter."""
    from cnnlab.tasks.segment.infer import evaluate_segmenter

    r = evaluate_segmenter(model, data, batch, json_out)
    per_class = ", ".join(f"{c} {v:.3f}" if v is not None else f"{c} -" for c, v in r["iou"].items())
    console.print(f"{r['images']} images: pixel accuracy {r['pixel_accuracy']:.4f}, mIoU {r['miou']:.4f} "
                  f"(IoU: {per_class})")


def predict_command(images: list[Path] = typer.Argument(..., help="Image files."), model: Path = typer.Option(
                        ..., "--model", "-m", help="A segment run folder or its weights/best.pt."),
                    output: Path = typer.Option(Path("segment-out"), "--output", "-o", help="Folder for the masks "
                                                "(<stem>_mask.png, class ids) and overlays (<stem>_overlay.jpg).")
                    ) -> None:
    """Predict a class for every pixel; writes each mask and the mask drawn over the image."""
    import numpy as np

    from cnnlab.tasks.segment.infer import predict_segmenter

    for path, mask in zip(images, predict_segmenter(model, images, output), strict=True):
        ids, counts = np.unique(mask, return_counts=True)
        share = ", ".join(f"class {i}: {c / mask.size:.1%}" for i, c in zip(ids, counts, strict=True))
        console.print(f"{path.name}: {share}")
    console.print(f"masks and overlays in {output}")


def export_command(model: Path = MODEL, output: Path = typer.Option(..., "--output", "-o", help="The .onnx file."),
                   opset: int = typer.Option(17, "--opset", help="ONNX opset.")) -> None:
    """Export a segmenter to ONNX (output logits N x K x S x S), checked against PyTorch."""
    from cnnlab.tasks.segment.infer import export_segmenter

    r = export_segmenter(model, output, opset)
    console.print(f"wrote {r['path']} ({len(r['classes'])} classes, {r['img_size']}px); ONNX Runtime vs PyTorch "
                  f"max abs diff {r['max_abs_diff']:.2e}")


def register(app: typer.Typer) -> None:
    """Add the segment commands to the main app."""
    from cnnlab.cli.schema import config_command
    from cnnlab.cli.train import CONFIG, RESUME

    train_cmd = config_command(
        SegmentConfig, _train, [CONFIG, RESUME],
        "Train a semantic segmenter (U-Net, FCN-8s/32s from scratch, torchvision models) on synthetic scenes, "
        "an images/ + masks/ folder or VOC; writes <project>/segment/<name>.")
    app.command("segment-train")(train_cmd)
    app.command("segment-eval")(eval_command)
    app.command("segment")(predict_command)
    app.command("segment-export")(export_command)
