"""The course's parameter sweep, done honestly: capture resolution x network input size x FPS setting,
each cell run through the real pipeline on a labelled image sequence (or a labelled video), scored
with mAP, and timed per stage. Writes ``runs/sweep/<name>/`` with results.csv, results.md and a plot."""

from __future__ import annotations

import csv
import io
import itertools
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cnnlab.detect.pipeline.runner import Pipeline
from cnnlab.detect.pipeline.sinks import CallbackSink, FrameResult
from cnnlab.detect.pipeline.sources import ImageSequenceSource, VideoCaptureSource
from cnnlab.detect.pipeline.timing import STAGES
from cnnlab.errors import UserError
from cnnlab.plots import pyplot, save_figure

log = logging.getLogger("cnnlab.stream")

#: The course's grid (Jetson Nano term project).
COURSE_CAPTURES: tuple[tuple[int, int], ...] = ((320, 240), (640, 480))
COURSE_SIZES: tuple[int, ...] = (160, 320)
COURSE_FPS: tuple[float, ...] = (24.0, 40.0)

COLUMNS = ["capture", "imgsz", "max_fps", "frames", "mAP50", "mAP50_95", "achieved_fps", "frame_ms",
           *[f"{s}_ms" for s in STAGES], "dropped"]


@dataclass
class SweepResult:
    """The run folder and one row per grid cell (see `COLUMNS`)."""

    run_dir: Path
    rows: list[dict[str, Any]] = field(default_factory=list)
    complete: bool = True          # False when Ctrl-C ended the sweep early (finished cells kept)

    def best(self, key: str = "mAP50") -> dict[str, Any]:
        return max(self.rows, key=lambda r: r[key])


def _rescale(result: FrameResult, sample: Any, mapping: np.ndarray | None) -> Any:
    """Detections of a (resized) frame in the pixels of the labelled image, with dataset class ids."""
    from cnnlab.detect.evaluate import remap_classes
    from cnnlab.detect.types import Detections

    d = result.detections
    h, w = result.image.shape[:2]
    boxes = d.boxes * np.array([sample.width / w, sample.height / h] * 2, np.float32)
    cids = remap_classes(d.class_ids, mapping)
    keep = cids >= 0
    return Detections(boxes[keep], d.scores[keep], cids[keep], d.names)


def parse_grid(text: str | Sequence[Any], kind: Callable[[str], Any]) -> list[Any]:
    """``"320x240,640x480"`` / ``"160,320"`` -> a list (a sequence is returned as a list)."""
    if not isinstance(text, str):
        return [kind(str(t)) if not isinstance(t, (int, float, tuple)) else t for t in text]
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise UserError(f"empty list: {text!r}")
    out = []
    for t in items:
        try:
            out.append(kind(t))
        except ValueError:
            raise UserError(f"invalid value {t!r} in {text!r}") from None
    return out


def run_sweep(data: str | Path, detector_factory: Callable[[int], Any], *,
              video: str | Path | None = None,
              captures: Sequence[tuple[int, int]] = COURSE_CAPTURES,
              sizes: Sequence[int] = COURSE_SIZES, fps: Sequence[float] = COURSE_FPS,
              limit: int | None = None, split: str = "val", names: Any = None,
              project: str | Path = "runs", name: str = "exp", progress: bool = True,
              display_conf: float = 0.25, config: dict[str, Any] | None = None) -> SweepResult:
    """Run the pipeline for every (capture, input size, FPS cap) and score each cell with mAP.

    data: a labelled detection dataset (data.yaml, YOLO images folder, COCO json, VOC folder); its
    images are played as frames in order. With ``video``, frames come from that file instead and
    frame ``i`` is scored against sample ``i`` of ``data`` (a labelled video). Each frame is resized
    to the capture resolution first (a simulated camera) and predictions are scaled back to the
    labelled image for mAP. ``detector_factory(imgsz)`` builds the detector for an input size (with a
    low ``conf`` for mAP); frames are drawn with the boxes scoring at least ``display_conf``.
    """
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from cnnlab.detect.data import load_detection_data
    from cnnlab.detect.evaluate import check_ground_truth, class_mapping, evaluate_detections
    from cnnlab.io import atomic_write_text, write_json, write_yaml
    from cnnlab.runs import new_run_dir

    ds = load_detection_data(data, split=split, names=names)
    samples, data_names = ds.samples, ds.names
    if limit is not None:
        if limit < 1:
            raise UserError("--limit must be >= 1")
        samples = samples[:limit]
    if video is not None and not Path(video).is_file():
        raise UserError(f"video not found: {video}")
    grid = list(itertools.product(captures, sizes, fps))
    if not grid:
        raise UserError("the sweep grid is empty")
    check_ground_truth(samples, len(data_names))   # before the run folder: no metric over invalid boxes
    run_dir = new_run_dir(project, "sweep", name)
    write_yaml(run_dir / "config.yaml", {
        "data": str(data), "video": str(video) if video else None, "split": split, "images": len(samples),
        "captures": [f"{w}x{h}" for w, h in captures], "sizes": list(sizes), "fps": list(fps),
        **(config or {})})

    from cnnlab.detect.draw import draw_detections

    def draw(image: np.ndarray, dets: Any) -> np.ndarray:
        return draw_detections(image, dets.filter(conf=display_conf))

    detectors: dict[int, Any] = {}
    rows: list[dict[str, Any]] = []
    interrupted = False
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeElapsedColumn(), disable=not progress, transient=False) as bar:
        task = bar.add_task("sweep", total=len(grid))
        for (cw, ch), size, cap_fps in grid:
            bar.update(task, description=f"{cw}x{ch} imgsz {size} max {cap_fps:g} fps")
            if size not in detectors:
                detectors[size] = detector_factory(size)
                if hasattr(detectors[size], "warmup"):
                    detectors[size].warmup(2)
            det = detectors[size]
            det_names = list(getattr(det, "names", []))
            # Without class names the dataset's ids are taken to be the model's (e.g. coco128 + COCO model).
            eval_names = det_names if ds.names_inferred and det_names else data_names
            mapping, unmatched = class_mapping(det_names, eval_names)
            if unmatched:
                raise UserError("none of the detector's class names occur in the dataset's names "
                                "(pass --names to match them)")
            preds: dict[int, Any] = {}

            def collect(r: FrameResult, mapping=mapping, preds=preds) -> None:
                if 0 <= r.position < len(samples):
                    preds[r.position] = _rescale(r, samples[r.position], mapping)

            if video is not None:
                source: Any = VideoCaptureSource(str(video), "file", size=(cw, ch))
            else:
                source = ImageSequenceSource([s.image_path for s in samples], size=(cw, ch), name=str(data))
            # The collector asks for the drawn frame, so drawing is timed as in the course's loop; only
            # boxes a viewer would see (score >= display_conf) are drawn, the rest still count for mAP.
            p = Pipeline(det, source, [CallbackSink(collect, needs_image=True)], max_fps=cap_fps,
                         max_frames=len(samples), log_every=None, draw=draw)
            summary = p.run()
            if summary.stopped_by == "interrupt":     # Ctrl-C: keep the finished cells, stop here
                interrupted = True
                break
            metrics = evaluate_detections(samples, preds, eval_names)
            row = {"capture": f"{cw}x{ch}", "imgsz": size, "max_fps": cap_fps, "frames": summary.frames,
                   "mAP50": float(metrics["mAP50"]), "mAP50_95": float(metrics["mAP50_95"]),
                   "achieved_fps": summary.fps, "frame_ms": summary.frame_ms,
                   **{f"{s}_ms": summary.stages_ms.get(s, 0.0) for s in STAGES},
                   "dropped": summary.dropped}
            rows.append(row)
            log.info("%s imgsz %d max %g fps: mAP50 %.3f, %.1f FPS", row["capture"], size, cap_fps,
                     row["mAP50"], row["achieved_fps"])
            bar.advance(task)

    result = SweepResult(run_dir, rows, complete=not interrupted)
    if not rows:
        return result
    atomic_write_text(run_dir / "results.csv", rows_to_csv(rows))
    atomic_write_text(run_dir / "results.md", rows_to_markdown(rows))
    write_json(run_dir / "metrics.json", {"rows": rows, "best_mAP50": result.best("mAP50"),
                                           "fastest": result.best("achieved_fps"),
                                           "complete": result.complete,
                                           "finished": time.strftime("%Y-%m-%d %H:%M:%S")})
    plot_sweep(rows, run_dir / "sweep.png")
    return result


def rows_to_csv(rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, extrasaction="ignore")
    w.writeheader()
    for r in rows:
        w.writerow({k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()})
    return buf.getvalue()


def rows_to_markdown(rows: list[dict[str, Any]]) -> str:
    """The course's table, honest version: mAP and the rate actually achieved per cell."""
    head = ["capture", "imgsz", "max FPS", "mAP@0.5", "mAP@0.5:0.95", "achieved FPS", "frame ms",
            *[f"{s} ms" for s in STAGES]]
    out = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for r in rows:
        cells = [r["capture"], str(r["imgsz"]), f"{r['max_fps']:g}", f"{r['mAP50']:.3f}",
                 f"{r['mAP50_95']:.3f}", f"{r['achieved_fps']:.1f}", f"{r['frame_ms']:.1f}",
                 *[f"{r[f'{s}_ms']:.1f}" for s in STAGES]]
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def sweep_figure(rows: list[dict[str, Any]]) -> Any:
    """Two panels: mAP per setting, and the stage breakdown per frame with the achieved vs configured
    FPS as markers (settings are categories: no line joins them); legends sit below the axes, never
    over the bars."""
    labels = [f"{r['capture']}\n{r['imgsz']} px\n{r['max_fps']:g} fps" for r in rows]
    x = np.arange(len(rows))
    fig, (ax1, ax2) = pyplot().subplots(1, 2, figsize=(max(9, 1.7 * len(rows) + 5), 5.4), layout="constrained")
    ax1.bar(x - 0.2, [r["mAP50"] for r in rows], width=0.4, color="tab:blue", label="mAP@0.5")
    ax1.bar(x + 0.2, [r["mAP50_95"] for r in rows], width=0.4, color="tab:cyan", label="mAP@0.5:0.95")
    ax1.set_xticks(x, labels, fontsize=7)
    ax1.set(ylabel="mAP", title="accuracy per setting", ylim=(0, 1))
    ax1.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2, frameon=False)
    bottom = np.zeros(len(rows))
    for s in STAGES:
        vals = np.array([r[f"{s}_ms"] for r in rows])
        ax2.bar(x, vals, bottom=bottom, width=0.55, label=f"{s} (ms)")
        bottom += vals
    ax2.set(ylabel="ms per frame (stages)", title="speed per setting")
    ax2.set_xticks(x, labels, fontsize=7)
    ax3 = ax2.twinx()
    ax3.plot(x, [r["achieved_fps"] for r in rows], "ko", ls="none", ms=7, label="achieved FPS")
    ax3.plot(x, [r["max_fps"] for r in rows], "r_", ls="none", markersize=22, mew=2, label="max FPS setting")
    top = max([r["achieved_fps"] for r in rows] + [r["max_fps"] for r in rows] + [1.0])
    ax3.set(ylabel="FPS", ylim=(0, top * 1.15))
    handles = ax2.get_legend_handles_labels()
    extra = ax3.get_legend_handles_labels()
    ax2.legend(handles[0] + extra[0], handles[1] + extra[1], fontsize=7, loc="upper center",
               bbox_to_anchor=(0.5, -0.2), ncol=4, frameon=False)
    return fig


def plot_sweep(rows: list[dict[str, Any]], path: Path) -> Path:
    """``<path>.png``: see `sweep_figure`."""
    save_figure(sweep_figure(rows), path.with_suffix(".png"))
    return path
