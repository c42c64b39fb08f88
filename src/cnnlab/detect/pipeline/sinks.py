"""Pipeline outputs: window, video file, image files, JSON lines and the web live view.

Each sink has ``open()``, ``write(result)`` and ``close()``; ``close`` is always called, also on
Ctrl-C, so videos are finalised (playable) and JSON lines are complete. ``needs_image`` says whether
the sink uses the annotated frame (the pipeline skips drawing when no sink does).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cnnlab.errors import UserError

if TYPE_CHECKING:
    from cnnlab.detect.types import Detections

log = logging.getLogger("cnnlab.stream")


@dataclass
class FrameResult:
    """Everything the pipeline knows about one processed frame."""

    index: int                       # processed-frame number (0-based, no gaps)
    position: int                    # frame number / image index in the source (gaps: dropped frames)
    image: np.ndarray                # the captured frame (BGR)
    detections: Detections
    stages_ms: dict[str, float]      # this frame's stage times (output: the previous frame's)
    stats: dict[str, Any]            # live figures: fps, mean_fps, stages_ms (moving avg), ...
    timestamp: float                 # wall-clock time (time.time()) of capture
    annotated: np.ndarray | None = None   # the frame with the detections drawn
    meta: dict[str, Any] = field(default_factory=dict)
    overlaid: np.ndarray | None = None    # ``annotated`` plus the live figures in a free corner

    @property
    def shown(self) -> np.ndarray:
        """The frame with detections and live figures, else with detections, else the captured one."""
        for image in (self.overlaid, self.annotated):
            if image is not None:
                return image
        return self.image

    def to_record(self) -> dict[str, Any]:
        """A JSON-ready record of the frame (no pixels)."""
        return {
            "frame": self.index, "position": self.position, "time": round(self.timestamp, 6),
            "width": int(self.image.shape[1]), "height": int(self.image.shape[0]),
            "detections": self.detections.to_dicts(),
            "stages_ms": {k: round(v, 3) for k, v in self.stages_ms.items()},
            "fps": round(float(self.stats.get("fps", 0.0)), 3),
        }


class Sink:
    """Base class: a pipeline output."""

    needs_image = True

    def open(self) -> None:
        """Acquire resources (called before the first frame)."""

    def write(self, result: FrameResult) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Release resources; must be safe to call more than once."""

    def status_text(self) -> str:
        """A short addition to the pipeline's log line (empty: nothing to add)."""
        return ""

    @property
    def stop_requested(self) -> bool:
        """True when the sink asks the pipeline to stop (e.g. 'q' pressed in the window)."""
        return False


def gui_available() -> bool:
    """Whether this OpenCV build can open windows (the headless wheels cannot)."""
    import cv2

    line = next((ln for ln in cv2.getBuildInformation().splitlines() if ln.strip().startswith("GUI:")), None)
    return line is None or line.split(":", 1)[1].strip().upper() not in ("NONE", "NO", "")


class WindowSink(Sink):
    """Show the annotated frames with ``cv2.imshow``; 'q' or Esc stops the pipeline."""

    def __init__(self, title: str = "cnnlab stream") -> None:
        self.title = title
        self._stop = False
        self._open = False

    def open(self) -> None:
        import cv2

        if not gui_available():
            raise UserError("--show needs an OpenCV build with GUI support; this one is headless "
                            "(opencv-python-headless). Use --web to watch in a browser, or install "
                            "opencv-python in place of opencv-python-headless")
        try:
            cv2.namedWindow(self.title, cv2.WINDOW_NORMAL)
        except cv2.error as e:
            raise UserError(f"cannot open a window (no display?): {str(e).strip().splitlines()[-1]}; "
                            "use --web instead") from None
        self._open = True

    def write(self, result: FrameResult) -> None:
        import cv2

        cv2.imshow(self.title, result.shown)
        self._stop |= (cv2.waitKey(1) & 0xFF) in (ord("q"), 27)   # q or Esc

    @property
    def stop_requested(self) -> bool:
        return self._stop

    def close(self) -> None:
        if self._open:
            import cv2

            cv2.destroyWindow(self.title)
            cv2.waitKey(1)
            self._open = False


FOURCC = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "MJPG"}


class VideoSink(Sink):
    """Write annotated frames to a video file (``.mp4``: mp4v, ``.avi``/``.mkv``: MJPG).

    The video is written beside the target under a temporary name and renamed into place when it
    is closed, so the file at ``path`` is always a complete, playable video.
    """

    def __init__(self, path: str | Path, fps: float | None = None, fourcc: str | None = None) -> None:
        self.path = Path(path)
        ext = self.path.suffix.lower()
        if fourcc is None and ext not in FOURCC:
            raise UserError(f"unsupported video extension {ext or '(none)'!r} for {self.path}: "
                            f"use one of {', '.join(sorted(FOURCC))}")
        self.fourcc = fourcc or FOURCC[ext]
        # fps None: the pipeline picks the file's own rate, else --max-fps, else the device's, else 25.
        self.fps_auto = not (fps and fps > 0)
        self.fps = 25.0 if self.fps_auto else float(fps)
        self._writer: Any = None
        self._tmp = self.path.with_name(f".{self.path.stem}.partial{self.path.suffix}")
        self.frames = 0
        self.size: tuple[int, int] | None = None

    def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, result: FrameResult) -> None:
        self.write_image(result.shown)

    def write_image(self, image: np.ndarray) -> None:
        import cv2

        h, w = image.shape[:2]
        if self._writer is None:
            self._writer = cv2.VideoWriter(str(self._tmp), cv2.VideoWriter_fourcc(*self.fourcc),
                                           self.fps, (w, h))
            if not self._writer.isOpened():
                self._writer = None
                raise UserError(f"cannot write video {self.path} with codec {self.fourcc}")
            self.size = (w, h)
        elif (w, h) != self.size:   # a reconnected stream may change size: keep the file consistent
            image = cv2.resize(image, self.size)
        self._writer.write(image)
        self.frames += 1

    def close(self, keep: bool = True) -> None:
        """Rename the finished video into place (``keep=False``: delete it, e.g. after an error)."""
        if self._writer is not None:
            self._writer.release()
            self._writer = None
            if keep:
                os.replace(self._tmp, self.path)
        self._tmp.unlink(missing_ok=True)


class ImageSink(Sink):
    """Save annotated frames as numbered image files (``frame_000000.jpg``) in a folder."""

    def __init__(self, folder: str | Path, ext: str = ".jpg", every: int = 1) -> None:
        self.folder = Path(folder)
        self.ext = ext if ext.startswith(".") else "." + ext
        self.every = max(1, int(every))
        self.frames = 0

    def open(self) -> None:
        if self.folder.exists() and not self.folder.is_dir():
            raise UserError(f"--save-frames: {self.folder} exists and is not a folder")
        self.folder.mkdir(parents=True, exist_ok=True)

    def write(self, result: FrameResult) -> None:
        from cnnlab.detect.draw import write_image

        if result.index % self.every:
            return
        write_image(self.folder / f"frame_{result.index:06d}{self.ext}", result.shown)
        self.frames += 1


class JsonlSink(Sink):
    """One JSON object per frame (detections, stage times, fps), written whole and flushed."""

    needs_image = False

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._f: Any = None
        self.lines = 0

    def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._f = open(self.path, "w", encoding="utf-8")  # noqa: SIM115 - closed in close()
        except OSError as e:
            raise UserError(f"cannot write {self.path}: {e.strerror}") from None

    def write(self, result: FrameResult) -> None:
        self._f.write(json.dumps(result.to_record(), separators=(",", ":")) + "\n")
        self._f.flush()
        self.lines += 1

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None


class WebSink(Sink):
    """Serve the annotated frames and live figures in a browser (see `cnnlab.detect.web`).

    ``write`` only hands the frame over (the newest one wins; the server encodes and sends it on its
    own threads), so the web view never slows the pipeline. ``client_timeout`` (a viewer taking no
    data), ``idle_timeout`` (a connection sending no request), ``max_viewers`` and
    ``max_connections`` bound what clients can hold.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 8000, token: str | None = None,
                 quality: int = 80, max_viewers: int = 16, client_timeout: float = 10.0,
                 idle_timeout: float = 10.0, max_connections: int = 256) -> None:
        from cnnlab.detect.web import LiveViewServer

        self.server = LiveViewServer(host, port, token=token, quality=quality, max_viewers=max_viewers,
                                     client_timeout=client_timeout, idle_timeout=idle_timeout,
                                     max_connections=max_connections)
        self._started = False

    @property
    def url(self) -> str:
        return self.server.url

    def open(self) -> None:
        self.server.start()
        self._started = True

    def write(self, result: FrameResult) -> None:
        # the page shows the live figures in its own bar, so the video carries only the detections
        image = result.annotated if result.annotated is not None else result.image
        self.server.publish(image, captured_at=result.timestamp)
        self.server.update_stats(result.stats)

    def status_text(self) -> str:
        """``web: display p50 .. ms, p95 .. ms (browser ack)`` once a browser has acknowledged frames,
        else the capture -> sent figures, else nothing."""
        from cnnlab.detect.pipeline.timing import format_latency

        lat = self.server.latency_summary()
        if lat.get("display"):
            return "web " + format_latency(lat["display"], "capture -> shown in browser")
        if lat.get("sent"):
            return "web " + format_latency(lat["sent"], "capture -> sent to viewer")
        return ""

    def close(self) -> None:
        if self._started:
            self.server.stop()
            self._started = False


class CallbackSink(Sink):
    """Call ``fn(result)`` for every frame (e.g. to collect detections, as the sweep does)."""

    def __init__(self, fn, needs_image: bool = False) -> None:
        self.fn = fn
        self.needs_image = needs_image

    def write(self, result: FrameResult) -> None:
        self.fn(result)
