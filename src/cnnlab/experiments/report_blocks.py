"""Report building blocks (headings, text, tables, images, code) rendered to Markdown and to HTML.

A report is a flat list of blocks. Markdown output links its images from an ``assets/`` folder beside
it; HTML output is one self-contained page: images are embedded as base64 ``data:`` URIs and every
piece of text goes through :func:`html.escape`. Tables use the shared helpers of
:mod:`cnnlab.experiments.tables`, so a report table looks like every other cnnlab table.
"""

from __future__ import annotations

import base64
import functools
import html
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
    """A paragraph of plain text (never interpreted as markup)."""

    text: str


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


# -- HTML ---------------------------------------------------------------------------------------------

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2rem auto;max-width:1200px;
padding:0 1rem;color:#1d2327;line-height:1.45}
h1{border-bottom:2px solid #264653;padding-bottom:.3rem}
h2{margin-top:2.2rem;border-bottom:1px solid #ccd;padding-bottom:.2rem}
table{border-collapse:collapse;margin:.6rem 0 1.2rem;font-size:.88rem;display:block;overflow-x:auto}
th,td{border:1px solid #ccd;padding:.25rem .55rem;text-align:left;white-space:nowrap}
td.num{text-align:right;font-variant-numeric:tabular-nums}
th{background:#eef2f5}
tr:nth-child(even) td{background:#f8fafb}
caption{caption-side:top;text-align:left;font-style:italic;padding:.2rem 0}
figure{margin:1rem 0}
figure img{max-width:100%;border:1px solid #dde}
figcaption{font-size:.85rem;color:#555}
pre{background:#f4f6f8;padding:.7rem;overflow-x:auto;font-size:.82rem}
.meta{color:#666;font-size:.85rem}
"""


def esc(text: Any) -> str:
    """HTML-escape any value (quotes included)."""
    return html.escape(str(text), quote=True)


def data_uri(path: str | Path) -> str:
    """The file as a ``data:`` URI (its type guessed from the suffix: PNG, JPEG, SVG, GIF...)."""
    mime = mimetypes.guess_type(Path(path).name)[0] or "application/octet-stream"
    return f"data:{mime};base64,{base64.b64encode(Path(path).read_bytes()).decode('ascii')}"


def html_table(rows: list[dict[str, Any]], columns: list[str], caption: str = "") -> str:
    """An escaped HTML ``<table>``; numbers are formatted like the Markdown tables and right-aligned."""
    out = ["<table>"]
    if caption:
        out.append(f"<caption>{esc(caption)}</caption>")
    out.append("<thead><tr>" + "".join(f"<th>{esc(c)}</th>" for c in columns) + "</tr></thead><tbody>")
    for r in rows:
        cells = []
        for v in (r.get(c) for c in columns):
            cls = ' class="num"' if is_number(v) and not math.isnan(v) else ""
            cells.append(f"<td{cls}>{esc(fmt(v))}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


def html_figure(path: str | Path, caption: str = "") -> str:
    alt = caption or Path(path).name
    cap = f"<figcaption>{esc(caption)}</figcaption>" if caption else ""
    return f'<figure><img src="{data_uri(path)}" alt="{esc(alt)}">{cap}</figure>'


def html_page(title: str, body: str) -> str:
    """A complete, self-contained HTML document (inline CSS, no external assets)."""
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            f"<title>{esc(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
            f"<h1>{esc(title)}</h1>\n{body}\n</body>\n</html>\n")


def render_html(report: Report) -> str:
    """The report as one self-contained HTML page, with a table of contents of its level-2 headings."""
    body: list[str] = []
    toc: list[str] = []
    used: set[str] = set()
    for b in report.blocks:
        if isinstance(b, Heading):
            level = max(2, min(6, b.level))
            anchor = _unique(re.sub(r"[^a-z0-9]+", "-", b.text.lower()).strip("-") or "section", used)
            if level == 2:
                toc.append(f'<li><a href="#{anchor}">{esc(b.text)}</a></li>')
            body.append(f'<h{level} id="{anchor}">{esc(b.text)}</h{level}>')
        elif isinstance(b, Text):
            body.append(f"<p>{esc(b.text)}</p>")
        elif isinstance(b, Table):
            body.append(html_table(clean_rows(b.rows, b.columns), b.columns, b.caption))
        elif isinstance(b, Image):
            body.append(html_figure(b.path, b.caption))
        elif isinstance(b, Code):
            pre = f"<pre><code>{esc(b.text.rstrip())}</code></pre>"
            body.append(f"<details><summary>{esc(b.summary)}</summary>{pre}</details>" if b.summary else pre)
    contents = f"<nav><strong>Contents</strong><ul>{''.join(toc)}</ul></nav>\n" if len(toc) > 1 else ""
    return html_page(report.title, contents + "\n".join(body))
