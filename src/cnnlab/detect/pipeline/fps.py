"""Honest frame rates: a moving-average FPS meter and a `--max-fps` throttle that sleeps only the rest
of each period (the course's "FPS setting" was a fixed delay added on top of the work)."""

from __future__ import annotations

import time
from collections import deque


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
