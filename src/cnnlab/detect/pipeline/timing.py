"""The pipeline's honest figures: a moving-average FPS meter, a `--max-fps` throttle that sleeps only the
rest of each period (the course's "FPS setting" was a fixed delay added on top of the work), per-stage
timing (recent moving-average and whole-run milliseconds per stage) and the live-figures overlay drawn on
the frames."""

from __future__ import annotations

import time
from collections import deque
from typing import Any

import numpy as np


class FpsMeter:
    """Frames per second over the last ``window`` frame intervals (a moving average)."""

    def __init__(self, window: int = 30, clock=time.perf_counter) -> None:
        if window < 2:
            raise ValueError("FpsMeter window must be >= 2")
        self._times: deque[float] = deque(maxlen=window)
        self._clock = clock
        self.count = 0
        self.first: float | None = None
        self.last: float | None = None

    def tick(self, t: float | None = None) -> float:
        """Record one frame now (or at ``t``); return the time of the tick."""
        t = self._clock() if t is None else t
        self._times.append(t)
        self.count += 1
        if self.first is None:
            self.first = t
        self.last = t
        return t

    @property
    def fps(self) -> float:
        """Moving-average rate; 0.0 until two frames have been seen."""
        if len(self._times) < 2:
            return 0.0
        span = self._times[-1] - self._times[0]
        return (len(self._times) - 1) / span if span > 0 else 0.0

    @property
    def mean_fps(self) -> float:
        """Average rate over the whole run (first to last tick)."""
        if self.first is None or self.last is None or self.count < 2 or self.last <= self.first:
            return 0.0
        return (self.count - 1) / (self.last - self.first)


class Throttle:
    """Cap a loop at ``max_fps``: ``wait()`` sleeps only what is left of the current period.

    Deadlines advance by exactly one period, so sleep overshoot or a slightly late frame is paid back
    by the next and the long-run rate matches ``max_fps``; a loop that falls a whole period behind is
    not allowed to burst to catch up (the schedule restarts from now).
    """

    def __init__(self, max_fps: float | None, clock=time.perf_counter, sleep=time.sleep) -> None:
        if max_fps is not None and max_fps <= 0:
            raise ValueError("max_fps must be positive")
        self.max_fps = max_fps
        self.period = 1.0 / max_fps if max_fps else 0.0
        self._clock = clock
        self._sleep = sleep
        self._next: float | None = None
        self.slept = 0.0   # seconds slept in total (time handed back by the throttle)

    def start(self, t: float | None = None) -> None:
        """Begin the schedule: the first period starts now (or at ``t``), when the first frame starts."""
        self._next = (self._clock() if t is None else t) + self.period

    def wait(self) -> float:
        """Call when a frame is done: sleep for the rest of its period; return the seconds slept."""
        if not self.period:
            return 0.0
        now = self._clock()
        if self._next is None:          # no start(): the first frame's period starts here
            self._next = now + self.period
            return 0.0
        delay = self._next - now
        if delay <= 0:
            if -delay < self.period:
                # A little late (jitter): keep the schedule, so the next frame makes up the difference
                # and the long-run rate stays at max_fps (at most one period is ever made up).
                self._next += self.period
            else:
                # Far behind (slow work): start a new schedule from now instead of bursting to catch up.
                self._next = now + self.period
            return 0.0
        self._sleep(delay)
        self._next += self.period
        self.slept += delay
        return delay

    def reset(self) -> None:
        """Forget the schedule (e.g. after a pause or reconnect)."""
        self._next = None


#: The stages every frame goes through, in order.
STAGES: tuple[str, ...] = ("capture", "preprocess", "inference", "postprocess", "draw", "output")


class StageTimes:
    """Collects one duration per stage per frame; reports moving averages and run statistics."""

    def __init__(self, stages: tuple[str, ...] = STAGES, window: int = 30, keep: int = 100_000) -> None:
        self.stages = tuple(stages)
        self._recent = {s: deque(maxlen=window) for s in self.stages}
        self._sum = dict.fromkeys(self.stages, 0.0)
        # A bounded reservoir of per-frame values for percentiles (memory stays flat on long runs).
        self._all = {s: deque(maxlen=keep) for s in self.stages}
        self.frames = 0

    def add(self, ms: dict[str, float]) -> None:
        """Record one frame's stage durations (milliseconds); missing stages count as 0."""
        for s in self.stages:
            v = float(ms.get(s, 0.0))
            self._recent[s].append(v)
            self._all[s].append(v)
            self._sum[s] += v
        self.frames += 1

    def recent(self) -> dict[str, float]:
        """Moving-average milliseconds per stage over the last ``window`` frames."""
        return {s: (sum(q) / len(q) if q else 0.0) for s, q in self._recent.items()}

    def mean(self) -> dict[str, float]:
        """Mean milliseconds per stage over the whole run."""
        n = max(self.frames, 1)
        return {s: self._sum[s] / n for s in self.stages}

    def percentile(self, q: float) -> dict[str, float]:
        """The ``q``-th percentile (0-100) of each stage's milliseconds over the kept frames."""
        return {s: (float(np.percentile(np.fromiter(v, float), q)) if v else 0.0)
                for s, v in self._all.items()}


def format_stages(ms: dict[str, float]) -> str:
    """``capture 0.1 pre 1.2 infer 30.4 post 0.3 draw 0.8 out 1.0 ms`` (short names, one decimal)."""
    short = {"capture": "cap", "preprocess": "pre", "inference": "infer", "postprocess": "post",
             "draw": "draw", "output": "out"}
    return " ".join(f"{short.get(k, k)} {v:.1f}" for k, v in ms.items()) + " ms"


class LatencyWindow:
    """The last ``window`` latencies (milliseconds): median, 95th percentile and how many were seen."""

    def __init__(self, window: int = 300) -> None:
        self._values: deque[float] = deque(maxlen=window)
        self.count = 0

    def add(self, ms: float) -> None:
        self._values.append(float(ms))
        self.count += 1

    def summary(self) -> dict[str, float] | None:
        """``{"p50": ms, "p95": ms, "n": count}`` over the window, or None before the first value."""
        if not self._values:
            return None
        arr = np.fromiter(self._values, float)
        return {"p50": round(float(np.percentile(arr, 50)), 2), "p95": round(float(np.percentile(arr, 95)), 2),
                "n": self.count}


def format_eta(seconds: float | None) -> str:
    """``0:42`` / ``1:02:03`` for a number of seconds; ``?`` when unknown."""
    if seconds is None or not np.isfinite(seconds) or seconds < 0:
        return "?"
    s = int(round(seconds))
    h, rest = divmod(s, 3600)
    m, sec = divmod(rest, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


def format_progress(stats: dict[str, Any]) -> str:
    """``frame 191/795 (24%), ETA 0:21`` for a source of known length; ``frame 191`` otherwise."""
    total, pos = stats.get("total"), stats.get("position") or stats.get("frames", 0)
    if total:
        return f"frame {pos}/{total} ({100 * pos / total:.0f}%), ETA {format_eta(stats.get('eta_s'))}"
    return f"frame {pos}"


def format_latency(summary: dict[str, float] | None, what: str) -> str:
    """``latency p50 41 ms, p95 58 ms (capture -> output)``; empty before the first value."""
    if not summary:
        return ""
    return f"latency p50 {summary['p50']:.0f} ms, p95 {summary['p95']:.0f} ms ({what})"


def overlay_lines(stats: dict[str, Any]) -> list[str]:
    """The text lines shown on the frame for the live ``stats`` of the pipeline."""
    fps = float(stats.get("fps", 0.0))
    first = f"FPS {fps:.1f}"
    if stats.get("max_fps"):
        first += f"  (max {stats['max_fps']:g}, achieved {float(stats.get('mean_fps', 0.0)):.1f})"
    if stats.get("dropped"):
        first += f"  dropped {stats['dropped']}"
    if stats.get("total"):
        first += "  " + format_progress(stats)
    lines = [first]
    if stats.get("latency"):
        lines.append(format_latency(stats["latency"], "capture -> output"))
    if stats.get("stages_ms"):
        lines.append(format_stages(stats["stages_ms"]))
    return lines


def overlay_corner(size: tuple[int, int], band: tuple[int, int], boxes: np.ndarray | None) -> tuple[int, int]:
    """Top-left ``(x, y)`` of the corner band (``band`` = width, height) that covers the least box area
    of an image of ``size`` (width, height); ties go to top-left, top-right, bottom-left, bottom-right."""
    w, h = size
    bw, bh = min(band[0], w), min(band[1], h)
    corners = [(0, 0), (w - bw, 0), (0, h - bh), (w - bw, h - bh)]
    if boxes is None or not len(boxes):
        return corners[0]

    def covered(x: int, y: int) -> float:
        b = np.asarray(boxes, np.float32).reshape(-1, 4)
        ix = np.clip(np.minimum(b[:, 2], x + bw) - np.maximum(b[:, 0], x), 0, None)
        iy = np.clip(np.minimum(b[:, 3], y + bh) - np.maximum(b[:, 1], y), 0, None)
        return float((ix * iy).sum())

    return min(corners, key=lambda c: covered(*c))   # min keeps the first of equals


def draw_overlay(image: np.ndarray, stats: dict[str, Any], boxes: np.ndarray | None = None) -> np.ndarray:
    """Write the overlay onto ``image`` (in place) and return it: white text on a darkened, see-through
    band in the corner that covers the fewest detection ``boxes`` (xyxy pixels)."""
    import cv2

    lines = overlay_lines(stats)
    h, w = image.shape[:2]
    scale = max(0.35, min(0.6, w / 1100))
    thick = 1
    (_, th), base = cv2.getTextSize("Ag", cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
    step = th + base + 4
    width = max(cv2.getTextSize(t, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)[0][0] for t in lines) + 10
    height = step * len(lines) + 4
    x0, y0 = overlay_corner((w, h), (width, height), boxes)
    band = image[y0:y0 + min(h, height), x0:x0 + min(w, width)]
    band[:] = (band * 0.35).astype(np.uint8)   # darken behind the text so it stays readable
    for i, text in enumerate(lines):
        y = y0 + 4 + th + i * step
        cv2.putText(image, text, (x0 + 5, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thick,
                    cv2.LINE_AA)
    return image
