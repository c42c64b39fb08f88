"""Darknet ``.cfg`` files: parse into sections, read typed options, write back out.

A cfg is a list of ``[type]`` sections with ``key=value`` lines; ``#`` and ``;`` start comments.
The first section is ``[net]`` (or ``[network]``) with the input size; every other section is a layer.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from cnnlab.errors import UserError


@dataclass
class Section:
    """One ``[type]`` block of a cfg: its type, its options (as text) and where it started."""

    type: str
    options: dict[str, str] = field(default_factory=dict)
    line: int = 0

    def _get(self, key: str, default: object, convert, what: str):
        if key not in self.options:
            if default is REQUIRED:
                raise UserError(f"cfg line {self.line} [{self.type}]: missing option '{key}'")
            return default
        raw = self.options[key]
        try:
            return convert(raw)
        except ValueError:
            raise UserError(f"cfg line {self.line} [{self.type}]: {key}={raw!r} is not {what}") from None

    def get_int(self, key: str, default: object = None) -> int:
        return self._get(key, default, lambda r: int(float(r)), "an integer")

    def get_float(self, key: str, default: object = None) -> float:
        return self._get(key, default, float, "a number")

    def get_str(self, key: str, default: object = None) -> str:
        return self._get(key, default, str.strip, "text")

    def get_ints(self, key: str, default: object = None) -> list[int]:
        return self._get(key, default, lambda r: [int(float(v)) for v in r.split(",") if v.strip()],
                         "a list of integers")

    def get_floats(self, key: str, default: object = None) -> list[float]:
        return self._get(key, default, lambda r: [float(v) for v in r.split(",") if v.strip()],
                         "a list of numbers")


REQUIRED = object()  # marker for options without a default


def parse_cfg_text(text: str, source: str = "<cfg>") -> list[Section]:
    """Parse cfg text into sections; the first must be ``[net]``/``[network]``."""
    sections: list[Section] = []
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].split(";", 1)[0].strip()
        if not line:
            continue
        if line.startswith("["):
            if not line.endswith("]") or len(line) < 3:
                raise UserError(f"{source}:{lineno}: malformed section header {raw.strip()!r}")
            sections.append(Section(line[1:-1].strip().lower(), {}, lineno))
            continue
        if "=" not in line:
            raise UserError(f"{source}:{lineno}: expected key=value, got {raw.strip()!r}")
        if not sections:
            raise UserError(f"{source}:{lineno}: option outside of any [section]")
        key, value = line.split("=", 1)
        sections[-1].options[key.strip().lower()] = value.strip()
    if not sections:
        raise UserError(f"{source}: no sections found (not a Darknet cfg?)")
    if sections[0].type not in ("net", "network"):
        raise UserError(f"{source}: the first section must be [net], found [{sections[0].type}]")
    if len(sections) < 2:
        raise UserError(f"{source}: the cfg has no layers after [net]")
    return sections


def read_cfg(path: str | os.PathLike) -> list[Section]:
    """Read and parse a ``.cfg`` file."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"cfg file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as e:
        raise UserError(f"cannot read {path}: {e.strerror}") from None
    return parse_cfg_text(text, source=str(path))


def format_cfg(sections: list[Section]) -> str:
    """The cfg text of ``sections`` (one blank line between sections)."""
    blocks = ("\n".join([f"[{s.type}]", *(f"{k}={v}" for k, v in s.options.items())]) for s in sections)
    return "\n\n".join(blocks) + "\n"


def write_cfg(path: str | os.PathLike, sections: list[Section]) -> Path:
    """Write ``sections`` as a cfg file, atomically."""
    from cnnlab.io import atomic_write_text

    return atomic_write_text(path, format_cfg(sections))


def section(type_: str, **options: object) -> Section:
    """Build a section from Python values: lists become comma-separated, bools 0/1."""
    def text(v: object) -> str:
        if isinstance(v, (list, tuple)):
            return ",".join(map(str, v))
        return str(int(v)) if isinstance(v, bool) else str(v)

    return Section(type_, {k: text(v) for k, v in options.items() if v is not None})
