"""Results frame by frame as a generator (Ultralytics' ``predict(stream=True)``, Keras-style loops):

    for r in detector.stream("street.mp4"):
        print(r.index, r.detections)

The pipeline runs on a background thread and hands each finished frame over through a queue of 2,
so a file is read no faster than the loop consumes it and a live source keeps only the newest
frames. Closing the generator (the loop ending, ``break``, ``gen.close()``, garbage collection) stops
the pipeline, which releases the capture, before ``close`` returns.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cnnlab.detect.pipeline.runner import Pipeline, build_sinks
from cnnlab.detect.pipeline.sinks import FrameResult, Sink

_END = object()   # the pipeline has finished


class _QueueSink(Sink):
    """Puts every frame into ``q``; waits while the consumer is behind, gives up once stopped."""

    def __init__(self, q: queue.Queue, stopped: threading.Event, needs_image: bool) -> None:
        self.q, self.stopped, self.needs_image = q, stopped, needs_image

    def write(self, result: FrameResult) -> None:
        result.detections.image = result.image       # r.detections.plot() draws on the frame
        while not self.stopped.is_set():
            try:
                self.q.put(result, timeout=0.1)
                return
            except queue.Full:
                continue


def stream_results(detector: Any, source: int | str | Path | Any, *, draw: bool = True,
                   save: str | Path | None = None, save_jsonl: str | Path | None = None,
                   web: str | bool | None = None, token: str | None = None, log_every: float | None = None,
                   **options: Any) -> Iterator[FrameResult]:
    """Yield a `FrameResult` per processed frame of ``source`` (see the module doc). ``draw``: fill
    ``r.annotated`` (boxes drawn); ``save``/``save_jsonl``/``web`` add the usual outputs; ``options`` go to
    `Pipeline` (max_fps, duration, max_frames, capture, ...). Errors of the pipeline are raised here."""
    q: queue.Queue = queue.Queue(maxsize=2)
    stopped = threading.Event()
    sinks = [*build_sinks(save, save_jsonl, None, web, token, False), _QueueSink(q, stopped, draw)]
    pipeline = Pipeline(detector, source, sinks, log_every=log_every, handle_sigint=False, **options)
    failure: list[BaseException] = []

    def run() -> None:
        try:
            pipeline.run()
        except BaseException as e:  # noqa: BLE001 - re-raised on the consumer's side
            failure.append(e)
        finally:
            while not stopped.is_set():     # a closed generator needs no end marker
                try:
                    q.put(_END, timeout=0.1)
                    break
                except queue.Full:
                    continue

    return _generate(q, stopped, pipeline, threading.Thread(target=run, name="detector-stream", daemon=True),
                     failure)


def _generate(q: queue.Queue, stopped: threading.Event, pipeline: Pipeline, worker: threading.Thread,
              failure: list[BaseException]) -> Iterator[FrameResult]:
    worker.start()
    try:
        while True:
            item = q.get()
            if item is _END:
                break
            yield item
        if failure:
            raise failure[0]
    finally:
        stopped.set()
        pipeline.stop("stop")
        while worker.is_alive():            # drain, so the pipeline never waits on a full queue
            with contextlib.suppress(queue.Empty):
                q.get(timeout=0.05)
        worker.join()
