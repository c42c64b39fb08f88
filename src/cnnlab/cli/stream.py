"""CLI commands ``stream`` (real-time detection with honest FPS, web live view) and ``sweep`` (capture
resolution x input size x FPS grid scored with mAP): thin layers over ``cnnlab.detect.pipeline``.

torch and cv2 are imported only inside the commands. The model options are those of ``cnnlab detect``.
"""

from __future__ import annotations

from pathlib import Path

import typer

from cnnlab.cli import detect_options as opt
from cnnlab.cli.common import NAME, PROJECT, console, err_console, parse_size


@opt.detector_options()
def stream_command(
    detector: dict,
    source: str = typer.Argument(..., help="Webcam index (0), video file, rtsp:// or http:// URL, or a folder of images."),
    capture: str | None = typer.Option(None, "--capture", help="Capture resolution WxH, e.g. 640x480 (webcams are "
                                       "asked for it; files/streams are resized to it)."),
    capture_fps: float | None = typer.Option(None, "--capture-fps", help="Frame rate to ask the camera for."),
    max_fps: float | None = typer.Option(None, "--max-fps", help="Cap the pipeline's rate (sleeps only the rest of "
                                         "each period; the achieved rate is shown)."),
    web: str | None = typer.Option(None, "--web", help="Serve the live view at HOST:PORT (e.g. 127.0.0.1:8000, "
                                   "or just 8000)."),
    host: str | None = typer.Option(None, "--host", help="Host for --web (0.0.0.0 to let other machines watch)."),
    token: str | None = typer.Option(None, "--token", help="Access token for the web view ('auto': a random one, "
                                     "the default off loopback; 'none': none)."),
    save: Path | None = typer.Option(None, "--save", help="Write the annotated video here (.mp4 or .avi)."),
    save_jsonl: Path | None = typer.Option(None, "--save-jsonl", help="Write detections, one JSON line per frame."),
    save_frames: Path | None = typer.Option(None, "--save-frames", help="Write annotated frames as images here."),
    show: bool = typer.Option(False, "--show", help="Show a window (needs OpenCV with GUI support; q quits)."),
    duration: float | None = typer.Option(None, "--duration", help="Stop after this many seconds."),
    max_frames: int | None = typer.Option(None, "--max-frames", help="Stop after this many frames."),
    overlay: bool = typer.Option(True, "--overlay/--no-overlay", help="Draw FPS and stage times on the frames."),
    overlap: bool = typer.Option(True, "--overlap/--no-overlap", help="Run post-processing, drawing and outputs "
                                 "beside inference (threads) or strictly one after another."),
    log_every: float = typer.Option(5.0, "--log-every", help="Seconds between log lines (0: none)."),
    json_out: Path | None = typer.Option(None, "--json", help="Write the run summary to this JSON file."),
) -> None:
    """Real-time detection on a camera, video, stream or image folder, with honest FPS and stage times."""
    from cnnlab.detect.pipeline import Pipeline, build_sinks
    from cnnlab.detect.web import parse_web_address

    if show:
        opt.check_show()  # before the model loads
    web_addr = None
    if web is not None or host is not None:
        h, port = parse_web_address(web)
        h = host or h
        web_addr = f"[{h}]:{port}" if ":" in h else f"{h}:{port}"
    size = parse_size(capture) if capture else None
    sinks = build_sinks(save, save_jsonl, save_frames, web_addr, token, show)  # checks --token without --web
    det = opt.make_detector(detector)
    w, h = det.imgsz
    console.print(f"model: {det.source.describe()}, input {w}x{h}, {len(det.names)} classes")
    pipeline = Pipeline(det, source, sinks, capture=size, capture_fps=capture_fps, max_fps=max_fps,
                        overlay=overlay, overlap=overlap, duration=duration, max_frames=max_frames,
                        log_every=log_every or None, logger=lambda m: err_console.print(m, soft_wrap=True))
    summary = pipeline.run()
    _print_summary(summary)
    if json_out is not None:
        from cnnlab.io import write_json

        write_json(json_out, summary.to_dict())
        console.print(f"wrote {json_out}")


def _print_summary(summary) -> None:
    from rich.table import Table

    cap = f", max {summary.max_fps:g}" if summary.max_fps else ""
    table = Table(title=f"{summary.frames} frames in {summary.seconds:.1f} s: {summary.fps:.1f} FPS achieved{cap}"
                        f" (stopped by {summary.stopped_by})")
    table.add_column("stage")
    table.add_column("mean ms", justify="right")
    table.add_column("p95 ms", justify="right")
    for stage, ms in summary.stages_ms.items():
        table.add_row(stage, f"{ms:.1f}", f"{summary.stages_p95_ms[stage]:.1f}")
    table.add_row("total work", f"{summary.frame_ms:.1f}", "", end_section=True)
    table.add_row("capture -> processing latency", f"{summary.latency_ms:.1f}", "")
    out = summary.output_latency_ms
    if out:
        table.add_row("capture -> output latency (p50)", f"{out['p50']:.1f}", f"{out['p95']:.1f}")
    console.print(table)
    if summary.dropped or summary.source.get("kind") in ("webcam", "stream"):
        console.print(f"the source delivered {summary.captured} frames at {summary.capture_fps:.1f} FPS; "
                      f"{summary.dropped} stale frames skipped (the newest frame is always the one detected)")
    if summary.reconnects:
        console.print(f"{summary.reconnects} reconnects")
    for kind, where in summary.outputs.items():
        if kind != "web":
            console.print(f"{kind}: {where}")


@opt.detector_options(scores_map=True, skip=("imgsz",))
def sweep_command(
    detector: dict,
    data: Path = typer.Argument(..., help="Labelled detection data played as frames: data.yaml, YOLO images folder "
                                "(e.g. coco128/images/train2017), COCO .json or VOC folder."),
    video: Path | None = typer.Option(None, "--video", help="A labelled video: frame i is scored against image i "
                                      "of DATA."),
    captures: str = typer.Option("320x240,640x480", "--captures", help="Capture resolutions (frames are resized "
                                 "to each first)."),
    sizes: str = typer.Option("160,320", "--sizes", help="Network input sizes (multiples of 32)."),
    fps: str = typer.Option("24,40", "--fps", help="FPS settings (the pipeline's --max-fps)."),
    limit: int | None = typer.Option(None, "--limit", help="Use only the first N images."),
    split: str = typer.Option("val", "--split", help="Split of a data.yaml."),
    project: Path = PROJECT,
    name: str = NAME,
) -> None:
    """The course's grid (capture resolution x input size x FPS) run through the pipeline: mAP, real FPS, stage times."""
    from cnnlab.detect.pipeline.sweep import parse_grid, run_sweep

    cap_list = parse_grid(captures, parse_size)
    size_list = parse_grid(sizes, int)
    fps_list = parse_grid(fps, float)
    opts = {k: detector[k] for k in ("cfg", "weights", "model", "backend", "conf", "iou", "letterbox")}
    opts.update({k: str(v) if v else None for k, v in opts.items() if k in ("cfg", "weights", "model")})
    built: list[object] = []

    def factory(size: int):   # one backend line for the whole grid
        det = opt.make_detector(detector, announce=not built, imgsz=size)
        built.append(size)
        return det

    result = run_sweep(data, factory, video=video,
                       captures=cap_list, sizes=size_list, fps=fps_list, limit=limit, split=split,
                       names=detector["names"], project=project, name=name, config={"model": opts})
    if result.rows:
        console.print((result.run_dir / "results.md").read_text(), soft_wrap=True, markup=False)
    if not result.complete:
        err_console.print("[yellow]interrupted:[/] the finished cells were saved")
    console.print(f"results saved to [bold]{result.run_dir}[/]")


def register(app: typer.Typer) -> None:
    """Add this group's commands to the main app."""
    app.command("stream")(stream_command)
    app.command("sweep")(sweep_command)
