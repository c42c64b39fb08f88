"""The live page's figures: capture -> display latency (server side and browser acks), frame progress and
ETA for files, an overlay that keeps off the detections, and the page layout in headless Chromium."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest

from cnnlab.detect.pipeline import CallbackSink, Pipeline, WebSink, run_pipeline
from cnnlab.detect.pipeline.timing import LatencyWindow, draw_overlay, format_eta, overlay_corner
from cnnlab.detect.web import LiveViewServer
from test_stream_units import FakeDetector, make_frame, write_video
from test_web_live import _browser


def _get(url, timeout=5.0):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status, r.headers, r.read()


def test_latency_window_and_eta_format():
    w = LatencyWindow(window=100)
    assert w.summary() is None
    for v in range(1, 101):
        w.add(float(v))
    s = w.summary()
    assert s["n"] == 100 and s["p50"] == pytest.approx(50.5) and s["p95"] == pytest.approx(95.05)
    assert (format_eta(42), format_eta(3723), format_eta(None)) == ("0:42", "1:02:03", "?")


def test_server_measures_capture_to_sent_and_to_browser_ack():
    with LiveViewServer("127.0.0.1", 0) as srv:
        base = f"http://127.0.0.1:{srv.port}"
        srv.publish(make_frame(1), captured_at=time.time() - 0.2)     # captured 200 ms ago
        with urllib.request.urlopen(base + "/stream.mjpg", timeout=5) as r:
            head = b""
            while b"\r\n\r\n" not in head:
                head += r.read(1)
        assert b"X-Frame: 1\r\n" in head                                 # the part names its frame
        status, _, _ = _get(base + "/ack?seq=1")
        assert status == 204
        for bad in ("x", "-1", "1" * 40):
            with pytest.raises(urllib.error.HTTPError) as e:
                _get(base + f"/ack?seq={bad}")
            assert e.value.code == 400
        _get(base + "/ack?seq=99")                                        # unknown frame: not counted
        lat = json.loads(_get(base + "/stats")[2])["web_latency"]
    assert lat["display"]["n"] == 1 and 200 <= lat["display"]["p50"] < 2000
    assert lat["sent"]["n"] >= 1 and 200 <= lat["sent"]["p95"] < 2000


def test_file_source_reports_position_total_eta_and_latency_in_stats_and_log(tmp_path):
    video = write_video(tmp_path / "in.avi", 12)
    stats, lines = [], []
    run_pipeline(video, FakeDetector(), log_every=1e-6, logger=lines.append,
                 sinks=[CallbackSink(lambda r: stats.append(r.stats))])
    assert [s["position"] for s in stats] == list(range(1, 13)) and {s["total"] for s in stats} == {12}
    assert stats[-1]["eta_s"] is not None and stats[-1]["eta_s"] <= stats[3]["eta_s"] + 1e-9
    assert stats[-1]["latency"]["n"] == 11 and stats[-1]["latency"]["p50"] > 0
    frame_lines = [line for line in lines if line.startswith("frame ")]
    assert frame_lines and "/12 (" in frame_lines[-1] and "ETA" in frame_lines[-1]
    assert "latency p50" in frame_lines[-1] and "(capture -> output)" in frame_lines[-1]


def test_overlay_goes_to_the_corner_without_boxes():
    # a box in the top-left corner: the figures move to the top-right
    assert overlay_corner((320, 240), (120, 40), np.array([[0, 0, 100, 100]])) == (200, 0)
    # boxes along the whole top: bottom-left
    assert overlay_corner((320, 240), (120, 40), np.array([[0, 0, 320, 60]])) == (0, 200)
    assert overlay_corner((320, 240), (120, 40), None) == (0, 0)
    img = np.full((240, 320, 3), 200, np.uint8)
    box = np.array([[0, 0, 150, 120]], np.float32)
    out = draw_overlay(img.copy(), {"fps": 25.0, "stages_ms": {"inference": 3.0}}, box)
    assert (out[:120, :150] == 200).all()                              # the box is untouched
    assert (out != 200).any()


def test_page_fills_the_width_and_shows_latency_and_progress(tmp_path):
    pw = _browser()
    video = write_video(tmp_path / "in.avi", 90, size=(320, 240))
    web = WebSink("127.0.0.1", 0)
    p = Pipeline(FakeDetector(delay=0.005), video, [web], max_fps=15, log_every=None)
    runner = threading.Thread(target=p.run)
    runner.start()
    try:
        while not web._started:
            time.sleep(0.01)
        with pw.sync_playwright() as play:
            from test_web_live import CHROMIUM

            browser = play.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox",
                                                                           "--disable-gpu", "--no-first-run"])
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.goto(web.url)
                page.wait_for_function("document.getElementById('latwhat').textContent.includes('shown')",
                                       timeout=15_000)
                box = page.locator("#view").bounding_box()
                lat = page.text_content("#lat")
                progress = page.text_content("#progtext")
                table = page.text_content("#latency")
            finally:
                browser.close()
    finally:
        p.stop()
        runner.join(10)
    assert box["width"] > 1300                                  # a 320 px video fills a 1400 px page
    assert box["height"] > 850          # as tall as the window allows below the bar (aspect kept: contain)
    p50, p95 = (float(v) for v in lat.replace("ms", "").split("/"))
    assert 0 < p50 <= p95 < 5000
    assert "/90 (" in progress and "ETA" in progress
    assert "shown in a browser" in table and "sent to a viewer" in table
