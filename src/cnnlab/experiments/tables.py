"""Result tables: written as CSV and GitHub Markdown (atomically), read back from CSV."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import yaml

from cnnlab.io import atomic_write_text, read_json


def fmt(value: Any) -> str:
    """A table cell: floats with four significant digits, None as empty."""
    if value is None:
        return ""
    if isinstance(value, float):  # nan and inf print as themselves
        return f"{value:.4g}" if abs(value) < 1e5 else f"{value:.0f}"
    return str(value)


def inline(value: Any) -> Any:
    """A table cell for any option value: mappings and lists as one line of YAML, the rest as is."""
    if isinstance(value, (dict, list)):
        return yaml.safe_dump(value, default_flow_style=True, sort_keys=False).strip()
    return value


def to_csv(rows: list[dict[str, Any]], columns: list[str]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)  # None and missing cells are written empty
    return buf.getvalue()


def to_markdown(rows: list[dict[str, Any]], columns: list[str]) -> str:
    if not rows:
        return "(no rows)\n"
    out = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    for r in rows:
        cells = [fmt(r.get(c)).replace("|", "\\|") for c in columns]
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def write_tables(stem: Path, rows: list[dict[str, Any]], columns: list[str],
                 title: str = "") -> tuple[Path, Path]:
    """Write ``<stem>.csv`` and ``<stem>.md``; return both paths."""
    stem = Path(stem)
    csv_path, md_path = stem.with_suffix(".csv"), stem.with_suffix(".md")
    atomic_write_text(csv_path, to_csv(rows, columns))
    head = f"# {title}\n\n" if title else ""
    atomic_write_text(md_path, head + to_markdown(rows, columns))
    return csv_path, md_path


def parse_number(text: Any) -> Any:
    """A CSV cell as an int or float when it is one; an empty cell is None, other text stays text."""
    if not isinstance(text, str) or text == "":
        return None if text == "" else text
    try:
        v = float(text)
    except ValueError:
        return text
    return int(v) if v.is_integer() and "." not in text and "e" not in text.lower() else v


def read_csv_rows(path: str | Path) -> tuple[list[dict[str, Any]], list[str]]:
    """Rows (numbers parsed) and columns of a CSV table."""
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        rows = [{k: parse_number(v) for k, v in r.items()} for r in reader]
        return rows, list(reader.fieldnames or [])


def read_history(run: str | Path) -> list[dict[str, Any]]:
    """A run's per-epoch history: ``history.json``, else ``history.csv``; empty when it has neither."""
    path = Path(run) / "history.json"
    if path.is_file() and isinstance(data := read_json(path), list):
        return data
    path = path.with_suffix(".csv")
    return read_csv_rows(path)[0] if path.is_file() else []
