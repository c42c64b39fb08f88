"""Latency measurement: warm-up, then time-based repetition until the figures are stable."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

NOISY_CV = 0.25    # latency std / mean above this: the cell is flagged noisy
NOISY_TAIL = 3.0   # p99 / p50 above this: the cell is flagged noisy


@dataclass
class Timing:
    """Latencies (seconds) of repeated calls of one function with one batch size."""

    latencies: np.ndarray
    batch: int

    @property
    def iters(self) -> int:
        return int(self.latencies.size)

    def to_dict(self) -> dict[str, float | int]:
        """Latency percentiles, mean and std in ms; images per second (batch / mean latency); calls."""
        ms = self.latencies * 1e3
        p50, p90, p99 = (float(v) for v in np.percentile(ms, [50, 90, 99]))
        return {"p50_ms": p50, "p90_ms": p90, "p99_ms": p99, "mean_ms": float(ms.mean()), "std_ms": float(ms.std()),
                "images_per_s": float(self.batch / self.latencies.mean()), "iters": self.iters,
                "cv": self.cv, "noisy": self.noisy}

    @property
    def cv(self) -> float:
        """Coefficient of variation of the latencies (std / mean): 0.05 is a steady cell."""
        mean = float(self.latencies.mean())
        return float(self.latencies.std() / mean) if mean > 0 else 0.0

    @property
    def noisy(self) -> bool:
        """An unstable cell whose figure should not be trusted: latencies vary by more than NOISY_CV of
        their mean, or the slowest 1 % take over NOISY_TAIL times the median (other work on the machine,
        thread over-subscription, frequency scaling)."""
        p50, p99 = np.percentile(self.latencies, [50, 99])
        return self.cv > NOISY_CV or (p50 > 0 and p99 / p50 > NOISY_TAIL)


def measure(fn: Callable[[], object], batch: int, *, iters: int | None = None, min_time: float = 1.0,
            min_iters: int = 20, max_time: float = 30.0, warmup: int | None = None,
            warmup_time: float = 0.25) -> Timing:
    """Time ``fn`` (one call = one batch of ``batch`` images).

    Warm-up: ``warmup`` calls, or (auto) at least 3 calls and ``warmup_time`` seconds. Then exactly
    ``iters`` calls, or (auto) until both ``min_time`` seconds and ``min_iters`` calls are reached,
    stopping early only past ``max_time`` seconds (with at least 5 calls) for very slow models.
    """
    clock = time.perf_counter
    start = clock()
    n = 0
    while (warmup is not None and n < warmup) or (warmup is None and (n < 3 or clock() - start < warmup_time)):
        fn()
        n += 1
        if warmup is None and clock() - start > max_time:
            break
    lat: list[float] = []
    begin = clock()
    while True:
        t0 = clock()
        fn()
        lat.append(clock() - t0)
        elapsed = clock() - begin
        enough = (elapsed >= min_time and len(lat) >= min_iters) or (elapsed >= max_time and len(lat) >= 5)
        if (len(lat) >= iters) if iters is not None else enough:
            break
    return Timing(np.asarray(lat, dtype=np.float64), batch)
