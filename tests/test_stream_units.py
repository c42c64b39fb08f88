"""Stream pipeline building blocks (FPS meter, throttle, stage times, sources) and the shared fakes:
`FakeDetector` (sleeps a set time, returns fixed boxes) and `FakeLiveSource` (frames at a fixed rate).
Other test_stream_* / test_web_* / test_sweep_* files import the fakes from here."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from cnnlab.detect.pipeline import (
    CaptureThread,
    FpsMeter,
    ImageSequenceSource,
    SourceInfo,
    StageTimes,
    Throttle,
    VideoCaptureSource,
    open_source,
)
from cnnlab.detect.types import Detections
from cnnlab.errors import UserError


class FakeDetector:
    """The Detector interface with a set inference time and fixed boxes (scaled to the image)."""

    names = ["person", "car"]

    def __init__(self, delay: float = 0.0, post_delay: float = 0.0) -> None:
        self.delay = delay
        self.post_delay = post_delay
        self.calls = 0
        self.seen: list[int] = []          # the frame code of every image seen (see `frame_code`)

    def preprocess(self, image):
        return image, {"shape": image.shape[:2]}

    def infer(self, blob):
        if self.delay:
            time.sleep(self.delay)
        self.calls += 1
        self.seen.append(frame_code(blob))
        return blob

    def postprocess(self, raw, meta):
        if self.post_delay:
            time.sleep(self.post_delay)
        h, w = meta["shape"]
        boxes = np.array([[0.1 * w, 0.2 * h, 0.5 * w, 0.8 * h]], np.float32)
        return Detections(boxes, np.array([0.9], np.float32), np.array([0], np.int64), self.names)

    def __call__(self, image):
        blob, meta = self.preprocess(image)
        return self.postprocess(self.infer(blob), meta)


def make_frame(i: int, size=(160, 120)) -> np.ndarray:
    """A frame whose index survives lossy coding: a coarse binary code of ``i`` in 8x8 cells along the
    bottom edge (clear of the overlay and the fake boxes) and a moving bar."""
    w, h = size
    img = np.full((h, w, 3), 40, np.uint8)
    bits = [(i >> b) & 1 for b in range(12)]
    cell = 8
    for b, on in enumerate(bits):
        x = 4 + b * (cell + 2)
        img[h - 4 - cell:h - 4, x:x + cell] = 230 if on else 20
    bar = (i * 7) % max(1, w - 10)
    img[h // 3:2 * h // 3, bar:bar + 10] = (0, 200, 255)
    return img


def frame_code(img: np.ndarray) -> int:
    """Read back the index written by `make_frame` (-1 if the image is not one of ours)."""
    cell = 8
    code = 0
    for b in range(12):
        x = 4 + b * (cell + 2)
        if x + cell > img.shape[1]:
            return -1
        y = img.shape[0] - 4 - cell
        code |= int(img[y + 2:y + cell - 2, x + 2:x + cell - 2].mean() > 128) << b
    return code


class FakeLiveSource:
    """A camera-like source: frames at a fixed rate, forever or for ``n`` frames."""

    live = True
    reconnect = False

    def __init__(self, fps: float = 100.0, n: int | None = None, size=(160, 120), fail_after=None):
        self.fps, self.n, self.size = fps, n, size
        self.name = "fake live"
        self.info = SourceInfo("fake", "live", size, fps, size[0], size[1], fps)
        self.i = 0
        self.opens = 0
        self.fail_after = fail_after        # return None once after this many frames (a "lost" stream)
        self._next = None

    def open(self):
        self.opens += 1
        self._next = time.perf_counter()

    def read(self):
        if self.n is not None and self.i >= self.n:
            return None
        if self.fail_after is not None and self.i == self.fail_after and self.opens == 1:
            return None
        now = time.perf_counter()
        if self._next > now:
            time.sleep(self._next - now)
        self._next = max(self._next + 1.0 / self.fps, time.perf_counter() - 1.0 / self.fps)
        img = make_frame(self.i, self.size)
        self.i += 1
        return img

    @property
    def position(self):
        return self.i - 1

    def close(self):
        pass


def write_video(path, n: int, size=(160, 120), fps: float = 25.0, fourcc: str = "MJPG"):
    """Write ``n`` frames made by `make_frame` with cv2.VideoWriter."""
    import cv2

    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, size)
    assert vw.isOpened()
    for i in range(n):
        vw.write(make_frame(i, size))
    vw.release()
    return path


def count_video_frames(path) -> int:
    """Decode a video to the end and count its frames."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    assert cap.isOpened(), f"cannot reopen {path}"
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    return n


# ---- tests of the building blocks -------------------------------------------------------------

def test_frame_code_roundtrip_through_video(tmp_path):
    path = write_video(tmp_path / "v.avi", 12)
    import cv2

    cap = cv2.VideoCapture(str(path))
    codes = []
    while True:
        ok, img = cap.read()
        if not ok:
            break
        codes.append(frame_code(img))
    assert codes == list(range(12))


def test_fps_meter_moving_average_and_mean():
    m = FpsMeter(window=5)
    assert m.fps == 0.0
    for k in range(10):
        m.tick(k * 0.1)                # 10 fps
    assert m.fps == pytest.approx(10.0)
    for k in range(10, 20):
        m.tick(0.9 + (k - 9) * 0.05)   # then 20 fps: the moving average follows, the mean lags
    assert m.fps == pytest.approx(20.0)
    assert 10.0 < m.mean_fps < 20.0


def test_throttle_sleeps_only_the_rest_of_the_period():
    t = [0.0]
    slept = []

    def sleep(d):
        slept.append(d)
        t[0] += d

    th = Throttle(10.0, clock=lambda: t[0], sleep=sleep)
    th.start()                         # the first frame starts the schedule
    t[0] += 0.03                       # 30 ms of work in a 100 ms period
    assert th.wait() == pytest.approx(0.07)
    t[0] += 0.25                       # a slow frame (> 1 period late): no sleep, no burst afterwards
    assert th.wait() == 0.0
    t[0] += 0.01
    assert th.wait() == pytest.approx(0.09)
    assert t[0] == pytest.approx(0.45) and sum(slept) == pytest.approx(0.16)
    t[0] += 0.13                       # 30 ms late (jitter): the next frame makes it up
    assert th.wait() == 0.0
    t[0] += 0.02
    assert th.wait() == pytest.approx(0.05)
    assert t[0] == pytest.approx(0.65)  # back on the 100 ms grid: 2 frames in 2 periods
    unstarted = Throttle(10.0, clock=lambda: t[0], sleep=sleep)
    assert unstarted.wait() == 0.0     # without start() the first wait starts the schedule
    assert Throttle(None).wait() == 0.0
    with pytest.raises(ValueError):
        Throttle(0)


def test_stage_times_recent_mean_percentile():
    st = StageTimes(window=2)
    st.add({"capture": 1, "inference": 10})
    st.add({"capture": 3, "inference": 20})
    st.add({"capture": 5, "inference": 30})
    assert st.recent()["capture"] == pytest.approx(4.0)
    assert st.mean()["inference"] == pytest.approx(20.0)
    assert st.mean()["draw"] == 0.0
    assert st.percentile(50)["inference"] == pytest.approx(20.0)


def test_open_source_kinds(tmp_path):
    import cv2

    assert isinstance(open_source(0), VideoCaptureSource) and open_source("1").kind == "webcam"
    assert open_source("rtsp://cam.local/stream").kind == "stream"
    assert open_source("http://cam.local/video.mjpg").live
    video = write_video(tmp_path / "v.avi", 3)
    src = open_source(video, size=(80, 60))
    assert src.kind == "file" and not src.live
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(3):
        cv2.imwrite(str(folder / f"{i:03d}.png"), make_frame(i))
    (folder / "notes.txt").write_text("not an image")
    seq = open_source(folder)
    assert isinstance(seq, ImageSequenceSource) and len(seq.paths) == 3
    with pytest.raises(UserError, match="source not found"):
        open_source(tmp_path / "missing.mp4")
    fake = FakeLiveSource()
    assert open_source(fake) is fake


def test_video_file_source_reports_and_simulates_capture_size(tmp_path):
    src = open_source(write_video(tmp_path / "v.avi", 5, size=(160, 120), fps=12), size=(80, 60))
    src.open()
    frames = []
    while (img := src.read()) is not None:
        frames.append(img)
    src.close()
    assert len(frames) == 5 and frames[0].shape == (60, 80, 3)
    info = src.info
    assert info.native_size == (160, 120) and info.resized and (info.width, info.height) == (80, 60)
    assert info.fps == pytest.approx(12) and info.frame_count == 5
    assert "resized from 160x120" in info.describe()


def test_unopenable_file_is_a_user_error(tmp_path):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"not a video at all")
    with pytest.raises(UserError, match="cannot open"):
        open_source(bad).open()


def test_capture_thread_file_mode_blocks_and_keeps_every_frame():
    src = FakeLiveSource(fps=10_000, n=50)
    cap = CaptureThread(src, buffer_size=3, latest_only=False).start()
    time.sleep(0.1)                     # producer is far faster: it must wait, not grow the buffer
    assert cap.buffered() == 3
    got = []
    while (f := cap.get(timeout=2)) is not None:
        got.append(f.position)
    assert got == list(range(50)) and cap.stats.max_buffered == 3 and cap.stats.dropped == 0
    cap.stop()


def test_capture_thread_live_mode_keeps_newest():
    src = FakeLiveSource(fps=500)
    cap = CaptureThread(src).start()
    seen = []
    for _ in range(5):
        time.sleep(0.05)
        f = cap.get(timeout=1)
        seen.append((f.position, src.i - 1))
    cap.stop()
    assert cap.stats.max_buffered == 1 and cap.stats.dropped > 0
    for pos, newest in seen:
        assert newest - pos <= 2           # what we get is (nearly) the newest frame, not a backlog


def test_capture_thread_reconnects_with_backoff():
    src = FakeLiveSource(fps=200, n=30, fail_after=10)
    src.reconnect = True
    cap = CaptureThread(src, backoff=(0.01, 0.05), max_reconnects=3).start()
    n = 0
    stop_at = time.perf_counter() + 3
    while time.perf_counter() < stop_at and (f := cap.get(timeout=1)) is not None:
        n += 1
        last = f.position
    cap.stop()
    assert cap.stats.reconnects >= 1 and src.opens >= 2
    assert last >= 20


def test_capture_thread_stop_is_prompt_for_a_blocked_file_reader():
    src = FakeLiveSource(fps=10_000)            # infinite, producer blocked on the full buffer
    cap = CaptureThread(src, buffer_size=2, latest_only=False).start()
    time.sleep(0.05)
    t = time.perf_counter()
    cap.stop()
    assert time.perf_counter() - t < 1.0
    assert not any(th.name.startswith("capture[fake") and th.is_alive() for th in threading.enumerate())
