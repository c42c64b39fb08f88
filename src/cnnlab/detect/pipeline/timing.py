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


def overlay_lines(stats: dict[str, Any]) -> list[str]:
    """The text lines shown on the frame for the live ``stats`` of the pipeline."""
    fps = float(stats.get("fps", 0.0))
    first = f"FPS {fps:.1f}"
    if stats.get("max_fps"):
        first += f"  (max {stats['max_fps']:g}, achieved {float(stats.get('mean_fps', 0.0)):.1f})"
    if stats.get("dropped"):
        first += f"  dropped {stats['dropped']}"
    lines = [first]
    if stats.get("stages_ms"):
        lines.append(format_stages(stats["stages_ms"]))
    return lines


def draw_overlay(image: np.ndarray, stats: dict[str, Any]) -> np.ndarray:
    """Write the overlay onto ``image`` (in place, top-left, white on a dark band) and return it."""
    import cv2

    lines = overlay_lines(stats)
    h, w = image.shape[:2]
    scale = max(0.35, min(0.6, w / 1100))
    thick = 1
    (_, th), base = cv2.getTextSize("Ag", cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
    step = th + base + 4
    width = max(cv2.getTextSize(t, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)[0][0] for t in lines) + 10
    band = image[0:min(h, step * len(lines) + 4), 0:min(w, width)]
    band[:] = (band * 0.35).astype(np.uint8)   # darken behind the text so it stays readable
    for i, text in enumerate(lines):
        y = 4 + th + i * step
        cv2.putText(image, text, (5, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thick, cv2.LINE_AA)
    return image
