"""CLI commands of the 'detect_eval' group (placeholder module until its commands land)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this group's commands to the main app."""
