"""Notebook and terminal displays: the HTML table behind ``_repr_html_`` (a packaged Jinja2 template),
``rich`` tables behind ``__rich__``, and `Metrics`, the dict that `cnnlab.evaluate` returns, with both."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

import numpy as np


def fmt(value: Any) -> Any:
    """A cell: floats with 4 significant decimals, ints with thousands separators, rest as text."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    if isinstance(value, (float, np.floating)):
        v = float(value)
        return f"{v:.4f}" if 1e-3 <= abs(v) < 1e5 or v == 0 else f"{v:.4g}"
    return str(value)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float, np.number)) and not isinstance(v, bool)


def html_table(rows: Sequence[Sequence[Any]], columns: Sequence[str] = (), title: str = "",
               notes: Sequence[str] = (), image: str | None = None) -> str:
    """An escaped HTML table for ``_repr_html_`` (``image``: a ``data:`` URI shown above it)."""
    from cnnlab import templating

    return templating.render("cnnlab", "table.html.j2", title=title, columns=list(columns),
                             rows=[[{"text": fmt(c), "num": _is_num(c)} for c in r] for r in rows], notes=list(notes), image=image)


def rich_table(rows: Sequence[Sequence[Any]], columns: Sequence[str] = ("name", "value"), title: str = "",
               caption: str = "") -> Any:
    """The same table for a terminal (``rich``)."""
    from rich.table import Table

    table = Table(title=title or None, caption=caption or None, caption_justify="left")
    for i, c in enumerate(columns):
        table.add_column(c, justify="left" if i == 0 else "right")
    for r in rows:
        table.add_row(*[str(fmt(c)) for c in r])
    return table


def png_data_uri(image_bgr: np.ndarray, max_width: int = 640) -> str:
    """A BGR image as a ``data:image/jpeg`` URI, shrunk to ``max_width`` pixels wide."""
    import cv2

    h, w = image_bgr.shape[:2]
    if w > max_width:
        image_bgr = cv2.resize(image_bgr, (max_width, round(h * max_width / w)), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", image_bgr, [cv2.IMWRITE_JPEG_QUALITY, 85])
    return "data:image/jpeg;base64," + base64.b64encode(buf.tobytes()).decode("ascii")


def _scalars(d: dict[str, Any]) -> list[tuple[str, Any]]:
    """The one-line values of ``d`` (numbers, short texts)."""
    return [(k, v) for k, v in d.items()
            if (isinstance(v, (int, float, bool, np.number)) or v is None
                or (isinstance(v, str) and "\n" not in v and len(v) <= 200))]


def _nested(d: dict[str, Any]) -> list[str]:
    out = []
    for k, v in d.items():
        if isinstance(v, dict):
            out.append(f"{k}: {len(v)} entries")
        elif isinstance(v, (list, tuple)):
            shape = f"{len(v)}x{len(v[0])}" if v and isinstance(v[0], (list, tuple)) else str(len(v))
            out.append(f"{k}: [{shape}]")
        elif isinstance(v, str) and (k, v) not in _scalars({k: v}):
            out.append(f"{k}: {v.count(chr(10)) + 1} lines of text")
    return out


class Metrics(dict):
    """A plain ``dict`` of results (JSON-ready, indexable as before) that displays as a short table:
    ``_repr_html_`` in a notebook, ``__rich__`` in a terminal, a one-line ``repr`` with the nested
    values (per-class accuracy, confusion matrix) summarised instead of dumped."""

    title = "metrics"

    def __repr__(self) -> str:
        scal = ", ".join(f"{k}={fmt(v)}" for k, v in _scalars(self)[:8])
        more = len(_scalars(self)) - 8
        nested = "; ".join(_nested(self))
        return (f"{type(self).__name__}({scal}{f', +{more} more' if more > 0 else ''}"
                f"{'; ' + nested if nested else ''})")

    def _repr_html_(self) -> str:
        return html_table(_scalars(self), ("name", "value"), title=self.title, notes=_nested(self))

    def __rich__(self) -> Any:
        return rich_table(_scalars(self), title=self.title, caption="; ".join(_nested(self)))
