"""The real-time detection loop: capture thread -> preprocess -> inference -> postprocess -> draw ->
sinks, each stage timed, with an optional `--max-fps` throttle and clean shutdown (Ctrl-C included)."""

from __future__ import annotations

import logging
import queue
import signal
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cnnlab.detect.draw import draw_detections
from cnnlab.detect.pipeline.sinks import (
    FrameResult,
    ImageSink,
    JsonlSink,
    Sink,
    VideoSink,
    WebSink,
    WindowSink,
)
from cnnlab.detect.pipeline.sources import CaptureThread, Frame, FrameSource, open_source
from cnnlab.detect.pipeline.timing import (
    STAGES,
    FpsMeter,
    LatencyWindow,
    StageTimes,
    Throttle,
    draw_overlay,
    format_latency,
    format_progress,
    format_stages,
)
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
    capture_fps: float                  # the rate the source really delivered frames at
    dropped: int                        # stale live frames replaced by newer ones
    reconnects: int
    max_buffered: int                   # high-water mark of the capture buffer
    buffer_bound: int
    stopped_by: str                     # end | duration | max_frames | interrupt | stop | window
    source: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)
    overlap: bool = False               # post-processing/drawing/outputs ran on their own thread
    throttled_s: float = 0.0            # seconds the --max-fps throttle slept in total
    output_latency_ms: dict[str, float] = field(default_factory=dict)  # capture -> outputs written: p50, p95

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        cap = f" (max {self.max_fps:g})" if self.max_fps else ""
        lat = format_latency(self.output_latency_ms, "capture -> output, recent frames")
        return (f"{self.frames} frames in {self.seconds:.1f} s: {self.fps:.2f} FPS{cap}; "
                f"{format_stages(self.stages_ms)}; {lat + '; ' if lat else ''}dropped {self.dropped}; "
                f"stopped by {self.stopped_by}")


@dataclass
class _Work:
    """A frame between inference and the output stage."""

    frame: Frame
    raw: Any
    meta: Any
    dets: Any | None                    # set when the detector has no separate stages
    stages: dict[str, float]
    latency_ms: float


class Pipeline:
    """Run ``detector`` on every frame a source delivers and hand the results to ``sinks``.

    ``detector`` is any object with the `cnnlab.detect.Detector` interface: ``preprocess``, ``infer``
    and ``postprocess`` are timed separately when present, otherwise ``detector(image)`` is called
    and its ``Detections.timing`` is used. Live sources keep only the newest frame; files are
    processed frame by frame. ``max_fps`` caps the rate by sleeping only what is left of each period.

    With ``overlap`` (default) the stages run concurrently: post-processing, drawing and the sinks of
    frame k run on an output thread while frame k+1 is inferred (a hand-off queue of 2), and for files
    the capture thread also preprocesses. Stage times are then work per frame, and 1/FPS can be less
    than their sum. A window (``--show``) keeps everything on the calling thread.
    """

    def __init__(self, detector: Any, source: int | str | Path | FrameSource,
                 sinks: Iterable[Sink] = (), *, capture: tuple[int, int] | None = None,
                 capture_fps: float | None = None, max_fps: float | None = None,
                 buffer_size: int = 4, latest_only: bool | None = None, overlay: bool = True,
                 draw: Callable[[np.ndarray, Any], np.ndarray] | None = None,
                 duration: float | None = None, max_frames: int | None = None,
                 log_every: float | None = 5.0, logger: Callable[[str], None] | None = None,
                 handle_sigint: bool = True, max_reconnects: int | None = None,
                 reconnect_backoff: tuple[float, float] = (0.5, 10.0), overlap: bool = True,
                 warmup: bool = True) -> None:
        for flag, value in (("--max-fps", max_fps), ("--duration", duration), ("--max-frames", max_frames)):
            if value is not None and value <= 0:
                raise UserError(f"{flag} must be positive")
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
        self.reconnect_backoff = reconnect_backoff
        self.overlap = overlap
        self.warmup = warmup
        self.capture: CaptureThread | None = None
        self.times = StageTimes()
        self.meter = FpsMeter(30)
        self.latency = LatencyWindow(300)    # capture -> every output has the frame (ms), recent frames
        self.stats: dict[str, Any] = {}
        self.stats_last: dict[str, Any] | None = None   # the live figures of the newest finished frame
        self._needs_overlay = False
        self._stop = threading.Event()
        self._stopped_by = "end"
        # per-run state, reset by run(); written by whichever thread finishes frames
        self._done, self._latency_sum, self._last_output_ms = 0, 0.0, 0.0
        self._next_log = float("inf")
        self._draw_fn: Callable[[np.ndarray, Any], np.ndarray] | None = None
        self._out_error: BaseException | None = None
        self._staged = all(callable(getattr(detector, m, None)) for m in ("preprocess", "infer", "postprocess"))

    # -- control ----------------------------------------------------------------------------------
    def stop(self, reason: str = "stop") -> None:
        """Ask the loop to finish the current frame and end (safe from any thread)."""
        if not self._stop.is_set():
            self._stopped_by = reason
        self._stop.set()

    # -- the loop ---------------------------------------------------------------------------------
    def _live_stats(self, frame_index: int, n_dets: int, latency_ms: float, position: int | None = None
                    ) -> dict[str, Any]:
        recent = self.times.recent()
        cap = self.capture
        info = self.source.info
        total = info.frame_count if not self.source.live and info.frame_count else None
        pos = (position if position is not None else frame_index) + 1
        fps = self.meter.fps
        eta = (max(total - pos, 0) / fps) if total and fps > 0 else None
        return {
            "position": pos, "total": total, "eta_s": round(eta, 1) if eta is not None else None,
            "latency": self.latency.summary(),
            "fps": round(self.meter.fps, 3), "mean_fps": round(self.meter.mean_fps, 3),
            "max_fps": self.max_fps, "frames": frame_index + 1,
            "dropped": cap.stats.dropped if cap else 0, "detections": n_dets,
            "stages_ms": {k: round(v, 3) for k, v in recent.items()},
            "frame_ms": round(sum(recent.values()), 3), "latency_ms": round(latency_ms, 3),
            "capture_fps": round(cap.meter.fps, 3) if cap else 0.0,
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

    def _prepare(self, image: np.ndarray) -> tuple[Any, Any, float]:
        """Preprocess on the capture thread (file sources with overlap): ``(blob, meta, ms)``."""
        t = time.perf_counter()
        blob, meta = self.detector.preprocess(image)
        return blob, meta, (time.perf_counter() - t) * 1e3

    def _infer(self, frame: Frame, t_asked: float) -> _Work:
        """Capture wait, preprocess (unless done on the capture thread) and inference of one frame."""
        t1 = time.perf_counter()
        stages = {"capture": (t1 - t_asked) * 1e3}
        latency_ms = (t1 - frame.captured_at) * 1e3
        if not self._staged:    # one call: its own stage times when it reports them, else all inference
            dets = self.detector(frame.image)
            timing = dict(getattr(dets, "timing", {}) or {})
            parts = ("preprocess", "inference", "postprocess")
            if not set(parts) <= timing.keys():
                timing = dict.fromkeys(parts, 0.0) | {"inference": (time.perf_counter() - t1) * 1e3}
            stages.update({k: float(timing[k]) for k in parts})
            return _Work(frame, None, None, dets, stages, latency_ms)
        blob, meta, stages["preprocess"] = frame.meta.pop("prepared", None) or self._prepare(frame.image)
        t2 = time.perf_counter()
        raw = self.detector.infer(blob)
        stages["inference"] = (time.perf_counter() - t2) * 1e3
        return _Work(frame, raw, meta, None, stages, latency_ms)

    def _finish(self, work: _Work) -> None:
        """Postprocess, draw, write to every sink, and account for one frame."""
        stages = work.stages
        dets = work.dets
        if dets is None:
            t = time.perf_counter()
            dets = self.detector.postprocess(work.raw, work.meta)
            stages["postprocess"] = (time.perf_counter() - t) * 1e3
        n = self._done
        t2 = time.perf_counter()
        stats = self._live_stats(n, len(dets), work.latency_ms, work.frame.position)
        self.stats_last = stats
        annotated = overlaid = None
        if self._draw_fn is not None:
            annotated = self._draw_fn(work.frame.image, dets)      # draw_detections returns a copy
            if self.overlay and self._needs_overlay:
                overlaid = draw_overlay(annotated.copy(), stats, dets.boxes)
        t3 = time.perf_counter()
        stages["draw"] = (t3 - t2) * 1e3
        stages["output"] = self._last_output_ms       # this frame's output time is known only after
        frame = work.frame
        result = FrameResult(n, frame.position, frame.image, dets, stages, stats,
                             time.time() - (time.perf_counter() - frame.captured_at), annotated, overlaid=overlaid)
        for s in self.sinks:
            s.write(result)
        t4 = time.perf_counter()
        self._last_output_ms = stages["output"] = (t4 - t3) * 1e3
        self.latency.add((t4 - frame.captured_at) * 1e3)
        self.times.add(stages)
        self._latency_sum += work.latency_ms
        self._done += 1
        self.meter.tick()
        if any(s.stop_requested for s in self.sinks):
            self.stop("window")
        if time.perf_counter() >= self._next_log:
            self._next_log += self.log_every or float("inf")
            self.logger(self._log_line(self._done))

    def _output_loop(self, q: queue.Queue) -> None:
        """The output thread (overlap mode): finish frames in order until the None sentinel."""
        try:
            while (work := q.get()) is not None:
                self._finish(work)
        except BaseException as e:  # noqa: BLE001 - re-raised by run() on the caller's thread
            self._out_error = e
            self.stop("error")
            while q.get() is not None:      # keep draining so the producer never blocks
                pass

    def _hand_over(self, q: queue.Queue, item: _Work | None, worker: threading.Thread) -> None:
        """Blocking put into the bounded hand-off queue that gives up if the output thread died."""
        while True:
            try:
                q.put(item, timeout=0.1)
                return
            except queue.Full:
                if not worker.is_alive():
                    return

    def run(self) -> PipelineSummary:
        """Process frames until the source ends, a limit is reached, or `stop` / Ctrl-C (once)."""
        if self.capture is not None:
            raise RuntimeError("a Pipeline runs once; make a new one for another run")
        if self.warmup and callable(getattr(self.detector, "warmup", None)):
            self.detector.warmup(1)     # first calls allocate: keep them out of the figures
        need_image = any(s.needs_image for s in self.sinks)
        self._draw_fn = (self._draw or draw_detections) if need_image else None
        # the web page shows the figures beside the video: only other outputs get them drawn in
        self._needs_overlay = any(s.needs_image and not isinstance(s, WebSink) for s in self.sinks)
        self.latency = LatencyWindow(300)
        # Windows must be driven from the thread that created them: no output thread with --show.
        overlap = self.overlap and not any(isinstance(s, WindowSink) for s in self.sinks)
        throttle = Throttle(self.max_fps)
        latest = self.source.live if self.latest_only is None else self.latest_only
        prepare = self._prepare if (overlap and self._staged and not latest) else None
        self.capture = CaptureThread(self.source, self.buffer_size, self.latest_only,
                                     backoff=self.reconnect_backoff, max_reconnects=self.max_reconnects,
                                     prepare=prepare)
        self.capture.start()
        info = self.source.info
        for s in self.sinks:
            if isinstance(s, VideoSink) and s.fps_auto:
                s.fps = (info.fps if not self.source.live and info.fps else None) or self.max_fps or info.fps or 25.0
        opened: list[Sink] = []
        old_handler = None
        self._done, self._latency_sum, self._last_output_ms = 0, 0.0, 0.0
        self._out_error = None
        handoff: queue.Queue = queue.Queue(maxsize=2)
        worker = threading.Thread(target=self._output_loop, args=(handoff,), name="pipeline-output", daemon=True)
        submitted = 0
        t_start = time.perf_counter()
        try:
            self.logger(f"source: {info.describe()}")
            for s in self.sinks:
                s.open()
                opened.append(s)
                if isinstance(s, WebSink):
                    self.logger(f"live view: {s.url}")
            old_handler = self._install_sigint()
            t_start = time.perf_counter()
            throttle.start(t_start)
            self._next_log = t_start + (self.log_every or float("inf"))
            if overlap:
                worker.start()
            while not self._stop.is_set():
                if self.max_frames is not None and submitted >= self.max_frames:
                    self._stopped_by = "max_frames"
                    break
                if self.duration is not None and time.perf_counter() - t_start >= self.duration:
                    self._stopped_by = "duration"
                    break
                t0 = time.perf_counter()
                try:
                    frame = self.capture.get(timeout=0.25)
                except TimeoutError:
                    throttle.reset()   # nothing yet (slow camera / reconnecting): re-check the limits
                    continue
                if frame is None:
                    self._stopped_by = "end"
                    break
                work = self._infer(frame, t0)
                submitted += 1
                if overlap:
                    self._hand_over(handoff, work, worker)
                else:
                    self._finish(work)
                throttle.wait()
        finally:
            if old_handler is not None:
                signal.signal(signal.SIGINT, old_handler)
            if worker.is_alive():                   # let the output thread finish what it was given
                self._hand_over(handoff, None, worker)
                worker.join(30)
            t_end = time.perf_counter()
            self.capture.stop()
            errors = []
            for s in opened:
                try:
                    s.close()
                except Exception as e:  # noqa: BLE001 - close every sink, report after
                    errors.append(e)
            if self._out_error is not None:
                raise self._out_error
            if errors:
                raise errors[0]
        n = self._done
        seconds = max(t_end - t_start, 1e-9)
        cs = self.capture.stats
        mean = self.times.mean()
        summary = PipelineSummary(
            frames=n, seconds=seconds, fps=n / seconds if n else 0.0, max_fps=self.max_fps,
            stages_ms=mean, stages_p95_ms=self.times.percentile(95), frame_ms=sum(mean.values()),
            latency_ms=self._latency_sum / n if n else 0.0, captured=cs.captured,
            capture_fps=self.capture.meter.mean_fps, dropped=cs.dropped,
            reconnects=cs.reconnects, max_buffered=cs.max_buffered, buffer_bound=self.capture.bound,
            stopped_by=self._stopped_by, source=info.to_dict(), outputs=_outputs(self.sinks),
            overlap=overlap, throttled_s=throttle.slept, output_latency_ms=self.latency.summary() or {})
        self.stats = self._live_stats(max(n - 1, 0), 0, 0.0) | {"running": False}
        return summary

    def _log_line(self, n: int) -> str:
        """``frame 191/795 (24%), ETA 0:21 | 28.1 FPS | latency p50 .. | stages | web: ...``."""
        cap = self.capture
        rate = f"{self.meter.fps:.1f} FPS"
        if self.max_fps:
            rate += f" (max {self.max_fps:g}, achieved {self.meter.mean_fps:.1f})"
        drops = f" | dropped {cap.stats.dropped}" if cap and cap.stats.dropped else ""
        last = self.stats_last or {}
        progress = format_progress(last) if last.get("total") else f"frame {n}"
        latency = format_latency(self.latency.summary(), "capture -> output")
        parts = [progress, rate] + ([latency] if latency else []) + [format_stages(self.times.recent())]
        parts += [text for s in self.sinks if (text := getattr(s, "status_text", lambda: "")())]
        return " | ".join(parts) + drops


def _outputs(sinks: list[Sink]) -> dict[str, str]:
    kinds = ((VideoSink, "video", "path"), (JsonlSink, "jsonl", "path"), (ImageSink, "frames", "folder"),
             (WebSink, "web", "url"))
    return {key: str(getattr(s, attr)) for s in sinks for cls, key, attr in kinds if isinstance(s, cls)}


def build_sinks(save: str | Path | None = None, save_jsonl: str | Path | None = None,
                save_frames: str | Path | None = None, web: str | bool | None = None,
                token: str | None = None, show: bool = False) -> list[Sink]:
    """The sinks for the usual options (``web``: ``"HOST:PORT"`` or True for 127.0.0.1:8000; ``token``: see
    :func:`cnnlab.detect.web.web_token`, a random one when the address is not loopback)."""
    from cnnlab.detect.web import parse_web_address, web_token

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
        sinks.append(WebSink(host, port, token=web_token(host, token)))
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
