"""Optuna storage for ``cnnlab tune``: URLs, heartbeats, stale trials and the run-folder lock.

A search lives in an RDB storage: by default ``sqlite:///<run folder>/study.db``, or any SQLAlchemy
URL (``postgresql://user:pass@host/db``) shared by workers on many machines. Running trials send a
heartbeat; a trial whose worker died is failed after a grace period and re-queued with the same
parameters, so a killed search loses at most the trials that were running.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cnnlab.errors import UserError

HEARTBEAT_S = 10
GRACE_S = 60
MAX_RETRY = 3
DB_FILE = "study.db"
LOCK_FILE = ".tune.lock"


def default_storage_url(run_dir: Path) -> str:
    return f"sqlite:///{Path(run_dir).resolve() / DB_FILE}"


def normalise_url(url: str) -> str:
    """Pick an installed PostgreSQL driver for ``postgresql://`` URLs; reject unknown schemes."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if not scheme:
        raise UserError(f"storage must be a database URL like postgresql://user:pass@host/db, got {url!r}")
    base = scheme.split("+", 1)[0]
    if base in ("postgres", "postgresql") and "+" not in scheme:
        for module, driver in (("psycopg", "psycopg"), ("psycopg2", "psycopg2")):
            try:
                __import__(module)
            except ImportError:
                continue
            return f"postgresql+{driver}://" + url.split("://", 1)[1]
        raise UserError("a postgresql:// storage needs a driver: pip install 'psycopg[binary]'")
    if base not in ("sqlite", "postgresql", "postgres", "mysql", "mariadb"):
        raise UserError(f"unsupported storage {scheme!r}: use sqlite:///file.db or postgresql://...")
    return url


def mask_url(url: str) -> str:
    """The URL with its password replaced by ``***`` (for logs and summaries)."""
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", url)


def is_sqlite(url: str) -> bool:
    return url.lower().startswith("sqlite")


def open_storage(url: str) -> Any:
    """An Optuna RDBStorage with heartbeats (stale trials are failed and retried)."""
    import optuna

    engine_kwargs: dict[str, Any] = {}
    if is_sqlite(url):
        engine_kwargs["connect_args"] = {"timeout": 120}
    else:
        engine_kwargs["pool_pre_ping"] = True
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        try:
            return optuna.storages.RDBStorage(
                url, engine_kwargs=engine_kwargs, heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S,
                heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(MAX_RETRY),
            )
        except ImportError as e:
            raise UserError(f"storage {mask_url(url)}: missing database driver ({e})") from None
        except Exception as e:  # sqlalchemy OperationalError etc.: unreachable server, bad credentials
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise UserError(f"cannot open storage {mask_url(url)}: {first}") from None


def fail_stale(study: Any) -> None:
    """Fail (and re-queue) trials whose worker stopped sending heartbeats."""
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def fail_running_now(study: Any) -> list[int]:
    """Fail and re-queue every RUNNING trial at once (only when no other worker can be running)."""
    import optuna
    from optuna.trial import TrialState

    storage = study._storage
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        retry = optuna.storages.RetryHeartbeatStaleTrialCallback(MAX_RETRY)
    failed = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        try:
            if storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL):
                failed.append(t.number)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                    retry(study, storage.get_trial(t._trial_id))
        except optuna.exceptions.UpdateFinishedTrialError:
            pass
    return failed


def requeue(study: Any, trial_id: int) -> None:
    """Queue a copy of a failed trial (same parameters) so a resumed search runs it again."""
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.RetryHeartbeatStaleTrialCallback(MAX_RETRY)(study, study._storage.get_trial(trial_id))


class Heartbeat:
    """Record a trial's heartbeat every :data:`HEARTBEAT_S` seconds in a daemon thread."""

    def __init__(self, storage: Any, trial_id: int, interval: float = HEARTBEAT_S):
        self.storage, self.trial_id, self.interval = storage, trial_id, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True, name=f"heartbeat-{trial_id}")

    def _beat(self) -> None:
        while True:
            with contextlib.suppress(Exception):  # a missed beat is retried; the grace period allows it
                self.storage.record_heartbeat(self.trial_id)
            if self._stop.wait(self.interval):
                return

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()


@contextlib.contextmanager
def ask_lock(url: str) -> Iterator[None]:
    """Serialise taking a trial among local processes sharing one SQLite file.

    SQLite ignores ``SELECT ... FOR UPDATE``, so two processes could pop the same queued trial;
    PostgreSQL locks the row itself and needs nothing here.
    """
    path = url.split(":///", 1)[1] if is_sqlite(url) and ":///" in url else ""
    if not path or path.startswith(":memory:"):
        yield
        return
    fd = os.open(path + ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows
            yield
            return
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


@contextlib.contextmanager
def folder_lock(run_dir: Path) -> Iterator[bool]:
    """Hold an exclusive lock on the run folder; yields whether it was acquired (never blocks)."""
    path = Path(run_dir) / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    acquired = False
    try:
        try:
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            acquired = True
        except BlockingIOError:
            acquired = False
        except ImportError:  # pragma: no cover - Windows: no lock, rely on heartbeats
            acquired = False
        if acquired:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        yield acquired
    finally:
        if acquired:
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
