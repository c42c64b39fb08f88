"""Every `cnnlab ...` example in README.md and docs/*.md parses: commands, option names and value types
(parsed as the CLI would, nothing is run)."""

from __future__ import annotations

import shlex

import typer

from _docs import all_examples
from cnnlab.cli.main import app

PLACEHOLDERS = ("...", "…", "<", "COMMAND")


def _examples() -> list[tuple[str, str, bool]]:
    """(where, command line, in a code block) for each example; inline ones may name a command alone."""
    return [(e.where, e.text, e.kind == "command") for e in all_examples() if e.kind in ("command", "inline")]


def _args(line: str) -> list[str] | None:
    lex = shlex.shlex(line, posix=True)
    lex.whitespace_split, lex.commenters = True, "#"
    args = list(lex)[1:]
    return None if any(p in a for a in args for p in PLACEHOLDERS) else args


def _parse(root, args: list[str]) -> None:
    """Parse down to the (sub)command and convert every value, without invoking anything."""
    cmd, ctx = root, root.make_context("cnnlab", list(args))
    while hasattr(cmd, "resolve_command"):
        rest = [*(getattr(ctx, "_protected_args", None) or getattr(ctx, "protected_args", [])), *ctx.args]
        if not rest:
            return
        name, cmd, rest = cmd.resolve_command(ctx, rest)
        ctx = cmd.make_context(name, rest, parent=ctx)


def _problem(root, line: str, block: bool) -> str | None:
    args = _args(line)
    if args is None:
        return None
    try:
        _parse(root, args)
    except Exception as e:
        name = type(e).__name__
        if name == "Exit" or "NoArgsIsHelp" in name:  # --help, --version, a bare group
            return None
        if not block and name in ("MissingParameter", "BadOptionUsage"):  # prose naming a command or option
            return None
        return f"{name}: {e.format_message() if hasattr(e, 'format_message') else e}"
    return None


def test_every_example_parses():
    examples = _examples()
    assert sum(block for _, _, block in examples) > 80
    root = typer.main.get_command(app)
    bad = [f"{where}: {line}\n    {p}" for where, line, block in examples if (p := _problem(root, line, block))]
    assert not bad, "\n".join(bad)
