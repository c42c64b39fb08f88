"""The real-time detection loop: capture thread -> preprocess -> inference -> postprocess -> draw ->
sinks, each stage timed, with an optional `--max-fps` throttle and clean shutdown (Ctrl-C included)."""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cnnlab.detect.pipeline.fps import FpsMeter, Throttle
from cnnlab.detect.pipeline.overlay import draw_overlay
from cnnlab.detect.pipeline.sinks import (
    FrameResult,
    ImageSink,
    JsonlSink,
    Sink,
    VideoSink,
    WebSink,
    WindowSink,
)
from cnnlab.detect.pipeline.sources import CaptureThread, FrameSource, open_source
from cnnlab.detect.pipeline.timing import STAGES, StageTimes, format_stages
from cnnlab.errors import UserError

log = logging.getLogger("cnnlab.stream")


@dataclass
class PipelineSummary:
    """What a run achieved: frames, real rate, mean and p95 stage times, drops, and why it stopped."""

    frames: int
    seconds: float
    fps: float                          # achieved: frames / wall time of the loop
    max_fps: float | None               # configured cap (None: as fast as possible)
    stages_ms: dict[str, float]         # mean per stage
    stages_p95_ms: dict[str, float]
    frame_ms: float                     # mean of the sum of the stages (work per frame)
    latency_ms: float                   # mean capture -> start of preprocessing
    captured: int
    dropped: int                        # stale live frames replaced by newer ones
    reconnects: int
    max_buffered: int                   # high-water mark of the capture buffer
    buffer_bound: int
    stopped_by: str                     # end | duration | max_frames | interrupt | stop | window
    source: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        cap = f" (max {self.max_fps:g})" if self.max_fps else ""
        return (f"{self.frames} frames in {self.seconds:.1f} s: {self.fps:.2f} FPS{cap}; "
                f"{format_stages(self.stages_ms)}; dropped {self.dropped}; stopped by {self.stopped_by}")


def _default_draw() -> Callable[[np.ndarray, Any], np.ndarray]:
    from cnnlab.detect.draw import draw_detections

    return draw_detections


class Pipeline:
    """Run ``detector`` on every frame a source delivers and hand the results to ``sinks``.

    ``detector`` is any object with the `cnnlab.detect.Detector` interface: ``preprocess``, ``infer``
    and ``postprocess`` are timed separately when present, otherwise ``detector(image)`` is called
    and its ``Detections.timing`` is used. Live sources keep only the newest frame; files are
    processed frame by frame. ``max_fps`` caps the rate by sleeping only what is left of each period.
    """

    def __init__(self, detector: Any, source: int | str | Path | FrameSource,
                 sinks: Iterable[Sink] = (), *, capture: tuple[int, int] | None = None,
                 capture_fps: float | None = None, max_fps: float | None = None,
                 buffer_size: int = 4, latest_only: bool | None = None, overlay: bool = True,
                 draw: Callable[[np.ndarray, Any], np.ndarray] | None = None,
                 duration: float | None = None, max_frames: int | None = None,
                 log_every: float | None = 5.0, logger: Callable[[str], None] | None = None,
                 handle_sigint: bool = True, max_reconnects: int | None = None) -> None:
        if max_fps is not None and max_fps <= 0:
            raise UserError("--max-fps must be positive")
        if duration is not None and duration <= 0:
            raise UserError("--duration must be positive")
        if max_frames is not None and max_frames <= 0:
            raise UserError("--max-frames must be positive")
        self.detector = detector
        self.source = open_source(source, capture, capture_fps)
        self.sinks = list(sinks)
        self.max_fps = max_fps
        self.buffer_size = buffer_size
        self.latest_only = latest_only
        self.overlay = overlay
        self._draw = draw
        self.duration = duration
        self.max_frames = max_frames
        self.log_every = log_every
        self.logger = logger or log.info
        self.handle_sigint = handle_sigint
        self.max_reconnects = max_reconnects
        self.capture: CaptureThread | None = None
        self.times = StageTimes()
        self.meter = FpsMeter(30)
        self.stats: dict[str, Any] = {}
        self._stop = threading.Event()
        self._stopped_by = "end"
        self._staged = all(callable(getattr(detector, m, None)) for m in ("preprocess", "infer", "postprocess"))

    # -- control ----------------------------------------------------------------------------------
    def stop(self, reason: str = "stop") -> None:
        """Ask the loop to finish the current frame and end (safe from any thread)."""
        if not self._stop.is_set():
            self._stopped_by = reason
        self._stop.set()

    @property
    def running(self) -> bool:
        return self.capture is not None and not self._stop.is_set()

    # -- the loop ---------------------------------------------------------------------------------
    def _detect(self, image: np.ndarray) -> tuple[Any, dict[str, float]]:
        det = self.detector
        if self._staged:
            t0 = time.perf_counter()
            blob, meta = det.preprocess(image)
            t1 = time.perf_counter()
            raw = det.infer(blob)
            t2 = time.perf_counter()
            dets = det.postprocess(raw, meta)
            t3 = time.perf_counter()
            return dets, {"preprocess": (t1 - t0) * 1e3, "inference": (t2 - t1) * 1e3,
                          "postprocess": (t3 - t2) * 1e3}
        t0 = time.perf_counter()
        dets = det(image)
        total = (time.perf_counter() - t0) * 1e3
        timing = dict(getattr(dets, "timing", {}) or {})
        if {"preprocess", "inference", "postprocess"} <= timing.keys():
            return dets, {k: float(timing[k]) for k in ("preprocess", "inference", "postprocess")}
        return dets, {"preprocess": 0.0, "inference": total, "postprocess": 0.0}

    def _live_stats(self, frame_index: int, n_dets: int, latency_ms: float) -> dict[str, Any]:
        recent = self.times.recent()
        cap = self.capture
        return {
            "fps": round(self.meter.fps, 3), "mean_fps": round(self.meter.mean_fps, 3),
            "max_fps": self.max_fps, "frames": frame_index + 1,
            "dropped": cap.stats.dropped if cap else 0, "detections": n_dets,
            "stages_ms": {k: round(v, 3) for k, v in recent.items()},
            "frame_ms": round(sum(recent.values()), 3), "latency_ms": round(latency_ms, 3),
            "source": self.source.info.describe(), "running": not self._stop.is_set(),
        }

    def _install_sigint(self) -> Any:
        if not self.handle_sigint or threading.current_thread() is not threading.main_thread():
            return None

        def on_sigint(signum: int, frame: Any) -> None:
            if self._stop.is_set():       # second Ctrl-C: give up waiting
                raise KeyboardInterrupt
            self.logger("stopping (Ctrl-C again to force)")
            self.stop("interrupt")

        try:
            return signal.signal(signal.SIGINT, on_sigint)
        except ValueError:   # pragma: no cover - not in the main interpreter
            return None

    def run(self) -> PipelineSummary:
        """Process frames until the source ends, a limit is reached, or `stop` / Ctrl-C."""
        need_image = any(s.needs_image for s in self.sinks)
        draw = (self._draw or _default_draw()) if need_image else None
        throttle = Throttle(self.max_fps)
        self.capture = CaptureThread(self.source, self.buffer_size, self.latest_only,
                                     max_reconnects=self.max_reconnects)
        self.capture.start()
        info = self.source.info
        for s in self.sinks:
            if isinstance(s, VideoSink) and s.fps_auto:
                s.fps = (info.fps if not self.source.live and info.fps else None) or self.max_fps or info.fps or 25.0
        opened: list[Sink] = []
        old_handler = None
        latency_sum = 0.0
        n = 0
        t_start = time.perf_counter()
        try:
            for s in self.sinks:
                s.open()
                opened.append(s)
            self.logger(f"source: {info.describe()}")
            for s in self.sinks:
                if isinstance(s, WebSink):
                    self.logger(f"live view: {s.url}")
            old_handler = self._install_sigint()
            t_start = time.perf_counter()
            next_log = t_start + (self.log_every or float("inf"))
            last_output_ms = 0.0
            while not self._stop.is_set():
                if self.max_frames is not None and n >= self.max_frames:
                    self._stopped_by = "max_frames"
                    break
                if self.duration is not None and time.perf_counter() - t_start >= self.duration:
                    self._stopped_by = "duration"
                    break
                t0 = time.perf_counter()
                try:
                    frame = self.capture.get(timeout=0.25)
                except TimeoutError:
                    continue        # nothing yet (slow camera / reconnecting): re-check the limits
                if frame is None:
                    self._stopped_by = "end"
                    break
                t1 = time.perf_counter()
                latency_ms = (t1 - frame.captured_at) * 1e3
                dets, det_ms = self._detect(frame.image)
                t2 = time.perf_counter()
                stages = {"capture": (t1 - t0) * 1e3, **det_ms}
                stats = self._live_stats(n, len(dets), latency_ms)
                annotated = None
                if draw is not None:
                    annotated = draw(frame.image, dets)      # draw_detections returns a copy
                    if self.overlay:
                        draw_overlay(annotated, stats)
                t3 = time.perf_counter()
                stages["draw"] = (t3 - t2) * 1e3
                stages["output"] = last_output_ms     # this frame's output time is known only after
                result = FrameResult(frame.index, frame.position, frame.image, dets, stages, stats,
                                     time.time() - (time.perf_counter() - frame.captured_at), annotated)
                for s in self.sinks:
                    s.write(result)
                t4 = time.perf_counter()
                last_output_ms = (t4 - t3) * 1e3
                stages["output"] = last_output_ms
                self.times.add(stages)
                latency_sum += latency_ms
                n += 1
                if any(s.stop_requested for s in self.sinks):
                    self.stop("window")
                throttle.wait()
                self.meter.tick()
                if time.perf_counter() >= next_log:
                    next_log += self.log_every or float("inf")
                    self.logger(self._log_line(n))
        finally:
            if old_handler is not None:
                signal.signal(signal.SIGINT, old_handler)
            t_end = time.perf_counter()
            self.capture.stop()
            errors = []
            for s in opened:
                try:
                    s.close()
                except Exception as e:  # noqa: BLE001 - close every sink, report after
                    errors.append(e)
            if errors:
                raise errors[0]
        seconds = max(t_end - t_start, 1e-9)
        cs = self.capture.stats
        mean = self.times.mean()
        summary = PipelineSummary(
            frames=n, seconds=seconds, fps=n / seconds if n else 0.0, max_fps=self.max_fps,
            stages_ms=mean, stages_p95_ms=self.times.percentile(95), frame_ms=sum(mean.values()),
            latency_ms=latency_sum / n if n else 0.0, captured=cs.captured, dropped=cs.dropped,
            reconnects=cs.reconnects, max_buffered=cs.max_buffered, buffer_bound=self.capture.bound,
            stopped_by=self._stopped_by, source=info.to_dict(), outputs=_outputs(self.sinks))
        self.stats = self._live_stats(max(n - 1, 0), 0, 0.0) | {"running": False}
        return summary

    def _log_line(self, n: int) -> str:
        cap = self.capture
        rate = f"{self.meter.fps:.1f} FPS"
        if self.max_fps:
            rate += f" (max {self.max_fps:g}, achieved {self.meter.mean_fps:.1f})"
        drops = f" | dropped {cap.stats.dropped}" if cap and cap.stats.dropped else ""
        return f"frame {n} | {rate} | {format_stages(self.times.recent())}{drops}"


def _outputs(sinks: list[Sink]) -> dict[str, str]:
    out = {}
    for s in sinks:
        if isinstance(s, VideoSink):
            out["video"] = str(s.path)
        elif isinstance(s, JsonlSink):
            out["jsonl"] = str(s.path)
        elif isinstance(s, ImageSink):
            out["frames"] = str(s.folder)
        elif isinstance(s, WebSink):
            out["web"] = s.url
    return out


def build_sinks(save: str | Path | None = None, save_jsonl: str | Path | None = None,
                save_frames: str | Path | None = None, web: str | bool | None = None,
                token: str | None = None, show: bool = False) -> list[Sink]:
    """The sinks for the usual options (``web``: ``"HOST:PORT"`` or True for 127.0.0.1:8000)."""
    from cnnlab.detect.web import parse_web_address

    sinks: list[Sink] = []
    if show:
        sinks.append(WindowSink())
    if save:
        sinks.append(VideoSink(save))
    if save_frames:
        sinks.append(ImageSink(save_frames))
    if save_jsonl:
        sinks.append(JsonlSink(save_jsonl))
    if web:
        host, port = parse_web_address(None if web is True else str(web))
        sinks.append(WebSink(host, port, token=token))
    elif token:
        raise UserError("--token only applies to the web view (--web HOST:PORT)")
    return sinks


def run_pipeline(source: int | str | Path | FrameSource, detector: Any, *,
                 save: str | Path | None = None, save_jsonl: str | Path | None = None,
                 save_frames: str | Path | None = None, web: str | bool | None = None,
                 token: str | None = None, show: bool = False, sinks: Iterable[Sink] = (),
                 **options: Any) -> PipelineSummary:
    """Run the real-time pipeline on ``source`` with ``detector``; returns its `PipelineSummary`.

    ``options`` go to `Pipeline` (capture, capture_fps, max_fps, duration, max_frames, overlay, ...).
    """
    all_sinks = [*build_sinks(save, save_jsonl, save_frames, web, token, show), *sinks]
    return Pipeline(detector, source, all_sinks, **options).run()


__all__ = ["STAGES", "Pipeline", "PipelineSummary", "build_sinks", "run_pipeline"]
