"""The web live view: routes and token, MJPEG to several viewers without slowing the detector, and the
page in a real headless Chromium (Debian's, driven by Playwright) showing a changing image and FPS."""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest

from cnnlab.detect.pipeline import CallbackSink, Pipeline, WebSink
from cnnlab.detect.web import LiveViewServer, parse_web_address
from cnnlab.errors import UserError
from test_stream_units import FakeDetector, FakeLiveSource, make_frame

CHROMIUM = "/usr/bin/chromium"


def _get(url: str, headers: dict | None = None, timeout: float = 5.0):
    req = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.status, r.headers.get("Content-Type"), r.read()


def test_parse_web_address():
    assert parse_web_address("0.0.0.0:9000") == ("0.0.0.0", 9000)
    assert parse_web_address(":8080") == ("127.0.0.1", 8080)
    assert parse_web_address("8081") == ("127.0.0.1", 8081)
    assert parse_web_address("localhost") == ("localhost", 8000)
    assert parse_web_address(None) == ("127.0.0.1", 8000)
    assert parse_web_address("[::1]:7000") == ("::1", 7000)
    with pytest.raises(UserError):
        parse_web_address("host:notaport")
    with pytest.raises(UserError):
        parse_web_address("host:70000")


def test_routes_token_snapshot_and_stats():
    import cv2

    with LiveViewServer("127.0.0.1", 0, token="s3cret") as srv:
        base = f"http://127.0.0.1:{srv.port}"
        assert srv.url == f"{base}/?token=s3cret"
        with pytest.raises(urllib.error.HTTPError) as e:
            _get(base + "/")
        assert e.value.code == 401
        with pytest.raises(urllib.error.HTTPError):
            _get(base + "/stats?token=wrong")
        status, ctype, body = _get(base + "/?token=s3cret")
        assert status == 200 and ctype.startswith("text/html")
        assert b"stream.mjpg?token=s3cret" in body and b'id="fps"' in body
        with pytest.raises(urllib.error.HTTPError) as e:
            _get(base + "/snapshot.jpg?token=s3cret")
        assert e.value.code == 503                              # nothing published yet
        srv.publish(make_frame(5))
        srv.update_stats({"fps": 12.5, "mean_fps": 12.0, "frames": 6, "stages_ms": {"inference": 3.0}})
        _, ctype, jpeg = _get(base + "/snapshot.jpg", headers={"Authorization": "Bearer s3cret"})
        img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        assert ctype == "image/jpeg" and img.shape == (120, 160, 3)
        stats = json.loads(_get(base + "/stats?token=s3cret")[2])
        assert stats["fps"] == 12.5 and stats["viewers"] == 0 and stats["stages_ms"]["inference"] == 3.0
        with pytest.raises(urllib.error.HTTPError) as e:
            _get(base + "/nope?token=s3cret")
        assert e.value.code == 404


def test_port_in_use_is_a_user_error():
    with LiveViewServer("127.0.0.1", 0) as srv, pytest.raises(UserError, match="cannot serve"):
        LiveViewServer("127.0.0.1", srv.port).start()


VIEWERS_SCRIPT = r"""
import sys, threading, time, urllib.request
url, seconds, n_fast = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
counts = [0] * (n_fast + 1)

def viewer(slot, delay):
    # Read multipart JPEG parts; the last viewer is a slow client that pauses after each part.
    deadline = time.time() + seconds
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            assert "boundary=" in r.headers["Content-Type"]
            while time.time() < deadline:
                line = r.readline()
                if not line:
                    return
                if line.lower().startswith(b"content-length:"):
                    size = int(line.split(b":")[1])
                    r.readline()
                    assert r.read(size)[:2] == b"\xff\xd8"
                    counts[slot] += 1
                    if delay:
                        time.sleep(delay)
    except OSError:
        pass

threads = [threading.Thread(target=viewer, args=(i, 0.3 if i == n_fast else 0.0)) for i in range(n_fast + 1)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(" ".join(map(str, counts)))
"""


def test_several_viewers_do_not_slow_the_detector():
    """4 viewers + 1 very slow one, in another process (as browsers are), vs no viewers.

    Windows without and with viewers alternate twice, so a change in the machine's load hits both.
    """
    import subprocess
    import sys

    stamps = []
    web = WebSink("127.0.0.1", 0)
    # A detector capped at 30 FPS (10 ms of work): viewers that held the pipeline up (blocking sends,
    # a stalled client, an encode per viewer) would pull the rate down; load jitter does not.
    p = Pipeline(FakeDetector(delay=0.01), FakeLiveSource(fps=200, size=(320, 240)),
                 [web, CallbackSink(lambda r: stamps.append(time.perf_counter()))], max_fps=30, duration=30,
                 log_every=None)
    runner = threading.Thread(target=p.run)
    runner.start()
    alone, watched, counts, peak = [], [], [], 0
    try:
        while not web._started:
            time.sleep(0.01)
        url = f"http://127.0.0.1:{web.server.port}/stream.mjpg"
        time.sleep(0.2)
        for _ in range(2):
            t = time.perf_counter()
            time.sleep(0.8)
            alone.append((t, time.perf_counter()))
            viewers = subprocess.Popen([sys.executable, "-c", VIEWERS_SCRIPT, url, "1.2", "4"],
                                       stdout=subprocess.PIPE, text=True)
            deadline = time.perf_counter() + 5
            while web.server.broadcaster.viewers < 5 and time.perf_counter() < deadline:
                time.sleep(0.005)
            t = time.perf_counter()
            time.sleep(0.9)
            peak = max(peak, web.server.broadcaster.viewers)
            watched.append((t, time.perf_counter()))
            published, encoded = web.server.broadcaster.published, web.server.broadcaster.encoded
            out, _ = viewers.communicate(timeout=20)
            counts.append([int(c) for c in out.split()])
            while web.server.broadcaster.viewers:          # the slow viewer notices last
                time.sleep(0.01)
    finally:
        p.stop()
        runner.join(10)

    def rate(windows):
        frames = sum(sum(a <= s < b for s in stamps) for a, b in windows)
        return frames / sum(b - a for a, b in windows)

    r_alone, r_watched = rate(alone), rate(watched)
    assert peak == 5
    assert encoded <= published                                # each frame encoded once, for all viewers
    for c in counts:
        assert min(c[:4]) >= 15, counts                        # every fast viewer got a live stream
        assert c[4] <= 6, counts                               # the slow one skipped frames...
    assert abs(r_watched - r_alone) / r_alone <= 0.10, (r_alone, r_watched)   # ...and nobody slowed the detector


def _browser():
    pw = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (dev extra)")
    if not os.path.exists(CHROMIUM):
        pytest.skip("Debian's chromium is not installed (run .ci/setup-chromium.sh)")
    return pw


def test_page_in_headless_chromium_shows_changing_image_and_fps():
    pw = _browser()
    web = WebSink("127.0.0.1", 0, token="tok")
    p = Pipeline(FakeDetector(delay=0.01), FakeLiveSource(fps=30, size=(320, 240)), [web], duration=20,
                 log_every=None)
    runner = threading.Thread(target=p.run)
    runner.start()
    try:
        while not web._started:
            time.sleep(0.01)
        with pw.sync_playwright() as play:
            browser = play.chromium.launch(
                executable_path=CHROMIUM,
                args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                      "--disable-component-update", "--disable-sync", "--no-first-run"])
            try:
                page = browser.new_page()
                page.goto(web.url)
                page.wait_for_function("document.getElementById('view').naturalWidth > 0", timeout=10_000)
                page.wait_for_function("parseFloat(document.getElementById('fps').textContent) > 0",
                                       timeout=10_000)
                fps = float(page.text_content("#fps"))
                view = page.locator("#view")
                first = view.screenshot()
                time.sleep(0.5)
                second = view.screenshot()
                size = page.evaluate("[document.getElementById('view').naturalWidth,"
                                     " document.getElementById('view').naturalHeight]")
                stages = page.text_content("#stages")
            finally:
                browser.close()
    finally:
        p.stop()
        runner.join(10)
    assert 5 < fps < 40
    assert size == [320, 240]
    assert first != second                                     # the image is live
    assert "inference" in stages
