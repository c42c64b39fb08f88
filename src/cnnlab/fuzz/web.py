"""Fuzz targets for the web live view's parsers of untrusted input: the ``--web`` address and the
first request line a client sends (see `cnnlab.detect.web`)."""

from __future__ import annotations

from collections.abc import Callable


def fuzz_targets() -> dict[str, Callable[[bytes], None]]:
    """``{name: fn(bytes)}``; each lets only `cnnlab.errors.UserError` (and subclasses) through."""
    from cnnlab.detect.web import parse_web_address, request_line_ok

    def web_address(data: bytes) -> None:
        parse_web_address(data.decode("utf-8", "replace"))

    def web_request_line(data: bytes) -> None:
        request_line_ok(data.split(b"\n", 1)[0])

    return {"web_address": web_address, "web_request_line": web_request_line}
