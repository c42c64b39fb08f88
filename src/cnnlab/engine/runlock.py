"""One process trains a run folder at a time: ``run_lock`` holds ``<run>/.lock`` while training, and a resume
of a folder whose lock is held is refused (instead of deleting the other process's unfinished writes)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cnnlab.errors import UserError

LOCK = ".lock"

try:
    import fcntl
except ImportError:  # pragma: no cover - not on POSIX: no lock, as before
    fcntl = None  # type: ignore[assignment]


@contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold the run folder's lock (with this process's pid in it) for the duration of the block."""
    if fcntl is None:  # pragma: no cover
        yield
        return
    path = Path(run_dir) / LOCK
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError(f"{run_dir} is being trained by another process{_holder(path)}; "
                            "wait for it to finish or stop it first") from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        yield
    finally:
        os.close(fd)   # closing releases the lock


def check_not_running(run_dir: Path) -> None:
    """Refuse (one line) when another process holds ``run_dir``'s lock."""
    if (Path(run_dir) / LOCK).is_file():
        with run_lock(run_dir):
            pass


def _holder(path: Path) -> str:
    try:
        pid = path.read_text().strip()
    except OSError:
        return ""
    return f" (pid {pid})" if pid.isdigit() else ""
