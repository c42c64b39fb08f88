"""Report building blocks (headings, text, tables, images, code) rendered to Markdown and to HTML.

A report is a flat list of blocks. Markdown output links its images from an ``assets/`` folder beside
it; HTML output is one self-contained page rendered from the Jinja2 templates packaged in
``cnnlab/experiments/templates`` (``report.html.j2`` + ``report.css``, autoescaped): images are
embedded as base64 ``data:`` URIs. Tables use the shared helpers of
:mod:`cnnlab.experiments.tables`, so a report table looks like every other cnnlab table.
"""

from __future__ import annotations

import base64
import functools
import math
import mimetypes
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnnlab.experiments.runner import is_number
from cnnlab.experiments.tables import fmt, to_markdown


@dataclass
class Heading:
    text: str
    level: int = 2


@dataclass
class Text:
    """A paragraph of plain text (never interpreted as markup); ``style`` "meta": small and grey in HTML."""

    text: str
    style: str = ""


@dataclass
class Table:
    rows: list[dict[str, Any]]
    columns: list[str]
    caption: str = ""


@dataclass
class Image:
    path: Path
    caption: str = ""


@dataclass
class Code:
    text: str
    lang: str = ""
    summary: str = ""    # HTML: folded under this summary line (<details>) when given


Block = Heading | Text | Table | Image | Code


@dataclass
class Report:
    """A title and its blocks."""

    title: str
    blocks: list[Block] = field(default_factory=list)


def key_values(data: dict[str, Any], caption: str = "") -> Table:
    """A two-column table (name, value) of a flat mapping; nested values are skipped."""
    rows = [{"name": k, "value": v} for k, v in data.items()
            if v is not None and not isinstance(v, (dict, list, tuple))]
    return Table(rows, ["name", "value"], caption)


def clean_rows(rows: list[dict[str, Any]], columns: list[str], markdown: bool = False
               ) -> list[dict[str, Any]]:
    """Cells as single-line values (Markdown tables cannot hold line breaks); ``markdown``: escape ``<>``."""
    def cell(v: Any) -> Any:
        if not isinstance(v, str):
            return v
        v = re.sub(r"\s*\n\s*", " ", v)
        return md_cell(v) if markdown else v

    return [{c: cell(r.get(c)) for c in columns} for r in rows]


def md_cell(text: str) -> str:
    """A table cell that Markdown renders as the text itself (no inline HTML)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>#])")


def md_text(text: str) -> str:
    """Plain text for a Markdown paragraph or heading: markup characters are backslash-escaped."""
    return _MD_SPECIAL.sub(r"\\\1", text)


# -- Markdown -----------------------------------------------------------------------------------------


def render_markdown(report: Report, out_dir: Path, assets: str = "assets") -> str:
    """Markdown text of ``report``; images are copied to ``out_dir/assets`` and linked relatively."""
    out_dir = Path(out_dir)
    parts = [f"# {md_text(report.title)}", ""]
    used: set[str] = set()
    for b in report.blocks:
        if isinstance(b, Heading):
            parts += [f"{'#' * max(2, min(6, b.level))} {md_text(b.text)}", ""]
        elif isinstance(b, Text):
            parts += [md_text(b.text), ""]
        elif isinstance(b, Table):
            if b.caption:
                parts += [f"*{md_text(b.caption)}*", ""]
            rows = clean_rows(b.rows, b.columns, markdown=True)
            parts += [to_markdown(rows, b.columns).rstrip("\n"), ""]
        elif isinstance(b, Image):
            name = _asset_name(Path(b.path), used)
            target = out_dir / assets / name
            target.parent.mkdir(parents=True, exist_ok=True)
            if Path(b.path).resolve() != target.resolve():
                shutil.copyfile(b.path, target)
            alt = md_text(b.caption) or name
            parts += [f"![{alt}]({assets}/{name})", ""]
            if b.caption:
                parts += [f"*{md_text(b.caption)}*", ""]
        elif isinstance(b, Code):
            if b.summary:
                parts += [f"{md_text(b.summary)}:", ""]
            fence = "~~~~" if "```" in b.text else "```"
            parts += [f"{fence}{b.lang}", b.text.rstrip("\n"), fence, ""]
    return "\n".join(parts).rstrip("\n") + "\n"


def _asset_name(path: Path, used: set[str]) -> str:
    """A unique, filesystem-safe file name for an image in the assets folder."""
    safe = functools.partial(re.sub, r"[^A-Za-z0-9._-]+", "-")
    return _unique(f"{safe(path.parent.name) or 'img'}-{safe(path.stem)}", used, path.suffix.lower())


def _unique(base: str, used: set[str], suffix: str = "") -> str:
    """``base + suffix``, else ``base-2 + suffix``, ``base-3``...: the first not in ``used`` (then added)."""
    name, n = base + suffix, 2
    while name in used:
        name, n = f"{base}-{n}{suffix}", n + 1
    used.add(name)
    return name


# -- HTML (Jinja2 templates in cnnlab/experiments/templates) -----------------------------------------


def data_uri(path: str | Path) -> str:
    """The file as a ``data:`` URI (its type guessed from the suffix: PNG, JPEG, SVG, GIF...)."""
    mime = mimetypes.guess_type(Path(path).name)[0] or "application/octet-stream"
    return f"data:{mime};base64,{base64.b64encode(Path(path).read_bytes()).decode('ascii')}"


def table_view(rows: list[dict[str, Any]], columns: list[str], caption: str = "") -> dict[str, Any]:
    """What the table macro needs: the columns, and each cell's text (formatted as in the Markdown
    tables) and whether it is a number (right-aligned)."""
    cells = [[{"text": fmt(v), "num": is_number(v) and not math.isnan(v)} for v in (r.get(c) for c in columns)]
             for r in clean_rows(rows, columns)]
    return {"kind": "table", "columns": columns, "rows": cells, "caption": caption}


def _block_views(report: Report) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """The blocks as plain dicts for the template, and the table of contents (level-2 headings)."""
    views: list[dict[str, Any]] = []
    toc: list[dict[str, str]] = []
    used: set[str] = set()
    for b in report.blocks:
        if isinstance(b, Heading):
            level = max(2, min(6, b.level))
            anchor = _unique(re.sub(r"[^a-z0-9]+", "-", b.text.lower()).strip("-") or "section", used)
            if level == 2:
                toc.append({"anchor": anchor, "text": b.text})
            views.append({"kind": "heading", "level": level, "anchor": anchor, "text": b.text})
        elif isinstance(b, Text):
            views.append({"kind": "text", "text": b.text, "style": b.style})
        elif isinstance(b, Table):
            views.append(table_view(b.rows, b.columns, b.caption))
        elif isinstance(b, Image):
            views.append({"kind": "image", "src": data_uri(b.path), "caption": b.caption,
                          "alt": b.caption or Path(b.path).name})
        elif isinstance(b, Code):
            views.append({"kind": "code", "text": b.text.rstrip(), "summary": b.summary})
    return views, toc


def render_html(report: Report) -> str:
    """The report as one self-contained HTML page (inline CSS, images as ``data:`` URIs), with a table
    of contents of its level-2 headings when it has more than one; rendered by ``report.html.j2``."""
    from cnnlab import templating

    blocks, toc = _block_views(report)
    return templating.render(__package__, "report.html.j2", title=report.title, blocks=blocks,
                             toc=toc if len(toc) > 1 else [], css=templating.source(__package__, "report.css"))
