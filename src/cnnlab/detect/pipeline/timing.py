"""Per-stage timing of the pipeline: recent (moving-average) and whole-run milliseconds per stage."""

from __future__ import annotations

from collections import deque

import numpy as np

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
