"""Frame sources (webcam, video file, RTSP/HTTP stream, folder of images) and the capture thread.

A source is anything with ``live``, ``reconnect``, ``name``, ``info``, ``open()``, ``read()`` and
``close()`` (see `FrameSource`). `CaptureThread` reads it on its own thread into a bounded buffer:
live sources keep only the newest frame (no growing lag), files hand over every frame (the reader
blocks when the buffer is full). Streams that fail are reopened with exponential back-off.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from cnnlab.detect.pipeline.timing import FpsMeter
from cnnlab.detect.predict import IMAGE_EXTS
from cnnlab.errors import UserError

log = logging.getLogger("cnnlab.stream")

STREAM_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://", "srt://")


@dataclass
class SourceInfo:
    """What was asked of a source and what it actually delivers."""

    kind: str                                   # webcam | file | stream | images | <custom>
    target: str
    requested_size: tuple[int, int] | None = None
    requested_fps: float | None = None
    width: int = 0                              # size of the frames handed to the pipeline
    height: int = 0
    fps: float = 0.0                            # the device's/file's own rate (0 = unknown)
    native_size: tuple[int, int] | None = None  # what the device/file delivered before any resize
    resized: bool = False                       # frames resized to requested_size in software
    frame_count: int | None = None              # known length (files, folders)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self) | {"fps": round(self.fps, 3)}
        for k in ("requested_size", "native_size"):
            d[k] = list(d[k]) if d[k] else None
        return d

    def describe(self) -> str:
        """One line: ``webcam 0: 640x480 @ 30 fps (asked 1280x720 @ 60)``."""
        text = f"{self.kind} {self.target}: {self.width}x{self.height}"
        if self.fps:
            text += f" @ {self.fps:g} fps"
        asked = []
        if self.requested_size:
            asked.append("x".join(map(str, self.requested_size)))
        if self.requested_fps:
            asked.append(f"{self.requested_fps:g} fps")
        if asked:
            text += f" (asked {' @ '.join(asked)}"
            if self.resized and self.native_size:
                text += f"; resized from {self.native_size[0]}x{self.native_size[1]}"
            text += ")"
        if self.frame_count:
            text += f", {self.frame_count} frames"
        return text


@runtime_checkable
class FrameSource(Protocol):
    """The interface `CaptureThread` needs; implement it to feed custom frames to the pipeline."""

    live: bool          # True: drop stale frames, keep the newest; False: process every frame
    reconnect: bool     # True: reopen with back-off when reading fails
    name: str
    info: SourceInfo

    def open(self) -> None: ...
    def read(self) -> np.ndarray | None: ...   # BGR uint8 HxWx3, or None when ended/lost
    def close(self) -> None: ...


def _resize(image: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
    import cv2

    if size is None or (image.shape[1], image.shape[0]) == tuple(size):
        return image
    return cv2.resize(image, tuple(size), interpolation=cv2.INTER_AREA)


class VideoCaptureSource:
    """A webcam index, video file or stream URL read with ``cv2.VideoCapture``.

    Webcams are asked for ``size`` and ``fps`` through the driver and report what they gave; files and
    streams cannot be asked, so their frames are resized to ``size`` in software (a simulated capture
    resolution, as the sweep needs).
    """

    def __init__(self, target: int | str, kind: str, size: tuple[int, int] | None = None,
                 fps: float | None = None, reconnect: bool | None = None) -> None:
        if kind not in ("webcam", "file", "stream"):
            raise ValueError(f"unknown VideoCaptureSource kind {kind!r}")
        self.target = target
        self.kind = kind
        self.live = kind != "file"
        self.reconnect = self.live if reconnect is None else reconnect
        self.name = f"{kind} {target}"
        self.size = tuple(size) if size else None
        self.info = SourceInfo(kind, str(target), self.size, fps)
        self._cap: Any = None

    def open(self) -> None:
        import cv2

        stream = self.kind == "stream"
        cap = cv2.VideoCapture(str(self.target), cv2.CAP_FFMPEG) if stream else cv2.VideoCapture(self.target)
        if not cap.isOpened():
            cap.release()
            what = {"webcam": "camera", "file": "video file", "stream": "stream"}[self.kind]
            raise UserError(f"cannot open {what} {self.target}")
        if self.kind == "webcam":
            if self.size:
                cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.size[0])
                cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.size[1])
            if self.info.requested_fps:
                cap.set(cv2.CAP_PROP_FPS, float(self.info.requested_fps))
        if self.live:
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)   # ask the driver for little buffering (best effort)
        w = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        h = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        self.info.native_size = (w, h)
        self.info.fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        if self.kind == "file":
            self.info.frame_count = max(0, int(cap.get(cv2.CAP_PROP_FRAME_COUNT))) or None
        # The webcam gives what it gives; files/streams get the requested size in software.
        self.info.resized = bool(self.size) and self.kind != "webcam" and (w, h) != self.size
        self.info.width, self.info.height = (self.size if self.info.resized else (w, h))
        self._cap = cap

    def read(self) -> np.ndarray | None:
        if self._cap is None:
            return None
        ok, frame = self._cap.read()
        if not ok or frame is None:
            return None
        if self.kind == "webcam":
            self.info.height, self.info.width = frame.shape[:2]   # some drivers report 0x0 up front
            return frame
        return _resize(frame, self.size) if self.info.resized else frame

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


class ImageSequenceSource:
    """A folder of images (sorted by name) or an explicit list of image paths, played as frames."""

    def __init__(self, images: str | Path | list[str | Path], size: tuple[int, int] | None = None,
                 name: str | None = None) -> None:
        if isinstance(images, (str, Path)):
            folder = Path(images)
            if not folder.is_dir():
                raise UserError(f"not a folder of images: {folder}")
            paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTS)
            if not paths:
                raise UserError(f"no images ({', '.join(sorted(IMAGE_EXTS))}) in {folder}")
            target = str(folder)
        else:
            paths = [Path(p) for p in images]
            if not paths:
                raise UserError("empty image list")
            target = name or f"{len(paths)} images"
        self.paths = paths
        self.live = False
        self.reconnect = False
        self.name = f"images {target}"
        self.size = tuple(size) if size else None
        self.info = SourceInfo("images", target, self.size, None, frame_count=len(paths))
        self._i = 0
        self.skipped: list[Path] = []

    def open(self) -> None:
        self._i = 0
        first = self._load(self.paths[0]) if self.paths else None
        if first is not None:
            h, w = first.shape[:2]
            self.info.native_size = (w, h)
            self.info.resized = bool(self.size) and (w, h) != self.size
            self.info.width, self.info.height = self.size if self.size else (w, h)

    @staticmethod
    def _load(path: Path) -> np.ndarray | None:
        """The image, or None when it cannot be decoded (a truncated JPEG: decoded, with a warning
        naming it, by `cnnlab.detect.images.read_image`)."""
        from cnnlab.detect.images import read_image
        from cnnlab.errors import UserError

        try:
            return read_image(path)
        except UserError:
            return None

    def read(self) -> np.ndarray | None:
        while self._i < len(self.paths):
            path = self.paths[self._i]
            self._i += 1
            image = self._load(path)
            if image is None:
                log.warning("skipping unreadable image %s", path)
                self.skipped.append(path)
                continue
            return _resize(image, self.size)
        return None

    @property
    def position(self) -> int:
        """Index (into ``paths``) of the image returned by the last `read`."""
        return self._i - 1

    def close(self) -> None:
        self._i = len(self.paths)


def open_source(spec: int | str | Path | FrameSource, size: tuple[int, int] | None = None,
                fps: float | None = None) -> FrameSource:
    """Make a source from a webcam index (``0``), a video file, a stream URL or a folder of images.

    A `FrameSource` object is returned as it is. ``size`` is the requested capture resolution
    (width, height) and ``fps`` the requested device rate (webcams only).
    """
    if isinstance(spec, FrameSource) and not isinstance(spec, (str, Path, int)):
        return spec
    if isinstance(spec, int) or (isinstance(spec, str) and spec.strip().isdigit()):
        return VideoCaptureSource(int(spec), "webcam", size, fps)
    text = str(spec)
    if text.lower().startswith(STREAM_SCHEMES):
        return VideoCaptureSource(text, "stream", size, fps)
    if text.startswith("/dev/video"):
        return VideoCaptureSource(text, "webcam", size, fps)
    path = Path(text).expanduser()
    if path.is_dir():
        return ImageSequenceSource(path, size)
    if path.is_file():
        if path.suffix.lower() in IMAGE_EXTS:
            return ImageSequenceSource([path], size, name=str(path))
        return VideoCaptureSource(str(path), "file", size, fps)
    raise UserError(f"source not found: {text} (expected a webcam index, video file, "
                    "folder of images or rtsp:// / http:// URL)")


@dataclass
class Frame:
    """One captured frame: running index, the image (BGR), and when it was captured."""

    index: int
    image: np.ndarray
    captured_at: float                 # time.perf_counter() when read() returned
    position: int                      # position in the source (frame number / image index)
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class CaptureStats:
    captured: int = 0
    dropped: int = 0          # live frames replaced by a newer one before the pipeline took them
    reconnects: int = 0
    max_buffered: int = 0     # high-water mark of the buffer (never above its bound)
    read_errors: int = 0


class CaptureThread:
    """Read a source on a background thread into a bounded buffer.

    ``latest_only`` (default: ``source.live``) keeps a buffer of one frame that each new frame replaces;
    otherwise the buffer holds up to ``buffer_size`` frames and the reader waits while it is full, so
    every frame of a file reaches the pipeline and memory stays bounded.
    """

    def __init__(self, source: FrameSource, buffer_size: int = 4, latest_only: bool | None = None,
                 backoff: tuple[float, float] = (0.5, 10.0), max_reconnects: int | None = None,
                 prepare: Callable[[np.ndarray], Any] | None = None) -> None:
        self.source = source
        self.latest_only = source.live if latest_only is None else latest_only
        # Work done on every frame before buffering (result in frame.meta["prepared"]); only for
        # sources that hand over every frame, so no work is spent on frames that would be dropped.
        self.prepare = None if self.latest_only else prepare
        self.bound = 1 if self.latest_only else max(1, int(buffer_size))
        self.backoff = backoff
        self.max_reconnects = max_reconnects
        self.stats = CaptureStats()
        self.meter = FpsMeter(30)     # the rate the source really delivers (drivers' CAP_PROP_FPS can lie)
        self._buf: deque[Frame] = deque()
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._ended = False
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._position = 0
        self._failures = 0

    # -- producer ---------------------------------------------------------------------------------
    def start(self) -> CaptureThread:
        """Open the source (errors surface here, in the caller's thread) and start reading."""
        self.source.open()
        self._thread = threading.Thread(target=self._run, name=f"capture[{self.source.name}]", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                image = self.source.read()
                if image is None:
                    if self._stop.is_set() or not self.source.reconnect or not self._reconnect():
                        break
                    continue
                self._failures = 0        # a good frame: the next loss starts the back-off afresh
                self._push(image)
        except BaseException as e:  # noqa: BLE001 - handed to the consumer, which re-raises
            self._error = e
        finally:
            with self._cond:
                self._ended = True
                self._cond.notify_all()

    def _push(self, image: np.ndarray) -> None:
        pos = getattr(self.source, "position", self._position)
        self._position += 1
        frame = Frame(self.stats.captured, image, self.meter.tick(), int(pos))
        if self.prepare is not None:
            frame.meta["prepared"] = self.prepare(image)
        with self._cond:
            if self.latest_only:
                if self._buf:
                    self._buf.popleft()
                    self.stats.dropped += 1
            else:   # get() and stop() notify
                self._cond.wait_for(lambda: len(self._buf) < self.bound or self._stop.is_set())
                if self._stop.is_set():
                    return
            self._buf.append(frame)
            self.stats.captured += 1
            self.stats.max_buffered = max(self.stats.max_buffered, len(self._buf))
            self._cond.notify_all()

    def _reconnect(self) -> bool:
        """Reopen the source with exponential back-off; False when stopped or out of attempts.

        Failures count until a frame is read again, so a source that opens but yields nothing is
        retried ever more slowly (and, with ``max_reconnects``, given up) instead of spinning.
        """
        first, cap = self.backoff
        while not self._stop.is_set():
            if self.max_reconnects is not None and self._failures >= self.max_reconnects:
                log.warning("%s: giving up after %d reconnect attempts", self.source.name, self._failures)
                return False
            delay = min(first * 2 ** self._failures, cap)
            self._failures += 1
            log.warning("%s: lost; reconnecting in %.1f s (attempt %d)", self.source.name, delay,
                        self._failures)
            if self._stop.wait(delay):
                return False
            try:
                self.source.close()
                self.source.open()
                self.stats.reconnects += 1
                log.warning("%s: reconnected", self.source.name)
                return True
            except UserError as e:
                self.stats.read_errors += 1
                log.debug("reconnect failed: %s", e)
        return False

    # -- consumer ---------------------------------------------------------------------------------
    def get(self, timeout: float | None = None) -> Frame | None:
        """The next frame (the newest one for live sources); None when the source has ended.

        With a ``timeout``, raises `TimeoutError` if no frame arrives in time.
        """
        with self._cond:   # every change of the buffer, _ended and _stop is notified
            if not self._cond.wait_for(lambda: self._buf or self._ended or self._stop.is_set(), timeout):
                raise TimeoutError("no frame from the source in time")
            if not self._buf:
                if self._error is not None:
                    raise self._error
                return None
            frame = self._buf.popleft()
            self._cond.notify_all()
            return frame

    def buffered(self) -> int:
        """Frames waiting in the buffer now (never more than ``bound``)."""
        with self._cond:
            return len(self._buf)

    @property
    def ended(self) -> bool:
        return self._ended

    def stop(self, timeout: float = 2.0) -> None:
        """Stop reading and release the source (waits up to ``timeout`` for the thread)."""
        self._stop.set()
        with self._cond:
            self._buf.clear()
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                # Still blocked inside read() (a stalled stream): releasing under it could crash
                # the backend, so leave it as a daemon; the process exit reclaims it.
                log.debug("capture thread still blocked in read(); left as a daemon")
                return
        self.source.close()
