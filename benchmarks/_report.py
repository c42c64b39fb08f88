"""Write one benchmark's section into docs/benchmarks.md (atomically), with command, date and machine."""

from __future__ import annotations

import datetime as _dt
import os
import platform
import re
import shlex
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "benchmarks.md"
HEADER = (
    "# Benchmarks\n\n"
    "Measured figures, each section written by the script named in it (`benchmarks/*.py`).\n"
    "Re-run a script to refresh its section; the others are left as they are.\n"
)


def machine() -> str:
    """A one-line description of this machine and the library versions."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    parts = [f"{cpu}, {os.cpu_count()} cores", f"Python {platform.python_version()}"]
    try:
        import torch

        parts.append(f"torch {torch.__version__}")
    except ImportError:
        pass
    return "; ".join(parts)


def write_section(key: str, title: str, body: str, command: str | None = None) -> Path:
    """Replace (or append) the section ``key`` of docs/benchmarks.md with ``body``."""
    from cnnlab.io import atomic_write_text

    command = command or "python " + shlex.join([os.path.relpath(sys.argv[0], REPO), *sys.argv[1:]])  # as typed
    stamp = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    section = (
        f"<!-- section:{key} -->\n## {title}\n\n"
        f"- command: `{command}`\n- date: {stamp}\n- machine: {machine()}\n\n"
        f"{body.strip()}\n<!-- end:{key} -->\n"
    )
    text = DOC.read_text(encoding="utf-8") if DOC.is_file() else HEADER
    pattern = re.compile(rf"<!-- section:{re.escape(key)} -->.*?<!-- end:{re.escape(key)} -->\n?", re.S)
    text = pattern.sub(lambda _: section, text) if pattern.search(text) else text.rstrip() + "\n\n" + section
    atomic_write_text(DOC, text)
    print(f"wrote section '{key}' of {DOC}")
    return DOC


def markdown_table(rows: list[dict], columns: list[str] | None = None) -> str:
    """A GitHub Markdown table of dict rows."""
    if not rows:
        return "(no rows)\n"
    columns = columns or list(rows[0])
    out = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    for r in rows:
        out.append("| " + " | ".join(_fmt(r.get(c, "")) for c in columns) + " |")
    return "\n".join(out) + "\n"


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 1000 else f"{v:.0f}"
    return str(v)
