"""Web live view: an MJPEG stream of the annotated frames plus live FPS and stage timings.

Stdlib only (``http.server.ThreadingHTTPServer``). The pipeline hands each frame over without
waiting (`LiveViewServer.publish`); one encoder thread JPEG-encodes it once and every viewer's own
thread sends the newest encoded frame when its socket is ready, so a slow viewer skips frames
instead of holding anyone up, and more viewers cost the detector nothing.

Routes: ``/`` (page), ``/stream.mjpg``, ``/snapshot.jpg``, ``/stats`` (JSON), ``/healthz``.
With a token, every route needs ``?token=T`` or ``Authorization: Bearer T``.
"""

from __future__ import annotations

import hmac
import json
import logging
import socket
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import numpy as np

from cnnlab.errors import UserError

log = logging.getLogger("cnnlab.web")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
BOUNDARY = "cnnlabframe"


def parse_web_address(text: str | None, default_port: int = DEFAULT_PORT) -> tuple[str, int]:
    """``HOST:PORT``, ``:PORT``, ``PORT`` or ``HOST`` -> ``(host, port)``; host defaults to 127.0.0.1."""
    if text is None or not str(text).strip():
        return DEFAULT_HOST, default_port
    t = str(text).strip()
    if t.startswith("[") and "]" in t:                     # [::1]:8000
        host, _, rest = t[1:].partition("]")
        port_s = rest.lstrip(":")
    elif t.count(":") == 1:
        host, port_s = t.split(":")
    elif t.isdigit():
        host, port_s = "", t
    else:
        host, port_s = t, ""
    host = host or DEFAULT_HOST
    try:
        port = int(port_s) if port_s else default_port
    except ValueError:
        raise UserError(f"invalid web address {text!r}: expected HOST:PORT, e.g. 127.0.0.1:8000") from None
    if not 0 <= port <= 65535:
        raise UserError(f"invalid port {port} in {text!r}")
    return host, port


class FrameBroadcaster:
    """Holds the newest frame; encodes it to JPEG once (on its own thread) and shares the bytes."""

    def __init__(self, quality: int = 80) -> None:
        self.quality = int(quality)
        self._cond = threading.Condition()
        self._raw: np.ndarray | None = None
        self._raw_seq = 0
        self._jpeg: bytes | None = None
        self._jpeg_seq = 0
        self._closed = False
        self.viewers = 0
        self.encoded = 0
        self.published = 0
        self._thread = threading.Thread(target=self._encode_loop, name="web-encoder", daemon=True)
        self._thread.start()

    def publish(self, image_bgr: np.ndarray) -> None:
        """Hand over a frame (never blocks on encoding or viewers; the array must not be modified)."""
        with self._cond:
            self._raw = image_bgr
            self._raw_seq += 1
            self.published += 1
            self._cond.notify_all()

    def _encode(self, image: np.ndarray) -> bytes:
        import cv2

        ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self.quality])
        if not ok:  # pragma: no cover - imencode fails only on invalid arrays
            raise RuntimeError("JPEG encoding failed")
        return buf.tobytes()

    def _encode_loop(self) -> None:
        done = 0
        while True:
            with self._cond:   # publish, add_viewer and close notify
                self._cond.wait_for(lambda d=done: self._closed or (self._raw_seq != d and self.viewers > 0))
                if self._closed:
                    return
                image, seq = self._raw, self._raw_seq
            jpeg = self._encode(image)                 # outside the lock: viewers keep reading
            with self._cond:
                self._jpeg, self._jpeg_seq = jpeg, seq
                self.encoded += 1
                self._cond.notify_all()
            done = seq

    def wait_next(self, after: int, timeout: float = 1.0) -> tuple[int, bytes | None]:
        """Block until a frame newer than ``after`` is encoded; ``(seq, jpeg)`` or ``(after, None)``."""
        with self._cond:
            fresh = self._cond.wait_for(lambda: self._closed or self._jpeg_seq > after, timeout)
            if not fresh or self._closed:
                return after, None
            return self._jpeg_seq, self._jpeg

    def snapshot(self) -> bytes | None:
        """JPEG of the newest frame (encoded now if the encoder has not caught up)."""
        with self._cond:
            if self._jpeg is not None and self._jpeg_seq == self._raw_seq:
                return self._jpeg
            image = self._raw
        return None if image is None else self._encode(image)

    def add_viewer(self, delta: int, limit: int | None = None) -> bool:
        """Count viewers in (+1) or out (-1); False (and not counted) when ``limit`` are watching."""
        with self._cond:
            if delta > 0 and limit is not None and self.viewers >= limit:
                return False
            self.viewers += delta
            self._cond.notify_all()
            return True

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(2.0)


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>cnnlab live view</title>
<style>
 body{margin:0;background:#111;color:#eee;font:14px/1.4 system-ui,sans-serif}
 header{padding:.5em 1em;background:#222;display:flex;gap:1.5em;align-items:baseline;flex-wrap:wrap}
 header h1{font-size:1.1em;margin:0}
 #fps{font-size:1.6em;font-weight:bold;color:#7f7}
 main{display:flex;flex-wrap:wrap;gap:1em;padding:1em;align-items:flex-start}
 #side{flex:1 1 18em;max-width:30em}
 #info td.n{overflow-wrap:anywhere}
 #info td:first-child{white-space:nowrap}
 #view{max-width:100%;background:#000;image-rendering:auto}
 table{border-collapse:collapse;min-width:16em}
 td,th{padding:.15em .6em;border-bottom:1px solid #333;text-align:left}
 td.n{text-align:right;font-variant-numeric:tabular-nums}
 #status{color:#fa5}
</style></head>
<body>
<header><h1>cnnlab live view</h1>
 <span>FPS <span id="fps">-</span></span>
 <span id="target"></span><span id="status"></span></header>
<main>
 <img id="view" alt="live detections" src="stream.mjpg__Q__">
 <div id="side"><table id="stages"><thead><tr><th>stage</th><th>ms (moving avg)</th></tr></thead><tbody></tbody></table>
 <table id="info"><tbody></tbody></table></div>
</main>
<script>
const Q = "__Q__";
function row(k, v){ return "<tr><td>" + k + "</td><td class='n'>" + v + "</td></tr>"; }
async function poll(){
  try {
    const r = await fetch("stats" + Q, {cache: "no-store"});
    if (!r.ok) throw new Error(r.status);
    const s = await r.json();
    document.getElementById("fps").textContent = s.fps.toFixed(1);
    document.getElementById("target").textContent =
      s.max_fps ? ("max " + s.max_fps + " fps, achieved " + s.mean_fps.toFixed(1)) : ("mean " + s.mean_fps.toFixed(1) + " fps");
    let rows = "";
    for (const [k, v] of Object.entries(s.stages_ms || {})) rows += row(k, v.toFixed(1));
    rows += row("<b>total</b>", (s.frame_ms || 0).toFixed(1));
    document.querySelector("#stages tbody").innerHTML = rows;
    document.querySelector("#info tbody").innerHTML =
      row("frames", s.frames) + row("source FPS", (s.capture_fps || 0).toFixed(1)) +
      row("dropped (stale)", s.dropped) + row("detections", s.detections) +
      row("viewers", s.viewers) + row("source", s.source || "");
    document.getElementById("status").textContent = s.running ? "" : "stopped";
  } catch (e) { document.getElementById("status").textContent = "no connection"; }
}
const img = document.getElementById("view");
img.onerror = () => setTimeout(() => { img.src = "stream.mjpg" + Q + (Q ? "&" : "?") + "t=" + Date.now(); }, 1000);
poll(); setInterval(poll, 500);
</script></body></html>
"""


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        log.debug("%s %s", self.address_string(), format % args)

    def _authorised(self, query: dict[str, list[str]]) -> bool:
        token = self.server.live.token
        if not token:
            return True
        given = query.get("token", [""])[0]
        auth = self.headers.get("Authorization", "")
        if auth.lower().startswith("bearer "):
            given = given or auth[7:].strip()
        return hmac.compare_digest(given.encode(), token.encode())

    def _send(self, status: int, body: bytes, ctype: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_HEAD(self) -> None:  # noqa: N802 - stdlib naming
        self.do_GET()

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        if not self._authorised(query):
            self._send(HTTPStatus.UNAUTHORIZED, b"access token required (?token=...)\n", "text/plain")
            return
        live = self.server.live
        route = url.path.rstrip("/") or "/"
        if route == "/":
            q = f"?token={quote(live.token)}" if live.token else ""
            self._send(HTTPStatus.OK, PAGE.replace("__Q__", q).encode(), "text/html; charset=utf-8")
        elif route == "/stats":
            self._send(HTTPStatus.OK, json.dumps(live.stats_snapshot()).encode(), "application/json")
        elif route == "/snapshot.jpg":
            jpeg = live.broadcaster.snapshot()
            if jpeg is None:
                self._send(HTTPStatus.SERVICE_UNAVAILABLE, b"no frame yet\n", "text/plain")
            else:
                self._send(HTTPStatus.OK, jpeg, "image/jpeg")
        elif route == "/healthz":
            self._send(HTTPStatus.OK, b"ok\n", "text/plain")
        elif route == "/stream.mjpg":
            self._stream()
        else:
            self._send(HTTPStatus.NOT_FOUND, b"not found\n", "text/plain")

    def _stream(self) -> None:
        live = self.server.live
        if not live.broadcaster.add_viewer(+1, live.max_viewers):
            self._send(HTTPStatus.SERVICE_UNAVAILABLE, b"too many viewers\n", "text/plain")
            return
        try:
            self.connection.settimeout(live.client_timeout)   # a stalled viewer is dropped, alone
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
            self.send_header("Cache-Control", "no-store, no-cache, must-revalidate")
            self.send_header("Pragma", "no-cache")
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            if self.command == "HEAD":
                return
            seq = 0
            bc = live.broadcaster
            while not bc.closed:
                seq, jpeg = bc.wait_next(seq, timeout=1.0)
                if jpeg is None:
                    continue
                self.wfile.write(
                    f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n".encode()
                    + jpeg + b"\r\n")
                self.wfile.flush()
        except OSError:   # BrokenPipe, ConnectionReset, socket timeout
            pass   # the viewer went away or stalled
        finally:
            live.broadcaster.add_viewer(-1)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    live: LiveViewServer


class _Server6(_Server):
    address_family = socket.AF_INET6


class LiveViewServer:
    """Serve the live view on ``host:port`` (port 0 picks a free one) until `stop`.

    ``publish(image)`` shares a frame; ``update_stats(dict)`` replaces the JSON served at ``/stats``.
    """

    def __init__(self, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, token: str | None = None,
                 quality: int = 80, max_viewers: int = 16, client_timeout: float = 10.0) -> None:
        self.host, self.port = host, int(port)
        self.token = token or None
        self.max_viewers = int(max_viewers)
        self.client_timeout = float(client_timeout)
        self.broadcaster = FrameBroadcaster(quality)
        self._stats: dict[str, Any] = {"fps": 0.0, "mean_fps": 0.0, "frames": 0, "running": True}
        self._lock = threading.Lock()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> LiveViewServer:
        try:
            server_cls = _Server6 if ":" in self.host else _Server
            httpd = server_cls((self.host, self.port), _Handler)
        except OSError as e:
            raise UserError(f"cannot serve the live view on {self.host}:{self.port}: {e.strerror or e}") from None
        httpd.live = self
        self._httpd = httpd
        self.port = httpd.server_address[1]
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="web-server", daemon=True)
        self._thread.start()
        return self

    @property
    def url(self) -> str:
        """The page's address (with the token, ready to paste into a browser)."""
        host = self.host
        if host in ("0.0.0.0", "", "::"):
            host = socket.gethostname()
        elif ":" in host:
            host = f"[{host}]"
        q = f"/?token={quote(self.token)}" if self.token else "/"
        return f"http://{host}:{self.port}{q}"

    def publish(self, image_bgr: np.ndarray) -> None:
        self.broadcaster.publish(image_bgr)

    def update_stats(self, stats: dict[str, Any]) -> None:
        with self._lock:
            self._stats = dict(stats)

    def stats_snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {**self._stats, "viewers": self.broadcaster.viewers}

    def stop(self) -> None:
        """Stop serving; open viewer connections end within a second."""
        with self._lock:
            self._stats["running"] = False
        self.broadcaster.close()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(2.0)

    def __enter__(self) -> LiveViewServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
