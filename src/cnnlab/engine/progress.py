"""Progress of long loops: a rich bar on a terminal, a line every ``every`` seconds when piped."""

from __future__ import annotations

import os
import sys
import time
from typing import Any


def piped_every() -> float:
    """Seconds between progress lines when output is not a terminal: ``$CNNLAB_PROGRESS_SECONDS``, else 30."""
    try:
        return max(0.0, float(os.environ.get("CNNLAB_PROGRESS_SECONDS", "30")))
    except ValueError:
        return 30.0


def interactive() -> bool:
    """True when standard output is a terminal (rich's view, which honours FORCE_TERMINAL)."""
    from rich.console import Console

    return Console().is_terminal


class Progress:
    """``with Progress("epoch 3/10", total) as p: p.advance(info="loss 0.1")``.

    On a terminal: a transient rich bar with a free-text field. Elsewhere (a file, a pipe, CI): one
    plain line at most every ``every`` seconds (default `piped_every`), so a long epoch is never silent.
    """

    def __init__(self, label: str, total: int | None, enabled: bool = True, every: float | None = None,
                 unit: str = "batches") -> None:
        self.label, self.total, self.enabled, self.unit = label, total, enabled, unit
        self.every = piped_every() if every is None else every
        self.done = 0
        self.info = ""
        self._bar: Any = None
        self._task: Any = None
        self._start = self._last = time.monotonic()

    def __enter__(self) -> Progress:
        if self.enabled and interactive():
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )
            from rich.progress import Progress as RichProgress

            self._bar = RichProgress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                     TextColumn("{task.fields[info]}"), TimeElapsedColumn(),
                                     TimeRemainingColumn(), transient=True)
            self._bar.__enter__()
            self._task = self._bar.add_task(self.label, total=self.total, info="")
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)

    def note(self, info: str) -> None:
        """Show ``info`` beside the bar (what is being done now) without advancing."""
        self.info = info
        if self._bar is not None:
            self._bar.update(self._task, info=info)

    def advance(self, info: str | None = None) -> None:
        self.done += 1
        if info is not None:
            self.info = info
        if self._bar is not None:
            self._bar.update(self._task, advance=1, **({"info": info} if info is not None else {}))
            return
        now = time.monotonic()
        if self.enabled and now - self._last >= self.every:
            self._last = now
            of = f"/{self.total}" if self.total else ""
            eta = ""
            if self.total and self.done:
                eta = f", about {(now - self._start) * (self.total - self.done) / self.done:.0f}s left"
            print(f"{self.label}: {self.done}{of} {self.unit}, {now - self._start:.0f}s{eta}"
                  + (f", {self.info}" if self.info else ""), file=sys.stdout, flush=True)
