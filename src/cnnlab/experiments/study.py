"""Optuna storage for ``cnnlab tune``: URLs, heartbeats, stale trials and the run-folder lock.

A search lives in an RDB storage: by default ``sqlite:///<run folder>/study.db``, or any SQLAlchemy
URL (``postgresql://user:pass@host/db``) shared by workers on many machines; or in Optuna's journal
file storage (``journal:///shared/path/search.log``, or any path ending in ``.log``), for labs whose
machines share a file system but no database server. Running trials send a heartbeat (Optuna's own
for RDB storages; a ``cnnlab_heartbeat`` trial attribute in a journal); a trial whose worker died is
failed after a grace period and re-queued with the same parameters, so a killed search loses at most
the trials that were running. A trial stopped by Ctrl-C
is always queued again; a parameter set that crashed or was killed ``MAX_FAILURES`` times is not
(it would stop every resumed search the same way), and the search says so.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cnnlab.errors import UserError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no locks, rely on heartbeats
    fcntl = None  # type: ignore[assignment]

HEARTBEAT_S = 10
GRACE_S = 60
MAX_FAILURES = 3  # crashes or kills of one parameter set before it is not queued again (Ctrl-C never counts)
FAILURES_ATTR = "cnnlab_failures"         # system attr of a queued copy: failures of its parameter set so far
NOT_REQUEUED_ATTR = "cnnlab_not_requeued"  # study user attr: {trial number: why its parameters were dropped}
HEARTBEAT_ATTR = "cnnlab_heartbeat"       # trial system attr: last heartbeat (Unix time) in a journal storage
DB_FILE = "study.db"
LOCK_FILE = ".tune.lock"
JOURNAL = "journal"
JOURNAL_SUFFIXES = (".log", ".journal")


@contextlib.contextmanager
def quiet_experimental() -> Iterator[None]:
    """Silence Optuna's ExperimentalWarning (heartbeats and stale-trial retries are experimental)."""
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        yield


def default_storage_url(run_dir: Path) -> str:
    return f"sqlite:///{Path(run_dir).resolve() / DB_FILE}"


def normalise_url(url: str) -> str:
    """Pick an installed PostgreSQL driver for ``postgresql://`` URLs; a journal file (``journal:///path``
    or a path ending in .log) becomes ``journal:///<absolute path>``; reject unknown schemes."""
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if scheme == JOURNAL or (not sep and url.lower().endswith(JOURNAL_SUFFIXES)):
        path = Path(rest if sep else url).expanduser()
        if not str(rest if sep else url).strip():
            raise UserError("a journal storage needs a file: journal:///shared/path/search.log")
        path = path.resolve()
        if path.is_dir():
            raise UserError(f"journal storage {path} is a folder; give a file, e.g. {path / 'search.log'}")
        if not path.parent.is_dir():
            raise UserError(f"journal storage {path}: folder {path.parent} does not exist")
        return f"{JOURNAL}://{path}"
    if not sep or not scheme:
        raise UserError("storage must be a database URL like postgresql://user:pass@host/db or a journal file "
                        f"like journal:///shared/search.log, got {url!r}")
    base = scheme.split("+", 1)[0]
    if base in ("postgres", "postgresql") and "+" not in scheme:
        for driver in ("psycopg", "psycopg2"):
            with contextlib.suppress(ImportError):
                __import__(driver)
                return f"postgresql+{driver}://{rest}"
        raise UserError("a postgresql:// storage needs a driver: pip install 'psycopg[binary]'")
    if base not in ("sqlite", "postgresql", "postgres", "mysql", "mariadb"):
        raise UserError(f"unsupported storage {scheme!r}: use sqlite:///file.db, postgresql://... or "
                        "journal:///path/file.log")
    return url


def is_journal(url: str) -> bool:
    return url.lower().startswith(JOURNAL + "://")


def journal_path(url: str) -> str:
    return url.split("://", 1)[1]


def _journal_storage(url: str) -> Any:
    """Optuna's JournalStorage on a file (``JournalFileBackend``; ``JournalFileStorage`` before Optuna 4)."""
    import optuna

    path = journal_path(url)
    _check_journal(Path(path))
    journal = getattr(optuna.storages, "journal", None)
    backend_cls = getattr(journal, "JournalFileBackend", None) or optuna.storages.JournalFileStorage  # < 4.0
    try:
        with quiet_experimental(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            storage = optuna.storages.JournalStorage(backend_cls(path))   # replays the whole journal
            storage.get_all_studies()
        return storage
    except OSError as e:
        raise UserError(f"cannot open journal storage {path}: {e.strerror or e}") from None
    except Exception as e:  # records Optuna cannot replay: not a journal of this Optuna
        raise UserError(f"{path}: not an Optuna journal ({type(e).__name__}: {first_line(e)[:120]})") from None


def _check_journal(path: Path) -> None:
    """Every complete line of an existing journal is a JSON record with an ``op_code`` (Optuna reads a bad
    line only when the next one arrives, so it is checked here); an incomplete last line may be a
    write in progress and is left to Optuna."""
    import json

    if not path.is_file():
        return
    try:
        data = path.read_bytes()
    except OSError as e:
        raise UserError(f"cannot read journal storage {path}: {e.strerror or e}") from None
    for number, line in enumerate(data.split(b"\n")[:-1], 1):
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if not (isinstance(record, dict) and isinstance(record.get("op_code"), int)
                and not isinstance(record.get("op_code"), bool)):
            raise UserError(f"{path}: line {number} is not an Optuna journal record (is it a journal file?)")


def first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def mask_url(url: str) -> str:
    """The URL with its password replaced by ``***`` (for logs and summaries)."""
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", url)


def is_sqlite(url: str) -> bool:
    return url.lower().startswith("sqlite")


def open_storage(url: str) -> Any:
    """An Optuna RDBStorage with heartbeats (stale trials are failed and queued again, see :func:`requeue`)."""
    import optuna

    if is_journal(url):
        return _journal_storage(url)
    sqlite = is_sqlite(url)
    engine_kwargs: dict[str, Any] = {"connect_args": {"timeout": 120}} if sqlite else {"pool_pre_ping": True}
    with quiet_experimental():
        try:
            return optuna.storages.RDBStorage(
                url, engine_kwargs=engine_kwargs, heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S,
                heartbeat_stale_trial_callback=_requeue_stale,
            )
        except ImportError as e:
            raise UserError(f"storage {mask_url(url)}: missing database driver ({e})") from None
        except Exception as e:  # sqlalchemy OperationalError etc.: unreachable server, bad credentials
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise UserError(f"cannot open storage {mask_url(url)}: {first}") from None


def fail_stale(study: Any, url: str = "") -> None:
    """Fail (and re-queue) trials whose worker stopped sending heartbeats."""
    import optuna

    if is_journal(url):
        _fail_stale_journal(study, url)
        return
    with quiet_experimental():
        optuna.storages.fail_stale_trials(study)


def _fail_stale_journal(study: Any, url: str, grace: float | None = None) -> list[int]:
    """A journal has no heartbeat table: a RUNNING trial whose ``cnnlab_heartbeat`` (or start, before its
    first beat) is older than the grace period is failed and queued again, under a file lock so that one
    worker only does it. Returns the numbers of those queued again."""
    from optuna.trial import TrialState

    grace = GRACE_S if grace is None else grace
    queued = []
    with ask_lock(url):
        now = time.time()
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            beat = t.system_attrs.get(HEARTBEAT_ATTR)
            last = float(beat) if isinstance(beat, int | float) else (
                t.datetime_start.timestamp() if t.datetime_start is not None else now)
            if now - last <= grace:
                continue
            import optuna

            with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):
                if study._storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL) and requeue(
                        study, t._trial_id) is None:
                    queued.append(t.number)
    return queued


def fail_running_now(study: Any) -> list[int]:
    """Fail every RUNNING trial at once and queue it again (only when no other worker can be running:
    their process was killed); returns the numbers of those queued again."""
    import optuna
    from optuna.trial import TrialState

    queued = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):
            if study._storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL) and requeue(
                    study, t._trial_id) is None:
                queued.append(t.number)
    return queued


def requeue(study: Any, trial_id: int, counted: bool = True) -> str | None:
    """Queue a copy of a failed trial (same parameters) so the search runs it again; returns None, or
    why it was not queued.

    A trial stopped by Ctrl-C (``counted=False``) is always queued again: stopping a search says
    nothing about its parameters. A crash or a killed worker counts against the parameter set; after
    ``MAX_FAILURES`` of them it is not queued again, since it would stop every resumed search the same
    way (say, a batch size that runs out of memory). That is printed as a warning on stderr and kept
    in the study's user attr ``cnnlab_not_requeued``.
    """
    import optuna

    trial = study._storage.get_trial(trial_id)
    failures = int(trial.system_attrs.get(FAILURES_ATTR, 0)) + int(counted)
    if failures >= MAX_FAILURES:
        params = ", ".join(f"{k}={v!r}" for k, v in trial.params.items())
        why = (f"trial {trial.number} ({params}) crashed or was killed {failures} times with these parameters; "
               "they are not queued again")
        with contextlib.suppress(Exception):  # the note is a courtesy; the warning below is the message
            study.set_user_attr(NOT_REQUEUED_ATTR, {**study.user_attrs.get(NOT_REQUEUED_ATTR, {}),
                                                    str(trial.number): why})
        print(f"warning: {why}", file=sys.stderr, flush=True)
        return why
    history = [*trial.system_attrs.get("retry_history", []), trial.number]
    system_attrs = {**trial.system_attrs, FAILURES_ATTR: failures, "failed_trial": history[0],
                    "retry_history": history}
    study.add_trial(optuna.create_trial(state=optuna.trial.TrialState.WAITING, params=trial.params,
                                        distributions=trial.distributions, user_attrs=trial.user_attrs,
                                        system_attrs=system_attrs))
    return None


def _requeue_stale(study: Any, trial: Any) -> None:
    """Optuna's callback for a trial whose worker stopped sending heartbeats (it was killed)."""
    requeue(study, trial._trial_id)


@contextlib.contextmanager
def heartbeat(storage: Any, trial_id: int, interval: float = HEARTBEAT_S) -> Iterator[None]:
    """Record a trial's heartbeat every ``interval`` seconds in a daemon thread while the block runs
    (Optuna's heartbeat where the storage has one, else the ``cnnlab_heartbeat`` trial attribute)."""
    stop = threading.Event()
    native = hasattr(storage, "record_heartbeat") and getattr(storage, "is_heartbeat_enabled", lambda: False)()

    def beat() -> None:
        while True:
            with contextlib.suppress(Exception):  # a missed beat is retried; the grace period allows it
                if native:
                    storage.record_heartbeat(trial_id)
                else:
                    storage.set_trial_system_attr(trial_id, HEARTBEAT_ATTR, time.time())
            if stop.wait(interval):
                return

    thread = threading.Thread(target=beat, daemon=True, name=f"heartbeat-{trial_id}")
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


@contextlib.contextmanager
def _flock(path: str | Path, block: bool) -> Iterator[int | None]:
    """Lock ``path`` (created when missing) exclusively; yields its descriptor, or None if not locked."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    locked = False
    try:
        if fcntl is not None:
            with contextlib.suppress(BlockingIOError):
                fcntl.flock(fd, fcntl.LOCK_EX if block else fcntl.LOCK_EX | fcntl.LOCK_NB)
                locked = True
        yield fd if locked else None
    finally:
        if locked:  # unlock explicitly: a process forked meanwhile may still share the descriptor
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


@contextlib.contextmanager
def ask_lock(url: str) -> Iterator[None]:
    """Serialise taking a trial among processes sharing one SQLite or journal file.

    SQLite ignores ``SELECT ... FOR UPDATE``, so two processes could pop the same queued trial;
    PostgreSQL locks the row itself and needs nothing here. A journal takes the budget check, the
    ask and the stale-trial clean-up under ``<file>.cnnlab.lock`` (``flock``, which also holds across
    machines on NFSv4 and most cluster file systems; surplus trials cover any that do not lock).
    """
    if is_journal(url):
        with _flock(journal_path(url) + ".cnnlab.lock", block=True):
            yield
        return
    path = url.split(":///", 1)[1] if is_sqlite(url) and ":///" in url else ""
    file_db = path and not path.startswith(":memory:")
    with _flock(path + ".lock", block=True) if file_db else contextlib.nullcontext():
        yield


@contextlib.contextmanager
def folder_lock(run_dir: Path) -> Iterator[bool]:
    """Hold an exclusive lock on the run folder; yields whether it was acquired (never blocks)."""
    with _flock(Path(run_dir) / LOCK_FILE, block=False) as fd:
        if fd is not None:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        yield fd is not None
