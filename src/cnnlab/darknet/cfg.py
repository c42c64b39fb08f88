"""Darknet ``.cfg`` files: parse into sections, read typed options, write back out.

A cfg is a list of ``[type]`` sections with ``key=value`` lines; ``#`` and ``;`` start comments.
The first section is ``[net]`` (or ``[network]``) with the input size; every other section is a layer.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from cnnlab.errors import UserError


class UnsupportedCfg(UserError):
    """A cfg feature cnnlab does not build (a layer type, activation or option); OpenCV may still run it."""


# Darknet reads every integer option into a C ``int``: anything outside that range is no Darknet value
INT_MIN, INT_MAX = -(2**31), 2**31 - 1


@dataclass
class Section:
    """One ``[type]`` block of a cfg: its type, its options (as text) and where it started.

    ``source`` is the file (or a description) the section came from and ``key_lines`` the line of each
    option, so an invalid value is reported as ``file line N [type]: key=value ...``.
    The typed getters refuse what is not a finite number (``inf``, ``nan``, ``1e400``), integers outside
    a C ``int`` and, with ``lo``/``hi``, values outside ``[lo, hi]``: one ``UserError`` each.
    """

    type: str
    options: dict[str, str] = field(default_factory=dict)
    line: int = 0
    source: str = ""
    key_lines: dict[str, int] = field(default_factory=dict)

    def where(self, key: str | None = None) -> str:
        """``file line N [type]`` (the line of ``key`` when known)."""
        line = self.key_lines.get(key, self.line) if key is not None else self.line
        return f"{self.source or 'cfg'} line {line} [{self.type}]"

    def _get(self, key: str, default: object, convert, what: str, lo: float | None = None,
             hi: float | None = None):
        if key not in self.options:
            if default is REQUIRED:
                raise UserError(f"{self.where()}: missing option '{key}'")
            return default
        raw = self.options[key]
        try:
            value = convert(raw)
        except _OutOfInt:
            raise UserError(f"{self.where(key)}: {key}={_short(raw)} is out of range (Darknet integers are "
                            f"in [{INT_MIN}, {INT_MAX}])") from None
        except (ValueError, OverflowError):
            raise UserError(f"{self.where(key)}: {key}={_short(raw)} is not {what}") from None
        for v in value if isinstance(value, list) else [value]:
            if (lo is not None and v < lo) or (hi is not None and v > hi):
                allowed = (f"in [{_num(lo)}, {_num(hi)}]" if lo is not None and hi is not None
                           else f">= {_num(lo)}" if lo is not None else f"<= {_num(hi)}")
                raise UserError(f"{self.where(key)}: {key}={_short(raw)} is out of range (must be {allowed})")
        return value

    def get_int(self, key: str, default: object = None, lo: int | None = None, hi: int | None = None) -> int:
        return self._get(key, default, _to_int, "an integer", lo, hi)

    def get_float(self, key: str, default: object = None, lo: float | None = None,
                  hi: float | None = None) -> float:
        return self._get(key, default, _to_float, "a finite number", lo, hi)

    def get_str(self, key: str, default: object = None) -> str:
        return self._get(key, default, str.strip, "text")

    def get_ints(self, key: str, default: object = None, lo: int | None = None,
                 hi: int | None = None) -> list[int]:
        return self._get(key, default, lambda r: [_to_int(v) for v in r.split(",") if v.strip()],
                         "a list of integers", lo, hi)

    def get_floats(self, key: str, default: object = None, lo: float | None = None,
                   hi: float | None = None) -> list[float]:
        return self._get(key, default, lambda r: [_to_float(v) for v in r.split(",") if v.strip()],
                         "a list of finite numbers", lo, hi)


def _to_float(raw: str) -> float:
    v = float(raw)
    if not math.isfinite(v):
        raise ValueError(raw)
    return v


def _to_int(raw: str) -> int:
    """An integer written as ``3``, ``3.0`` or ``3e2``; not ``2.5``, ``inf``, ``nan`` or beyond a C int."""
    raw = raw.strip()
    try:
        v = int(raw)
    except ValueError:
        f = _to_float(raw)
        if not f.is_integer():
            raise ValueError(raw) from None
        v = int(f)
    if not INT_MIN <= v <= INT_MAX:
        raise _OutOfInt(raw)
    return v


class _OutOfInt(Exception):
    """An integer beyond a C ``int``."""


def _short(raw: str) -> str:
    return repr(raw if len(raw) <= 40 else raw[:37] + "...")


def _num(v: float | None) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


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
            sections.append(Section(line[1:-1].strip().lower(), {}, lineno, source))
            continue
        if "=" not in line:
            raise UserError(f"{source}:{lineno}: expected key=value, got {raw.strip()!r}")
        if not sections:
            raise UserError(f"{source}:{lineno}: option outside of any [section]")
        key, value = line.split("=", 1)
        key = key.strip().lower()
        sections[-1].options[key] = value.strip()
        sections[-1].key_lines[key] = lineno
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
