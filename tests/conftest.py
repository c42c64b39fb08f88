"""Shared fixtures: real-data lookup (skips cleanly when ../shared/data is absent), CLI runner, seeds."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")

REPO = Path(__file__).resolve().parents[1]


def shared_data_root() -> Path | None:
    """``$CNNLAB_DATA`` if set and present, else ``../shared/data`` beside the repo, else None."""
    for cand in (os.environ.get("CNNLAB_DATA"), REPO.parent / "shared" / "data"):
        if cand and Path(cand).is_dir():
            return Path(cand)
    return None


@pytest.fixture
def shared_data():
    """Return a function ``need(relpath)`` giving a real-data path, or skipping the test if absent."""

    def need(rel: str = "") -> Path:
        root = shared_data_root()
        if root is None or not (root / rel).exists():
            pytest.skip(f"real data not available: {rel or 'data root'} (set CNNLAB_DATA)")
        return root / rel

    return need


@pytest.fixture(autouse=True)
def _torch_threads():
    """Keep each test worker on one thread: the suite runs under xdist on 2 cores."""
    import torch

    torch.set_num_threads(1)
    yield


@pytest.fixture
def cli(tmp_path, monkeypatch):
    """Run the CLI in-process: ``code, out, err = cli("train", "--dataset", "digits")``."""
    from cnnlab.cli.main import main

    def run(*args: str) -> tuple[int, str, str]:
        import contextlib
        import io

        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main([str(a) for a in args])
        return code, out.getvalue(), err.getvalue()

    monkeypatch.chdir(tmp_path)
    return run
