"""Write result tables as CSV and GitHub Markdown (atomically)."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

from cnnlab.io import atomic_write_text


def fmt(value: Any, digits: int = 4) -> str:
    """A table cell: floats with ``digits`` significant digits, None as empty."""
    if value is None:
        return ""
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return f"{value:.{digits}g}" if abs(value) < 1e5 else f"{value:.0f}"
    return str(value)


def to_csv(rows: list[dict[str, Any]], columns: list[str]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({c: "" if r.get(c) is None else r.get(c) for c in columns})
    return buf.getvalue()


def to_markdown(rows: list[dict[str, Any]], columns: list[str], digits: int = 4) -> str:
    if not rows:
        return "(no rows)\n"
    out = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    for r in rows:
        cells = [fmt(r.get(c), digits).replace("|", "\\|") for c in columns]
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def write_tables(stem: Path, rows: list[dict[str, Any]], columns: list[str], title: str = "",
                 digits: int = 4) -> tuple[Path, Path]:
    """Write ``<stem>.csv`` and ``<stem>.md``; return both paths."""
    stem = Path(stem)
    csv_path, md_path = stem.with_suffix(".csv"), stem.with_suffix(".md")
    atomic_write_text(csv_path, to_csv(rows, columns))
    head = f"# {title}\n\n" if title else ""
    atomic_write_text(md_path, head + to_markdown(rows, columns, digits))
    return csv_path, md_path
