"""Web live view: an MJPEG stream of the annotated frames plus live FPS and stage timings.

Served by aiohttp on its own thread with its own asyncio loop, so the pipeline never waits for it:
the pipeline hands each frame over without waiting (`LiveViewServer.publish`), one encoder thread
JPEG-encodes the newest frame once, and every viewer's stream (a task, not a thread) sends the
newest encoded frame when its connection is ready, so a slow viewer skips frames instead of holding
anyone up, and more viewers cost the detector nothing.

Routes: ``/`` (page, from the packaged template ``templates/live.html.j2``), ``/stream.mjpg``,
``/snapshot.jpg``, ``/stats`` (JSON), ``/ack?seq=N``, ``/healthz``. With a token, every route needs
``?token=T`` or ``Authorization: Bearer T``.

Latency (capture -> display): every published frame keeps its capture time (wall clock) under its
sequence number, and each MJPEG part carries ``X-Frame: N``. The server records capture -> sent (the
part was written to a viewer's connection) and the page, which reads the stream with ``fetch``, shows
each frame in the ``<img>`` and, two animation frames after it loaded (it has been painted), requests
``/ack?seq=N`` (at most 10 a second); the server records capture -> ack received. That figure includes
the ack's trip back to the server (sub-millisecond on one machine, half a round trip across a network)
and assumes nothing about the browser's clock. ``/stats`` reports both as p50/p95 over recent frames.

Hardening (the server faces whatever connects to it): a connection that sends no complete request
within ``idle_timeout`` seconds (idle, or trickling its headers) is closed, as is a keep-alive
connection idle that long between requests; a viewer that accepts no data for ``client_timeout``
seconds is dropped; at most ``max_connections`` connections are open at once (one task each;
beyond that a connection gets a 503 and is closed) and ``max_viewers`` of them streams; a malformed
request gets a 400. Client errors (resets, bad requests, timeouts) are logged as one debug line on
the ``cnnlab.web`` logger, never as a traceback. The thread count stays fixed: the server's loop,
the encoder and one thread for ``/snapshot.jpg`` encodes.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import hmac
import json
import logging
import re
import socket
import threading
import time
from collections import OrderedDict
from typing import Any
from urllib.parse import quote

import numpy as np

from cnnlab.detect.pipeline.timing import LatencyWindow
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


def web_token(host: str, token: str | None) -> str | None:
    """The access token the live view uses: ``auto`` (or no token on an address other networks reach,
    as Jupyter does) a random one; ``none`` explicitly none (with a warning off loopback); else as given."""
    import secrets
    import warnings

    loopback = host in (DEFAULT_HOST, "localhost", "::1") or host.startswith("127.")
    if token == "auto" or (token is None and not loopback):
        return secrets.token_urlsafe(12)
    if token is not None and token.lower() == "none":
        if not loopback:
            warnings.warn(f"the live view on {host} has no token (--token none): anyone on the network can "
                          "watch", stacklevel=2)
        return None
    return token


class FrameBroadcaster:
    """Holds the newest frame; encodes it to JPEG once (on its own thread) and shares the bytes.

    ``listeners`` are called (from the encoder thread, without arguments) after each new JPEG and on
    `close`; the server uses one to wake its viewers' tasks.
    """

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
        self.captured: OrderedDict[int, float] = OrderedDict()   # seq -> capture time (time.time())
        self.listeners: list[Any] = []
        self._thread = threading.Thread(target=self._encode_loop, name="web-encoder", daemon=True)
        self._thread.start()

    def publish(self, image_bgr: np.ndarray, captured_at: float | None = None) -> None:
        """Hand over a frame (never blocks on encoding or viewers; the array must not be modified);
        ``captured_at``: when it was captured (``time.time()``; default now), for the latency figures."""
        with self._cond:
            self._raw = image_bgr
            self._raw_seq += 1
            self.published += 1
            self.captured[self._raw_seq] = time.time() if captured_at is None else float(captured_at)
            while len(self.captured) > 512:
                self.captured.popitem(last=False)
            self._cond.notify_all()

    def capture_time(self, seq: int) -> float | None:
        """When frame ``seq`` was captured (``time.time()``), if it is among the last 512."""
        with self._cond:
            return self.captured.get(seq)

    def _encode(self, image: np.ndarray) -> bytes:
        import cv2

        ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self.quality])
        if not ok:  # pragma: no cover - imencode fails only on invalid arrays
            raise RuntimeError("JPEG encoding failed")
        return buf.tobytes()

    def _notify(self) -> None:
        for fn in list(self.listeners):
            fn()

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
            self._notify()
            done = seq

    def latest(self) -> tuple[int, bytes | None]:
        """The newest encoded frame: ``(seq, jpeg)``; ``(0, None)`` before the first."""
        with self._cond:
            return self._jpeg_seq, self._jpeg

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
            if self._closed:
                return
            self._closed = True
            self._cond.notify_all()
        self._thread.join(2.0)
        self._notify()


def _describe(exc: BaseException | None) -> str:
    if exc is None:
        return ""
    text = str(exc).strip().splitlines()
    return f": {type(exc).__name__}" + (f" ({text[0][:200]})" if text else "")


class _OneLineLog:
    """aiohttp's server logger, minus the tracebacks.

    aiohttp logs a malformed request (answered 400) or a request whose client went away with
    ``logger.exception``; those are the client's doing and become one ``cnnlab.web`` debug line.
    Anything else (a fault of this server) is one warning line.
    """

    @staticmethod
    def _line(default: int, msg: Any, *args: Any, exc_info: Any = None, **_: Any) -> None:
        from aiohttp.http_exceptions import HttpProcessingError

        exc = exc_info if isinstance(exc_info, BaseException) else None
        level = default
        if exc is not None and isinstance(exc, (HttpProcessingError, ConnectionError, asyncio.TimeoutError)):
            level = logging.DEBUG
        if log.isEnabledFor(level):
            try:
                text = str(msg) % args if args else str(msg)
            except (TypeError, ValueError):
                text = f"{msg} {args}"
            log.log(level, "%s%s", text, _describe(exc))

    def debug(self, msg: Any, *args: Any, **kw: Any) -> None:
        self._line(logging.DEBUG, msg, *args, **kw)

    def info(self, msg: Any, *args: Any, **kw: Any) -> None:
        self._line(logging.DEBUG, msg, *args, **kw)

    def warning(self, msg: Any, *args: Any, **kw: Any) -> None:
        self._line(logging.WARNING, msg, *args, **kw)

    def error(self, msg: Any, *args: Any, **kw: Any) -> None:
        self._line(logging.WARNING, msg, *args, **kw)

    exception = error
    critical = error

    def isEnabledFor(self, level: int) -> bool:  # noqa: N802 - logging.Logger's name
        return log.isEnabledFor(level)


def _loop_exception_handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """The server loop's last resort: one line, no traceback (asyncio's default prints one)."""
    exc = context.get("exception")
    level = logging.DEBUG if isinstance(exc, (OSError, asyncio.CancelledError)) else logging.WARNING
    log.log(level, "live view: %s%s", context.get("message", "error"), _describe(exc))


def _raw_response(status: str, body: bytes) -> bytes:
    """A whole HTTP response written straight to a transport (before aiohttp has a request)."""
    return (f"HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n").encode() + body


_REFUSED = _raw_response("503 Service Unavailable", b"too many connections\n")
_BAD_LINE = _raw_response("400 Bad Request", b"bad request line: expected METHOD PATH HTTP/1.1\n")
_REQUEST_LINE = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+ [^ \x00-\x1f\x7f]+ HTTP/[0-9]\.[0-9]\r?")
_MAX_LINE = 8190


def request_line_ok(line: bytes) -> bool:
    """Whether ``line`` (without its LF) has the form ``METHOD TARGET HTTP/x.y``.

    Only the shape is checked (aiohttp's parser checks the rest): it is what tells a request line
    without a version, which aiohttp would take for HTTP/0.9 and leave waiting for headers.
    """
    return _REQUEST_LINE.fullmatch(line) is not None


_LINGER = 1.0


def _answer_then_close(transport: Any, response: bytes, close: Any) -> None:
    """Write a whole response and half-close; ``close`` runs after `_LINGER` s unless the client closes
    first. Meanwhile its bytes are read and dropped: closing with them unread would send a reset,
    which can destroy the answer before the client reads it."""
    transport.write(response)
    if transport.can_write_eof():
        transport.write_eof()
    asyncio.get_running_loop().call_later(_LINGER, close)


class _Refuse(asyncio.Protocol):
    """A connection over ``max_connections``: a 503, then closed (no task, no parser)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        _answer_then_close(transport, _REFUSED, transport.close)

    def data_received(self, data: bytes) -> None:
        pass                                        # dropped; the client's EOF closes the transport


def _http_server(handler: Any, live: LiveViewServer, **kwargs: Any) -> Any:
    """aiohttp's low-level server with a connection cap, a first-request deadline and a lost hook."""
    from aiohttp import web
    from aiohttp.web_protocol import RequestHandler

    class _Handler(RequestHandler):
        """aiohttp's connection handler, answering 400 at once to a first request line without an HTTP
        version (aiohttp's parser would take ``GET /`` for HTTP/0.9 and wait for headers)."""

        __slots__ = ("_head", "_rejected")

        def __init__(self, *args: Any, **kw: Any) -> None:
            super().__init__(*args, **kw)
            self._head: bytes | None = b""          # the first line so far; None once it is checked
            self._rejected = False

        def data_received(self, data: bytes) -> None:
            if self._rejected:
                return                              # after our 400: dropped until the client closes
            if self._head is not None:
                head = (self._head + data).lstrip(b"\r\n")
                line, newline, _ = head.partition(b"\n")
                if not newline and len(head) <= _MAX_LINE:
                    self._head = head               # wait for the rest of the line
                    return
                self._head = None
                if newline and not request_line_ok(line):
                    live.counts["bad_requests"] += 1
                    log.debug("live view: 400 for the request line %r", line.rstrip(b"\r")[:100])
                    self._rejected = True
                    if self.transport is not None:
                        _answer_then_close(self.transport, _BAD_LINE, self.force_close)
                    return
                data = head                         # (a line too long: aiohttp's parser answers it)
            super().data_received(data)

    class _Server(web.Server):
        def __init__(self) -> None:
            super().__init__(handler, **kwargs)
            self._pending: dict[Any, float] = {}     # protocol made, connection_made not yet called
            self._served: set[Any] = set()           # connections that sent a complete request

        def open_connections(self) -> int:
            if self._pending:                          # a protocol whose transport failed is never connected
                stale = self._loop.time() - 5.0
                for proto in [p for p, t in self._pending.items() if t < stale]:
                    del self._pending[proto]
            return len(self.connections) + len(self._pending)

        def __call__(self) -> Any:   # the protocol factory: one per accepted connection
            if self.open_connections() >= live.max_connections:
                live.counts["refused"] += 1
                return _Refuse()
            proto = _Handler(self, loop=self._loop, **kwargs)
            self._pending[proto] = self._loop.time()
            live.counts["accepted"] += 1
            return proto

        def connection_made(self, proto: Any, transport: Any) -> None:
            super().connection_made(proto, transport)
            self._pending.pop(proto, None)
            # aiohttp's keep-alive timeout closes a connection idle between requests; before the
            # first complete request (idle, or trickling its headers) this deadline does.
            self._loop.call_later(live.idle_timeout, self._first_request_deadline, proto)

        def _first_request_deadline(self, proto: Any) -> None:
            if proto not in self._served and proto.transport is not None:
                live.counts["timed_out"] += 1
                log.debug("live view: closed a connection that sent no request in %g s", live.idle_timeout)
                proto.force_close()

        def request_started(self, proto: Any) -> None:
            self._served.add(proto)

        def connection_lost(self, proto: Any, exc: BaseException | None = None) -> None:
            super().connection_lost(proto, exc)
            self._served.discard(proto)
            live._connection_lost(proto)

    return _Server()


class _Viewer:
    """One MJPEG stream's wake-up call (a new frame, the client gone, or the server stopping)."""

    __slots__ = ("gone", "wake")

    def __init__(self) -> None:
        self.wake = asyncio.Event()
        self.gone = False


class LiveViewServer:
    """Serve the live view on ``host:port`` (port 0 picks a free one) until `stop`.

    ``publish(image)`` shares a frame; ``update_stats(dict)`` replaces the JSON served at ``/stats``.
    The server runs aiohttp on its own thread and asyncio loop; see the module docstring for the
    limits (``client_timeout``, ``idle_timeout``, ``max_connections``, ``max_viewers``, ``backlog``).
    """

    def __init__(self, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, token: str | None = None,
                 quality: int = 80, max_viewers: int = 16, client_timeout: float = 10.0,
                 idle_timeout: float = 10.0, max_connections: int = 256, backlog: int = 512) -> None:
        self.host, self.port = host, int(port)
        self.token = token or None
        self.max_viewers = int(max_viewers)
        self.client_timeout = float(client_timeout)
        self.idle_timeout = float(idle_timeout)
        self.max_connections = max(1, int(max_connections))
        self.backlog = max(1, int(backlog))
        if self.client_timeout <= 0 or self.idle_timeout <= 0:
            raise UserError("the live view's timeouts must be positive")
        self.broadcaster = FrameBroadcaster(quality)
        self.broadcaster.listeners.append(self._frame_ready)
        self.counts = {"accepted": 0, "refused": 0, "timed_out": 0, "bad_requests": 0, "dropped_viewers": 0}
        self._stats: dict[str, Any] = {"fps": 0.0, "mean_fps": 0.0, "frames": 0, "running": True}
        self._lock = threading.Lock()
        self._sent_latency = LatencyWindow(300)      # capture -> part written to a viewer (ms)
        self._display_latency = LatencyWindow(300)   # capture -> browser's ack after painting (ms)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._server: Any = None
        self._viewers: dict[Any, _Viewer] = {}
        self._last_part: tuple[int, bytes] = (0, b"")
        self._snapshot_pool: concurrent.futures.ThreadPoolExecutor | None = None

    # -- life cycle (caller's thread) ---------------------------------------------------------------

    def _bind(self) -> socket.socket:
        sock = None
        try:
            family = socket.AF_INET6 if ":" in self.host else socket.AF_INET   # "localhost": 127.0.0.1
            infos = socket.getaddrinfo(self.host or None, self.port, family, socket.SOCK_STREAM,
                                       flags=socket.AI_PASSIVE)
            family, kind, proto, _, addr = infos[0]
            sock = socket.socket(family, kind, proto)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(addr)
            sock.listen(self.backlog)
            sock.setblocking(False)
        except OSError as e:
            if sock is not None:
                sock.close()
            raise UserError(f"cannot serve the live view on {self.host}:{self.port}: "
                            f"{e.strerror or e}") from None
        return sock

    def start(self) -> LiveViewServer:
        if self._thread is not None:
            return self
        sock = self._bind()
        self.port = sock.getsockname()[1]
        ready = threading.Event()
        failure: list[BaseException] = []
        self._thread = threading.Thread(target=self._run, args=(sock, ready, failure), name="web-server",
                                        daemon=True)
        self._thread.start()
        if not ready.wait(30) or failure:
            self._thread.join(2.0)
            self._thread = None
            sock.close()
            why = _describe(failure[0]) if failure else ": the server did not start"
            raise UserError(f"cannot serve the live view on {self.host}:{self.port}{why}")
        return self

    def stop(self) -> None:
        """Stop serving; open connections are closed at once (viewers see the stream end)."""
        with self._lock:
            self._stats["running"] = False
        self.broadcaster.close()            # wakes every viewer (listener), which then ends
        loop, thread = self._loop, self._thread
        if loop is not None and self._stopping is not None:
            with contextlib.suppress(RuntimeError):      # the loop has already ended
                loop.call_soon_threadsafe(self._stopping.set)
        if thread is not None:
            thread.join(10.0)
        self._thread = None

    def __enter__(self) -> LiveViewServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the server thread ---------------------------------------------------------------------------

    def _run(self, sock: socket.socket, ready: threading.Event, failure: list[BaseException]) -> None:
        loop = asyncio.new_event_loop()
        loop.set_exception_handler(_loop_exception_handler)
        try:
            loop.run_until_complete(self._serve(loop, sock, ready))
        except BaseException as e:  # noqa: BLE001 - reported to start(), or logged as one line
            if not ready.is_set():
                failure.append(e)
            else:
                log.warning("live view stopped%s", _describe(e))
        finally:
            ready.set()
            try:
                pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
                for t in pending:
                    t.cancel()
                if pending:
                    loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                self._loop = None
                loop.close()
                if self._snapshot_pool is not None:
                    self._snapshot_pool.shutdown(wait=False)

    async def _serve(self, loop: asyncio.AbstractEventLoop, sock: socket.socket,
                     ready: threading.Event) -> None:
        from aiohttp import web

        self._stopping = asyncio.Event()
        self._loop = loop
        server = _http_server(self._handle, self, keepalive_timeout=self.idle_timeout, logger=_OneLineLog(),
                              access_log=None)
        self._server = server
        runner = web.ServerRunner(server, handle_signals=False, shutdown_timeout=2.0)
        await runner.setup()
        site = web.SockSite(runner, sock, backlog=self.backlog)
        try:
            await site.start()
            ready.set()
            await self._stopping.wait()
        finally:
            await site.stop()                              # no new connections
            self._wake_viewers(gone=True)
            for proto in server.connections:               # a stalled client cannot hold the stop up
                transport = proto.transport
                if transport is not None:
                    transport.abort()
            try:
                await asyncio.wait_for(runner.cleanup(), 5.0)
            except asyncio.TimeoutError:
                log.debug("live view: connections still open after 5 s at stop")
            sock.close()

    def _frame_ready(self) -> None:
        """Called by the encoder thread after each new JPEG (and on close)."""
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):      # the loop is closing
                loop.call_soon_threadsafe(self._wake_viewers, self.broadcaster.closed)

    def _wake_viewers(self, gone: bool = False) -> None:
        for v in self._viewers.values():
            v.gone |= gone
            v.wake.set()

    def _connection_lost(self, proto: Any) -> None:
        v = self._viewers.get(proto)
        if v is not None:
            v.gone = True
            v.wake.set()

    # -- requests (the server loop) -----------------------------------------------------------------

    def _authorised(self, request: Any) -> bool:
        if not self.token:
            return True
        given = request.query.get("token", "")
        auth = request.headers.get("Authorization", "")
        if auth.lower().startswith("bearer "):
            given = given or auth[7:].strip()
        return hmac.compare_digest(given.encode(), self.token.encode())

    @staticmethod
    def _response(status: int, body: bytes, ctype: str, **headers: str) -> Any:
        from aiohttp import web

        return web.Response(status=status, body=body,
                            headers={"Content-Type": ctype, "Cache-Control": "no-store", **headers})

    async def _handle(self, request: Any) -> Any:
        self._server.request_started(request.protocol)
        if request.version < (1, 0):               # HTTP/0.9 (a later request on a kept-alive connection)
            self.counts["bad_requests"] += 1
            return self._response(400, b"HTTP/1.0 or later required\n", "text/plain", Connection="close")
        if request.method not in ("GET", "HEAD"):
            return self._response(405, b"method not allowed\n", "text/plain", Allow="GET, HEAD")
        if not self._authorised(request):
            return self._response(401, b"access token required (?token=...)\n", "text/plain")
        route = request.path.rstrip("/") or "/"
        if route == "/":
            from cnnlab import templating

            q = f"?token={quote(self.token)}" if self.token else ""
            page = templating.render("cnnlab.detect", "live.html.j2", q=q)
            return self._response(200, page.encode(), "text/html; charset=utf-8")
        if route == "/ack":
            return self._ack(request.query.get("seq", ""))
        if route == "/stats":
            return self._response(200, json.dumps(self.stats_snapshot()).encode(), "application/json")
        if route == "/snapshot.jpg":
            if self._snapshot_pool is None:        # encodes off the loop (one thread, made on first use)
                self._snapshot_pool = concurrent.futures.ThreadPoolExecutor(1, "web-snapshot")
            loop = asyncio.get_running_loop()
            jpeg = await loop.run_in_executor(self._snapshot_pool, self.broadcaster.snapshot)
            if jpeg is None:
                return self._response(503, b"no frame yet\n", "text/plain")
            return self._response(200, jpeg, "image/jpeg")
        if route == "/healthz":
            return self._response(200, b"ok\n", "text/plain")
        if route == "/stream.mjpg":
            return await self._stream(request)
        return self._response(404, b"not found\n", "text/plain")

    async def _stream(self, request: Any) -> Any:
        from aiohttp import web

        bc = self.broadcaster
        if not bc.add_viewer(+1, self.max_viewers):
            return self._response(503, b"too many viewers\n", "text/plain")
        viewer = _Viewer()
        self._viewers[request.protocol] = viewer
        resp = web.StreamResponse(status=200, headers={
            "Content-Type": f"multipart/x-mixed-replace; boundary={BOUNDARY}",
            "Cache-Control": "no-store, no-cache, must-revalidate", "Pragma": "no-cache"})
        resp.force_close()                                  # Connection: close
        try:
            await asyncio.wait_for(resp.prepare(request), self.client_timeout)
            if request.method == "HEAD":
                return resp
            seq = 0
            while not (bc.closed or viewer.gone):
                viewer.wake.clear()
                newest, jpeg = bc.latest()
                if jpeg is None or newest <= seq:
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(viewer.wake.wait(), 1.0)
                    continue
                seq = newest
                part = self._part(newest, jpeg)
                # resp.write returns once the bytes are buffered below the transport's high-water mark;
                # a viewer that takes none for client_timeout seconds is dropped, alone.
                await asyncio.wait_for(resp.write(part), self.client_timeout)
                self._record(self._sent_latency, newest)
        except (OSError, asyncio.TimeoutError) as e:      # reset, broken pipe, stalled: the viewer is gone
            self.counts["dropped_viewers"] += 1
            log.debug("live view: viewer dropped%s", _describe(e))
            transport = request.transport
            if transport is not None:
                transport.abort()
        finally:
            self._viewers.pop(request.protocol, None)
            bc.add_viewer(-1)
        return resp

    def _record(self, window: LatencyWindow, seq: int) -> bool:
        captured = self.broadcaster.capture_time(seq)
        if captured is None:
            return False
        with self._lock:
            window.add(max(0.0, (time.time() - captured) * 1e3))
        return True

    def _ack(self, text: str) -> Any:
        """``/ack?seq=N``: a browser painted frame N; record capture -> now (204, or 400 for a bad N)."""
        if not text.isdigit() or len(text) > 18:
            return self._response(400, b"seq must be a frame number\n", "text/plain")
        self._record(self._display_latency, int(text))
        return self._response(204, b"", "text/plain")

    def latency_summary(self) -> dict[str, Any]:
        """``{"sent": {p50, p95, n} | None, "display": ... | None}`` in milliseconds (see the module doc)."""
        with self._lock:
            return {"sent": self._sent_latency.summary(), "display": self._display_latency.summary()}

    def _part(self, seq: int, jpeg: bytes) -> bytes:
        """The multipart part of frame ``seq``, built once and shared by every viewer."""
        if self._last_part[0] != seq:
            head = (f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nX-Frame: {seq}\r\n"
                    f"Content-Length: {len(jpeg)}\r\n\r\n")
            self._last_part = (seq, head.encode() + jpeg + b"\r\n")
        return self._last_part[1]

    # -- the pipeline's side (any thread) ------------------------------------------------------------

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

    @property
    def connections(self) -> int:
        """Connections open now (each is one task on the server loop)."""
        server = self._server
        return server.open_connections() if server is not None else 0

    def publish(self, image_bgr: np.ndarray, captured_at: float | None = None) -> None:
        self.broadcaster.publish(image_bgr, captured_at)

    def update_stats(self, stats: dict[str, Any]) -> None:
        with self._lock:
            self._stats = dict(stats)

    def stats_snapshot(self) -> dict[str, Any]:
        with self._lock:
            stats = {**self._stats, "viewers": self.broadcaster.viewers, "connections": self.connections}
        return stats | {"web_latency": self.latency_summary()}
