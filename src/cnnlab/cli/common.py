"""Small helpers shared by CLI modules: consoles, option parsing."""

from __future__ import annotations

from rich.console import Console

console = Console(highlight=False, soft_wrap=True)  # never break a path across lines
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def parse_size(text: str) -> tuple[int, int]:
    """Parse ``640x480`` (width x height) or ``320`` (square) into ``(width, height)``."""
    from cnnlab.errors import UserError

    t = text.lower().replace("×", "x").strip()
    try:
        if "x" in t:
            w, h = t.split("x", 1)
            return int(w), int(h)
        return int(t), int(t)
    except ValueError:
        raise UserError(f"invalid size {text!r}: expected WIDTHxHEIGHT, e.g. 640x480") from None
