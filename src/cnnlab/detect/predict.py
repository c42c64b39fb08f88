"""Run a ``Detector`` over an image, a folder of images or a video file, and save what it found.

A run folder ``<project>/detect/<name>`` receives the annotated images (same file names) or video
(``<stem>.mp4``), ``detections.json`` and ``detections.csv`` (one row per box) and ``config.yaml``;
``metrics.json`` holds the mean time per stage.
"""

from __future__ import annotations

import csv
import io
import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cnnlab.detect.types import Detections
from cnnlab.errors import UserError

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".jp2", ".pbm", ".pgm", ".ppm")
VIDEO_EXTS = (".mp4", ".avi", ".mov", ".mkv", ".m4v", ".webm", ".mpg", ".mpeg", ".wmv", ".flv", ".ts")
STAGES = ("preprocess", "inference", "postprocess", "draw")
CSV_FIELDS = ("source", "frame", "class_id", "name", "score", "x1", "y1", "x2", "y2")


@dataclass
class FrameResult:
    """Detections of one image or video frame."""

    source: str
    frame: int | None
    width: int
    height: int
    detections: Detections

    def to_dict(self) -> dict:
        return {"source": self.source, "frame": self.frame, "width": self.width, "height": self.height,
                "detections": self.detections.to_dicts()}


@dataclass
class DetectRun:
    """What ``detect_source`` did: per-frame results, timing per stage and the files it wrote."""

    results: list[FrameResult]
    timing_ms: dict[str, float]            # stage -> mean milliseconds per frame
    fps: float                             # frames per second over the whole loop
    run_dir: Path | None = None
    saved: list[Path] = field(default_factory=list)

    @property
    def num_detections(self) -> int:
        return sum(len(r.detections) for r in self.results)


def collect_inputs(source: str | os.PathLike) -> tuple[str, list[Path]]:
    """``("images", files)`` for an image, a folder or a glob pattern; ``("video", [file])`` for a video."""
    text = str(source)
    if any(ch in text for ch in "*?["):
        base = Path(text).parent if Path(text).parent.is_dir() else Path(".")
        files = sorted(p for p in base.glob(Path(text).name) if p.suffix.lower() in IMAGE_EXTS)
        if not files:
            raise UserError(f"no images match {text}")
        return "images", files
    from cnnlab.paths import find_path

    p = Path(source)
    p = p if p.exists() else (find_path(source, "image") or find_path(source, "video") or p)
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_EXTS)
        if not files:
            videos = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in VIDEO_EXTS)
            if len(videos) == 1:
                return "video", videos
            raise UserError(f"no images in folder {p} (looked for {', '.join(IMAGE_EXTS[:5])}, ...)")
        return "images", files
    if not p.exists():
        raise UserError(f"source not found: {p}")
    if p.suffix.lower() in VIDEO_EXTS:
        return "video", [p]
    return "images", [p]


def read_image(path: Path) -> np.ndarray:
    """Read an image as BGR (unicode-safe); an unreadable file is a UserError, a truncated JPEG a warning
    naming the file (`cnnlab.detect.images.read_image`)."""
    from cnnlab.detect.images import read_image as read

    return read(path)


def detect_source(source: str | os.PathLike, detector, save: bool = True, project: str | os.PathLike = "runs",
                  name: str = "exp", save_json: str | os.PathLike | None = None,
                  save_csv: str | os.PathLike | None = None,
                  on_frame: Callable[[int, int], None] | None = None) -> DetectRun:
    """Detect objects in ``source`` (image, folder, glob or video) and save annotated media + tables.

    ``on_frame(done, total)`` is called after each frame (total 0 when unknown), for progress bars.
    """
    from cnnlab.detect.draw import draw_detections, write_image
    from cnnlab.io import atomic_write_bytes, write_json
    from cnnlab.runs import new_run_dir, write_run_config, write_run_metrics

    kind, files = collect_inputs(source)
    run_dir = new_run_dir(project, "detect", name) if save else None
    results: list[FrameResult] = []
    totals = Counter(dict.fromkeys(STAGES, 0.0))
    saved: list[Path] = []
    start = time.perf_counter()

    def step(img: np.ndarray, src: str, frame: int | None) -> np.ndarray | None:
        det = detector(img)
        annotated = None
        if run_dir is not None:
            t = time.perf_counter()
            annotated = draw_detections(img, det)
            det.timing["draw"] = (time.perf_counter() - t) * 1e3
        totals.update(det.timing)
        det.image = None        # the results of a whole folder/video must not keep every frame in memory
        results.append(FrameResult(src, frame, img.shape[1], img.shape[0], det))
        return annotated

    if kind == "images":
        for i, f in enumerate(files):
            img = read_image(f)
            annotated = step(img, str(f), None)
            if annotated is not None:
                ext = f.suffix.lower() if f.suffix.lower() in (".jpg", ".jpeg", ".png", ".bmp") else ".jpg"
                saved.append(write_image(run_dir / (f.stem + ext), annotated))
            if on_frame:
                on_frame(i + 1, len(files))
    else:
        from cnnlab.detect.pipeline.sinks import VideoSink
        from cnnlab.detect.pipeline.sources import VideoCaptureSource

        video = VideoCaptureSource(str(files[0]), "file")
        video.open()
        writer = VideoSink(run_dir / f"{files[0].stem}.mp4", fps=video.info.fps or 25.0) if run_dir else None
        complete = False
        try:
            while (frame := video.read()) is not None:
                annotated = step(frame, str(files[0]), len(results))
                if annotated is not None:
                    writer.write_image(annotated)
                if on_frame:
                    on_frame(len(results), video.info.frame_count or 0)
            complete = True
        finally:
            video.close()
            if writer is not None:
                writer.close(keep=complete)
        if not results:
            raise UserError(f"cannot read any frame from video {files[0]}")
        if writer is not None:
            saved.append(writer.path)
    elapsed = time.perf_counter() - start
    n = max(1, len(results))
    timing = {k: v / n for k, v in totals.items() if v > 0 or k != "draw"}
    run = DetectRun(results, timing, len(results) / elapsed if elapsed > 0 else 0.0, run_dir, saved)
    model = {"model": detector.source.describe(), "backend": detector.backend_name,
             "imgsz": list(detector.imgsz), "conf": detector.conf, "iou": detector.iou,
             "letterbox": detector.letterbox}
    payload = {**model, "names": detector.names, "results": [r.to_dict() for r in results]}
    csv_text = detections_csv(results)
    if run_dir is not None:
        saved.append(write_json(run_dir / "detections.json", payload))
        saved.append(atomic_write_bytes(run_dir / "detections.csv", csv_text.encode("utf-8")))
        write_run_config(run_dir, {"task": "detect", "source": str(source), **model,
                                   "device": detector.backend.device})
        write_run_metrics(run_dir, {"frames": len(results), "detections": run.num_detections,
                                    "fps": run.fps, "timing_ms": timing})
    if save_json is not None:
        saved.append(write_json(save_json, payload))
    if save_csv is not None:
        saved.append(atomic_write_bytes(save_csv, csv_text.encode("utf-8")))
    return run


def detections_csv(results: list[FrameResult]) -> str:
    """One CSV row per detected box (``source, frame, class_id, name, score, x1, y1, x2, y2``)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_FIELDS)
    for r in results:
        for d in r.detections.to_dicts():
            w.writerow([r.source, "" if r.frame is None else r.frame, d["class_id"], d["name"],
                        f"{d['score']:.6f}", *(f"{v:.2f}" for v in d["box"])])
    return buf.getvalue()
