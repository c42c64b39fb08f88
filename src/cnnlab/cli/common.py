"""Small helpers shared by CLI modules: consoles, option parsing, the options every command spells the same way."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from cnnlab.devices import DEVICE_HELP, check_device_spec


def make_console(stderr: bool = False) -> Console:
    """A console that never breaks a line: soft wrap, and piped output (a file, ``| less``, CI) as wide
    as its longest line instead of rich's 80-column default."""
    probe = Console(stderr=stderr)
    return Console(stderr=stderr, highlight=False, soft_wrap=True,
                   width=None if probe.is_terminal else 10_000)


console = make_console()
err_console = make_console(stderr=True)


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


def _check_device(value: str | None) -> str | None:
    return None if value is None else check_device_spec(value)


# One meaning per option name across all commands (see docs/architecture.md, "Command line").
DEVICE = typer.Option("auto", "--device", callback=_check_device, help=DEVICE_HELP)
PROJECT = typer.Option(Path("runs"), "--project", help="Parent folder of run folders.")
NAME = typer.Option("exp", "--name", help="Run name: <project>/<task>/<name> (exp, exp2, ... when taken).")
