"""Soak of the web live view (`cnnlab stream --web`): the real pipeline and server under viewers and bad
clients for a bounded time, on loopback only. Writes the `web_soak` section of docs/benchmarks.md.

    nice -n 10 .venv/bin/python benchmarks/web_soak.py [--minutes 10] [--fps 30] [--viewers 10]

A synthetic camera (``--size``, ``--fps``: noisy moving frames, so the JPEGs are camera-sized) feeds
`cnnlab.detect.pipeline.Pipeline` with a synthetic detector (``--work-ms`` of inference) and the real
`WebSink` on 127.0.0.1. Three phases: no clients (10 % of the time, at least 5 s), load (the rest less
the last phase), no clients again. During the load a separate process (as browsers are) runs

- ``--viewers`` MJPEG viewers, each in sessions of 5-15 s that end alternately with a normal close and a
  reset (SO_LINGER 0), then reconnect;
- a page poller (``/stats`` twice a second, ``/snapshot.jpg`` every 2 s, as the page and a script do);
- idle connections, in batches: half closed by the client after up to 1 s, half left for the server's
  idle timeout (``--idle-timeout``, short here so they churn), a few of them slowloris (half a header);
- malformed requests, one after another: no HTTP version, garbage, a bad header, a 20 kB header line, a
  TLS hello, each expecting a 4xx and the connection closed.

Recorded: the pipeline's frame rate in each phase (with and without viewers), the server process's
RSS and thread count (start, peak, end), open connections (peak, at the end), the server's counters
and the clients' view (frames received, answers, connections closed by the server).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import select
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import markdown_table, write_section  # noqa: E402

BOUNDARY = b"--cnnlabframe"


# -- the server process --------------------------------------------------------------------------------

def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def threads() -> int:
    return len(os.listdir("/proc/self/task"))


class SyntheticCamera:
    """A live source at a fixed rate: noisy frames with a moving bar (JPEGs of a real camera's size)."""

    live = True
    reconnect = False

    def __init__(self, fps: float, size: tuple[int, int]) -> None:
        import numpy as np

        from cnnlab.detect.pipeline import SourceInfo

        self.fps, self.size = fps, size
        self.name = "synthetic camera"
        self.info = SourceInfo("synthetic", "camera", size, fps, size[0], size[1], fps)
        w, h = size
        rng = np.random.default_rng(0)
        base = np.linspace(30, 200, w, dtype=np.float32)[None, :, None].repeat(h, 0).repeat(3, 2)
        self.frames = []
        for i in range(32):
            f = base + rng.normal(0, 12, (h, w, 3)).astype(np.float32)
            x = (i * w // 32) % w
            f[:, x:x + w // 16] = 240
            self.frames.append(np.clip(f, 0, 255).astype(np.uint8))
        self.i = 0
        self._next = 0.0

    def open(self) -> None:
        self._next = time.perf_counter()

    def read(self):
        now = time.perf_counter()
        if self._next > now:
            time.sleep(self._next - now)
        self._next = max(self._next + 1.0 / self.fps, time.perf_counter() - 1.0 / self.fps)
        frame = self.frames[self.i % len(self.frames)].copy()
        self.i += 1
        return frame

    @property
    def position(self) -> int:
        return self.i - 1

    def close(self) -> None:
        pass


class SyntheticDetector:
    """The detector interface: a real resize, ``work_ms`` of inference (GIL released, as a native
    runtime does), two fixed boxes."""

    names = ["person", "car"]

    def __init__(self, work_ms: float) -> None:
        self.work = work_ms / 1000

    def preprocess(self, image):
        import cv2

        return cv2.resize(image, (320, 320)), {"shape": image.shape[:2]}

    def infer(self, blob):
        time.sleep(self.work)
        return blob

    def postprocess(self, raw, meta):
        import numpy as np

        from cnnlab.detect.types import Detections

        h, w = meta["shape"]
        boxes = np.array([[0.1 * w, 0.2 * h, 0.4 * w, 0.9 * h], [0.5 * w, 0.5 * h, 0.9 * w, 0.8 * h]],
                         np.float32)
        return Detections(boxes, np.array([0.9, 0.7], np.float32), np.array([0, 1], np.int64), self.names)

    def __call__(self, image):
        blob, meta = self.preprocess(image)
        return self.postprocess(self.infer(blob), meta)


class Sampler(threading.Thread):
    """Every second: RSS, threads, open connections and viewers of this (the server's) process."""

    def __init__(self, web) -> None:
        super().__init__(daemon=True, name="soak-sampler")
        self.web = web
        self.samples: list[dict] = []
        self._halt = threading.Event()

    def sample(self) -> dict:
        srv = self.web.server
        s = {"t": time.perf_counter(), "rss": rss_mb(), "threads": threads(), "connections": srv.connections,
             "viewers": srv.broadcaster.viewers}
        self.samples.append(s)
        return s

    def run(self) -> None:
        while not self._halt.wait(1.0):
            self.sample()

    def stop(self) -> None:
        self._halt.set()
        self.join(5)

    def peak(self, key: str, a: float, b: float) -> float:
        vals = [s[key] for s in self.samples if a <= s["t"] <= b]
        return max(vals) if vals else float("nan")


def run_soak(args) -> None:
    from cnnlab.detect.pipeline import CallbackSink, Pipeline, WebSink

    total = args.minutes * 60
    quiet = max(5.0, 0.1 * total)
    load_s = total - 2 * quiet
    if load_s < 5:
        sys.exit("--minutes too short: at least 0.25 (5 s without clients, 5 s of load, 5 s without)")
    w, h = (int(v) for v in args.size.lower().split("x"))
    stamps: list[float] = []
    web = WebSink("127.0.0.1", 0, idle_timeout=args.idle_timeout, client_timeout=5.0)
    pipe = Pipeline(SyntheticDetector(args.work_ms), SyntheticCamera(args.fps, (w, h)),
                    [web, CallbackSink(lambda r: stamps.append(time.perf_counter()))],
                    log_every=None, handle_sigint=False)
    result: dict = {}
    runner = threading.Thread(target=lambda: result.setdefault("summary", pipe.run()), name="soak-pipeline",
                              daemon=True)
    runner.start()
    try:
        measure(args, web, pipe, runner, result, stamps, quiet, load_s, total)
    finally:
        pipe.stop()
        runner.join(30)


def measure(args, web, pipe, runner, result, stamps, quiet, load_s, total) -> None:
    """The three phases, the checks and the report (the pipeline runs on ``runner``)."""
    while not web._started:
        if not runner.is_alive():
            sys.exit("the pipeline did not start")
        time.sleep(0.01)
    port = web.server.port
    time.sleep(2.0)                     # warm-up: first frames, JPEG encoder, aiohttp imported
    sampler = Sampler(web)
    sampler.start()
    start = sampler.sample()
    print(f"live view on 127.0.0.1:{port}; {quiet:.0f} s without clients, {load_s:.0f} s of load, "
          f"{quiet:.0f} s without", flush=True)
    t0 = time.perf_counter()
    time.sleep(quiet)
    t1 = time.perf_counter()
    before_load = sampler.sample()
    worker = subprocess.Popen([sys.executable, __file__, "--load-worker", str(port), str(load_s),
                               str(args.viewers), str(args.idle_timeout)],
                              stdout=subprocess.PIPE, text=True)
    out, _ = worker.communicate(timeout=load_s + 120)
    t2 = time.perf_counter()
    clients = json.loads(out.strip().splitlines()[-1])
    drained = time.perf_counter()
    while web.server.connections and time.perf_counter() - drained < args.idle_timeout + 10:
        time.sleep(0.05)
    drain_s = time.perf_counter() - drained
    after_load = sampler.sample()
    time.sleep(quiet)
    t3 = time.perf_counter()
    end = sampler.sample()
    sampler.stop()
    counts = dict(web.server.counts)
    pipe.stop()
    runner.join(30)
    summary = result.get("summary")

    def fps(a: float, b: float) -> float:
        return sum(a <= s < b for s in stamps) / (b - a)

    def windows(a: float, b: float, size: float = 5.0) -> list[float]:
        n = int((b - a) // size)
        return [fps(a + i * size, a + (i + 1) * size) for i in range(n)]

    load_windows = windows(t1 + 1.0, t2)
    def phase(name: str, a: float, b: float, last: dict) -> dict:
        return {"phase": name, "seconds": round(b - a, 1), "pipeline FPS": round(fps(a, b), 2),
                "peak viewers": sampler.peak("viewers", a, b),
                "peak connections": sampler.peak("connections", a, b),
                "peak threads": sampler.peak("threads", a, b), "RSS at end (MB)": round(last["rss"], 1)}

    phases = [phase("before: no clients", t0, t1, before_load),
              phase(f"load: {args.viewers} viewers + idle + malformed", t1, t2, after_load),
              phase("after: no clients", t2, t3, end)]
    trend = [min(sampler.samples, key=lambda x, at=t1 + k * (t2 - t1) / 10: abs(x["t"] - at))["rss"]
             for k in range(11)]                          # RSS every 10 % of the load: a plateau, or a leak
    quiet_fps = (fps(t0, t1) * (t1 - t0) + fps(t2, t3) * (t3 - t2)) / ((t1 - t0) + (t3 - t2))
    load_fps = fps(t1, t2)
    v = clients["viewers"]
    idle = clients["idle"]
    bad = clients["malformed"]
    poll = clients["poller"]
    checks = [
        ("pipeline FPS with viewers within 10 % of without", abs(load_fps - quiet_fps) <= 0.10 * quiet_fps,
         f"{load_fps:.1f} vs {quiet_fps:.1f}"),
        ("every viewer session received frames", v["sessions_without_frames"] == 0,
         f"{v['sessions']} sessions, {v['sessions_without_frames']} without a frame"),
        ("every idle connection left open was closed by the server", idle["left_open"] == 0,
         f"{idle['closed_by_server']} closed by the server, "
         f"{idle['left_open']} still open after the timeout + 3 s"),
        ("every malformed request answered with a 4xx", bad["answered_4xx"] == bad["sent"],
         f"{bad['answered_4xx']} of {bad['sent']}; other outcomes: {bad['other'] or 'none'}"),
        ("page requests all answered", poll["failed"] == 0, f"{poll['ok']} ok, {poll['failed']} failed"),
        ("thread count flat (peak - start <= 2)", sampler.peak("threads", t0, t3) - start["threads"] <= 2,
         f"{start['threads']} at the start, {sampler.peak('threads', t0, t3)} at the peak, "
         f"{end['threads']} at the end"),
        ("no connection left open after the load", after_load["connections"] == 0,
         f"{after_load['connections']} open, drained in {drain_s:.1f} s"),
        ("RSS growth from the start of the load to the end < 20 MB", end["rss"] - before_load["rss"] < 20,
         f"{before_load['rss']:.1f} -> {end['rss']:.1f} MB"),
    ]
    for name, ok, detail in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {name}: {detail}", flush=True)

    body = f"""
`{args.size}` synthetic camera at {args.fps:g} FPS, detector with {args.work_ms:g} ms of inference, the real
pipeline and `WebSink` on 127.0.0.1 (idle timeout {args.idle_timeout:g} s, shortened so idle connections
churn; client timeout 5 s) for {total / 60:g} minutes. The clients run in a separate process. Pipeline:
{summary.frames if summary else '?'} frames, {summary.fps if summary else float('nan'):.1f} FPS overall.

{markdown_table(phases)}
- Pipeline FPS without clients **{quiet_fps:.2f}**, with {args.viewers} viewers and bad clients
  **{load_fps:.2f}** ({100 * (load_fps / quiet_fps - 1):+.1f} %); 5-s windows under load: min
  {min(load_windows, default=0):.1f}, median {statistics.median(load_windows) if load_windows else 0:.1f}.
- Server process RSS: {start['rss']:.1f} MB at the start, {before_load['rss']:.1f} MB when the load began,
  {after_load['rss']:.1f} MB when it ended, {end['rss']:.1f} MB at the end. Threads: {start['threads']} at the
  start, {sampler.peak('threads', t0, t3)} at the peak, {end['threads']} at the end. RSS every 10 % of the
  load (MB): {', '.join(f'{r:.1f}' for r in trend)}.
- Viewers: {v['sessions']} sessions ({v['resets']} ended with a reset), {v['frames']} frames received
  ({v['frames'] / max(v['seconds'], 1e-9):.1f} per viewer-second; min per session {v['min_frames']}),
  {v['bytes'] / 1e6:.0f} MB.
- Idle connections: {idle['opened']} opened ({idle['slowloris']} slowloris), {idle['closed_by_client']} closed
  by the client, {idle['closed_by_server']} closed by the server after {idle['median_close_s']:.2f} s
  (median), {idle['left_open']} left open.
- Malformed requests: {bad['sent']} sent, {bad['answered_4xx']} answered 4xx, other outcomes:
  {bad['other'] or 'none'}.
- Page requests: {poll['ok']} answered, {poll['failed']} failed.
- Server counters: {', '.join(f'{k} {n}' for k, n in counts.items())}; open connections at the end of the load
  {after_load['connections']} (drained in {drain_s:.1f} s), peak {sampler.peak('connections', t0, t3)}.

{chr(10).join(f"- {'PASS' if ok else 'FAIL'}: {name} ({detail})" for name, ok, detail in checks)}
"""
    write_section("web_soak", "Web live view soak (cnnlab stream --web)", body)
    if not all(ok for _, ok, _ in checks):
        sys.exit(1)


# -- the clients' process -------------------------------------------------------------------------------

def _reset(s: socket.socket) -> None:
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


def viewer(port: int, deadline: float, seed: int, stats: dict, lock: threading.Lock) -> None:
    rng = random.Random(seed)
    n = 0
    while time.time() < deadline - 1:
        session_end = min(deadline, time.time() + rng.uniform(5, 15))
        frames, nbytes, tail = 0, 0, b""
        t = time.time()
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(b"GET /stream.mjpg HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            while time.time() < session_end:
                chunk = s.recv(262144)
                if not chunk:
                    break
                nbytes += len(chunk)
                buf = tail + chunk
                frames += buf.count(BOUNDARY)
                tail = buf[-(len(BOUNDARY) - 1):]
            if n % 2:
                _reset(s)
            else:
                s.close()
        except OSError:
            pass
        with lock:
            stats["sessions"] += 1
            stats["resets"] += n % 2
            stats["frames"] += frames
            stats["bytes"] += nbytes
            stats["seconds"] += time.time() - t
            stats["min_frames"] = min(stats["min_frames"], frames)
            stats["sessions_without_frames"] += frames == 0
        n += 1


def poller(port: int, deadline: float, stats: dict) -> None:
    i = 0
    while time.time() < deadline:
        path = "/snapshot.jpg" if i % 4 == 0 else "/stats"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
                r.read()
                stats["ok"] += r.status == 200
                stats["failed"] += r.status != 200
        except OSError:
            stats["failed"] += 1
        i += 1
        time.sleep(0.5)


def idler(port: int, deadline: float, idle_timeout: float, stats: dict) -> None:
    rng = random.Random(1)
    close_times: list[float] = []
    while time.time() < deadline - idle_timeout - 3:
        batch = []
        for k in range(20):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            if k % 5 == 0:
                s.sendall(b"GET /stats HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow")    # a slowloris
                stats["slowloris"] += 1
            batch.append((s, time.time(), k % 2 == 0))
        stats["opened"] += len(batch)
        time.sleep(rng.uniform(0, 1))
        waiting = {}
        for s, t, mine in batch:
            if mine:
                s.close()
                stats["closed_by_client"] += 1
            else:
                waiting[s] = t
        limit = time.time() + idle_timeout + 3
        while waiting and time.time() < limit:
            ready, _, _ = select.select(list(waiting), [], [], 0.2)
            for s in ready:
                try:
                    gone = s.recv(4096) == b""
                except OSError:
                    gone = True
                if gone:
                    close_times.append(time.time() - waiting.pop(s))
                    stats["closed_by_server"] += 1
                    s.close()
        stats["left_open"] += len(waiting)
        for s in waiting:
            s.close()
    stats["median_close_s"] = statistics.median(close_times) if close_times else float("nan")


MALFORMED = [
    b"GET /\r\n",                                                          # no HTTP version
    b"GET /stats\r\n\r\n",
    b"GARBAGE\r\n\r\n",
    b"GET / HTTP/1.1\r\nBad Header Line\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(32)) + b"\r\n",   # a TLS hello
]


def malformed(port: int, deadline: float, stats: dict) -> None:
    i = 0
    while time.time() < deadline:
        raw = MALFORMED[i % len(MALFORMED)]
        i += 1
        stats["sent"] += 1
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(raw)
            s.settimeout(5)
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
            s.close()
            status = data.split(b"\r\n", 1)[0].split(b" ")
            if len(status) > 1 and status[1][:1] == b"4":
                stats["answered_4xx"] += 1
            else:
                key = f"answer {data[:20]!r}"
                stats["other"][key] = stats["other"].get(key, 0) + 1
        except OSError as e:
            key = type(e).__name__
            stats["other"][key] = stats["other"].get(key, 0) + 1
        time.sleep(0.05)


def run_load_worker(port: int, seconds: float, n_viewers: int, idle_timeout: float) -> None:
    deadline = time.time() + seconds
    lock = threading.Lock()
    v = {"sessions": 0, "resets": 0, "frames": 0, "bytes": 0, "seconds": 0.0, "min_frames": 10**9,
         "sessions_without_frames": 0}
    idle = {"opened": 0, "slowloris": 0, "closed_by_client": 0, "closed_by_server": 0, "left_open": 0,
            "median_close_s": float("nan")}
    bad = {"sent": 0, "answered_4xx": 0, "other": {}}
    poll = {"ok": 0, "failed": 0}
    workers = [threading.Thread(target=viewer, args=(port, deadline, i, v, lock)) for i in range(n_viewers)]
    workers += [threading.Thread(target=poller, args=(port, deadline, poll)),
                threading.Thread(target=idler, args=(port, deadline, idle_timeout, idle)),
                threading.Thread(target=malformed, args=(port, deadline, bad))]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    if v["min_frames"] == 10**9:
        v["min_frames"] = 0
    print(json.dumps({"viewers": v, "idle": idle, "malformed": bad, "poller": poll}))


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--load-worker":
        port, seconds, n_viewers, idle_timeout = sys.argv[2:6]
        run_load_worker(int(port), float(seconds), int(n_viewers), float(idle_timeout))
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0, help="Total time (default 10).")
    ap.add_argument("--fps", type=float, default=30.0, help="The synthetic camera's rate.")
    ap.add_argument("--size", default="640x480", help="Frame size WxH.")
    ap.add_argument("--work-ms", type=float, default=10.0, help="The synthetic detector's inference time.")
    ap.add_argument("--viewers", type=int, default=10, help="MJPEG viewers during the load.")
    ap.add_argument("--idle-timeout", type=float, default=2.0, help="The server's idle timeout (s).")
    run_soak(ap.parse_args())


if __name__ == "__main__":
    main()
