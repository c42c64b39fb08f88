"""CLI commands ``detect`` and ``export-detector``: thin layers over ``cnnlab.detect``.

torch, cv2 and onnxruntime are imported only inside the commands.
"""

from __future__ import annotations

from pathlib import Path

import typer

from cnnlab.cli import detect_options as opt
from cnnlab.cli.common import NAME, PROJECT, console, err_console


@opt.detector_options()
def detect_command(
    detector: dict,
    source: str = typer.Argument(..., help="An image, a folder of images, a glob ('imgs/*.jpg') or a video file."),
    save_json: Path | None = typer.Option(None, "--save-json", help="Also write all detections to this JSON file."),
    save_csv: Path | None = typer.Option(None, "--save-csv", help="Also write all detections to this CSV file."),
    project: Path = PROJECT,
    name: str = NAME,
    no_save: bool = typer.Option(False, "--no-save", help="Write no run folder (no annotated images/video)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar or per-image lines."),
) -> None:
    """Detect objects with a YOLO model; annotated images/video, JSON and CSV go to <project>/detect/<name>/."""
    from collections import Counter

    from rich.markup import escape
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from cnnlab.detect.predict import detect_source

    det = opt.make_detector(detector)
    with Progress(TextColumn("detect"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err_console, transient=True, disable=quiet) as bar:
        task = bar.add_task("detect", total=None)

        def on_frame(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total or None)

        run = detect_source(source, det, save=not no_save, project=project, name=name, save_json=save_json,
                            save_csv=save_csv, on_frame=on_frame)
    if not quiet and len(run.results) <= 20:
        for r in run.results:
            counts = Counter(r.detections.name_of(int(c)) for c in r.detections.class_ids)
            found = ", ".join(f"{n} {k}" for k, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
            where = Path(r.source).name + ("" if r.frame is None else f" #{r.frame}")
            console.print(escape(f"{where} ({r.width}x{r.height}): {found or 'nothing'}"))
    _print_timing(run, det)
    if run.run_dir is not None:
        console.print(f"results saved to [bold]{escape(str(run.run_dir))}[/]")
    for p in (save_json, save_csv):
        if p is not None:
            console.print(escape(f"wrote {p}"))


def _print_timing(run, detector) -> None:
    from rich.table import Table

    w, h = detector.imgsz
    table = Table(title="time per stage", caption=f"{detector.backend_name} backend, input {w}x{h}, "
                  f"{len(run.results)} frame(s), {run.num_detections} detection(s)")
    table.add_column("stage")
    table.add_column("ms / frame", justify="right")
    for stage, ms in run.timing_ms.items():
        table.add_row(stage, f"{ms:.1f}")
    table.add_row("total", f"{sum(run.timing_ms.values()):.1f}", end_section=True)
    table.add_row("frames / s (whole loop)", f"{run.fps:.1f}")
    console.print(table)


def export_detector_command(
    cfg: Path | None = typer.Option(None, "--cfg", help="Darknet .cfg (or --model)."),
    weights: Path | None = typer.Option(None, "--weights", help="Darknet .weights (omit for random weights)."),
    imgsz: str | None = typer.Option(None, "--imgsz", help="Input of the ONNX: 320 or WxH (default: the cfg's)."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Output .onnx (default: beside the cfg)."),
    names: Path | None = typer.Option(None, "--names", help="Class names to store in the ONNX metadata."),
    letterbox: bool = typer.Option(True, "--letterbox/--no-letterbox", help="Preprocessing recorded in metadata."),
    opset: int = typer.Option(17, "--opset", help="ONNX opset (>= 17)."),
    model: Path | None = typer.Option(None, "--model", "-m", help="A detection run folder or checkpoint instead "
                                      "of --cfg (YOLO, cnnlab-nano, or Faster R-CNN: boxes/scores/labels at a "
                                      "fixed size)."),
) -> None:
    """Export a Darknet model or a detection run to ONNX with decoding inside: output (1, N, 5+C) YOLOv5-style;
    checked vs PyTorch."""
    from cnnlab.detect.export import export_detector
    from cnnlab.detect.names import load_names

    name_list = load_names(names) if names is not None else None
    result = export_detector(cfg, weights, output=output, imgsz=imgsz, names=name_list, letterbox=letterbox,
                             opset=opset, model=model)
    console.print(f"exported {result.path} (output {tuple(result.output_shape)}, opset {opset})")
    console.print(f"max abs diff vs PyTorch (onnxruntime): {result.max_abs_diff:.3g} "
                  f"(largest output value {result.max_abs_output:.3g}; boxes are in pixels)")


def register(app: typer.Typer) -> None:
    """Add this group's commands to the main app."""
    app.command("detect")(detect_command)
    app.command("export-detector")(export_detector_command)
