"""Hyperparameter search on Optuna: ``cnnlab tune config.yaml --space space.yaml``.

Each trial trains one run (nested under the search folder) with the base config plus the trial's
parameters; a callback reports the per-epoch validation metric so hopeless trials are pruned. The
study lives in a database (SQLite in the search folder by default, PostgreSQL or an Optuna journal
file on a shared file system to share one search between machines), so a stopped search resumes
where it left off and any number of workers can join. The grid sampler queues every grid point once; workers pop points from that queue, so the
grid is covered exactly once however many workers share it.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
import warnings
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnnlab.errors import UserError
from cnnlab.experiments.budget import budget_message, trials_for_top
from cnnlab.experiments.overrides import apply_params
from cnnlab.experiments.runner import (
    TrainFn,
    check_direction,
    cnnlab_train,
    load_base_config,
    metric_value,
    numeric_metrics,
    progress_bar,
    relative,
    validate_config,
)
from cnnlab.experiments.space import SearchSpace
from cnnlab.experiments.study import (
    ask_lock,
    default_storage_url,
    fail_running_now,
    fail_stale,
    folder_lock,
    heartbeat,
    mask_url,
    normalise_url,
    open_storage,
    quiet_experimental,
    requeue,
)
from cnnlab.experiments.tune_report import SURPLUS, best_trial, write_outputs

SAMPLERS = ("grid", "random", "tpe")
PRUNERS = ("median", "hyperband", "none")
SPEC_ATTR = "cnnlab_spec"
GRID_ATTR = "cnnlab_grid_point"
READY_ATTR = "cnnlab_grid_ready"
TRIALS_DIR = "trials"


@dataclass
class TuneResult:
    """What :func:`tune` returns (also written to ``<run_dir>/tune.json``)."""

    run_dir: Path
    study_name: str
    storage: str
    n_trials: int
    best_value: float | None
    best_params: dict[str, Any]
    best_config: Path | None
    counts: dict[str, int]
    plots: dict[str, Path] = field(default_factory=dict)


@dataclass
class _Job:
    """Everything a worker (in this process or a spawned one) needs; plain data, picklable."""

    base: dict[str, Any]
    space: dict[str, Any]
    metric: str
    direction: str
    sampler: str
    pruner: str
    n_trials: int
    storage_url: str
    study_name: str
    run_dir: str
    seed: int
    shared: bool
    train_fn: TrainFn | None = None


def resolve_trials(trials: int | str | None, sampler: str, space: SearchSpace, top: float = 0.05,
                   confidence: float = 0.95) -> int:
    """The number of trials to run: the grid size, an integer, or ``auto`` (top-x % rule)."""
    auto = isinstance(trials, str) and trials.strip().lower() == "auto"
    if sampler == "grid":
        size = len(space.grid_points())
        if auto:
            raise UserError("--trials auto is for random/tpe search; the grid sampler runs the whole grid")
        if trials is not None and int(trials) < size:
            raise UserError(f"the grid has {size} points but --trials is {trials}; the grid sampler runs "
                            f"every point (use --sampler random to sample fewer)")
        return size
    if trials is None or auto:
        return trials_for_top(top, confidence)
    try:
        n = int(trials)
    except (TypeError, ValueError):
        raise UserError(f"--trials must be a number or 'auto', got {trials!r}") from None
    if n < 1:
        raise UserError(f"--trials must be >= 1, got {n}")
    return n


def tune(
    config: Any,
    space: str | Path | Mapping[str, Any] | SearchSpace,
    *,
    sampler: str = "tpe",
    trials: int | str | None = None,
    top: float = 0.05,
    confidence: float = 0.95,
    metric: str = "val_accuracy",
    direction: str | None = None,
    pruner: str = "median",
    storage: str | None = None,
    workers: int = 1,
    project: str | Path = "runs",
    name: str = "exp",
    seed: int = 0,
    train_fn: TrainFn | None = None,
    plots: bool = True,
    log: Callable[[str], None] | None = print,
) -> TuneResult:
    """Run (or resume, or join) a hyperparameter search; write its tables, best.yaml and plots.

    ``config`` is the base run config (YAML path, dict or TrainConfig); ``space`` the search space
    (YAML path or dict, see :mod:`cnnlab.experiments.space`). The search folder is
    ``<project>/tune/<name>``: running the same command again resumes it. ``trials`` is a number,
    ``"auto"`` (random search: enough for a ``confidence`` chance of a top-``top`` trial) or None
    (auto; the full grid for the grid sampler). ``train_fn(config, callbacks, run_dir) -> metrics``
    replaces ``cnnlab.train`` (tests use a fake objective). ``log=None``: no messages, no progress bar.
    """
    from cnnlab.runs import new_run_dir

    say = log or (lambda _msg: None)
    sampler, pruner = str(sampler).lower(), str(pruner).lower()
    if sampler not in SAMPLERS:
        raise UserError(f"unknown sampler {sampler!r} (use {', '.join(SAMPLERS)})")
    if pruner not in PRUNERS:
        raise UserError(f"unknown pruner {pruner!r} (use {', '.join(PRUNERS)})")
    if workers < 1:
        raise UserError(f"--workers must be >= 1, got {workers}")
    direction = check_direction(direction, metric)
    if workers > 1 and train_fn is not None:
        import pickle

        try:
            pickle.dumps(train_fn)
        except (pickle.PicklingError, AttributeError, TypeError):
            raise UserError("with --workers > 1, train_fn must be a module-level function "
                            "(worker processes import it by name)") from None
    base = load_base_config(config)
    space = SearchSpace.load(space)
    n_trials = resolve_trials(trials, sampler, space, top, confidence)
    if train_fn is None:
        validate_config(base, source="config", deep=True)
        for pname, value in space.values_to_check():  # every choice and both ends of each range
            validate_config(apply_params(base, {**space.example(), pname: value}),
                            source=f"config with {pname}={value!r} from the space")
    if sampler == "random":
        say(budget_message(n_trials, top))

    run_dir = new_run_dir(project, "tune", name, exist_ok=True)
    shared = bool(storage)
    url = normalise_url(storage) if shared else default_storage_url(run_dir)
    study_name = f"cnnlab-tune-{run_dir.name}"
    job = _Job(base=base, space=space.to_dict(), metric=metric, direction=direction, sampler=sampler,
               pruner=pruner, n_trials=n_trials, storage_url=url, study_name=study_name,
               run_dir=str(run_dir), seed=int(seed), shared=shared, train_fn=train_fn)
    spec = _spec(job)

    with folder_lock(run_dir) as only_local:
        if not only_local and not shared:
            raise UserError(f"another cnnlab tune is running in {run_dir} (wait for it, or use another --name)")
        study = _open_study(job, create=True)
        if only_local and not shared:
            requeued = fail_running_now(study)  # no other worker can use this folder's database
            if requeued:
                say(f"resuming: trial(s) {', '.join(map(str, requeued))} were cut off and will run again")
        done = _count(study, finished=True)
        say(f"search {run_dir}: {sampler} sampler, {n_trials} trials, {direction} {metric}, "
            f"pruner {pruner}, storage {mask_url(url)}" + (f" ({done} already finished)" if done else ""))
        try:
            _run_workers(job, workers, study, show=log is not None)
        except BaseException:  # stopped or crashed: still leave the table of what finished
            with contextlib.suppress(Exception):
                write_outputs(study, space, base, run_dir, metric, spec, plots=False)
            raise
        summary = write_outputs(study, space, base, run_dir, metric, spec, plots=plots)

    best = summary.get("best") or {}
    files = summary["files"]
    return TuneResult(
        run_dir=run_dir, study_name=study_name, storage=mask_url(url), n_trials=n_trials,
        best_value=best.get("value"), best_params=best.get("params") or {},
        best_config=run_dir / files["best_config"] if files["best_config"] else None,
        counts=summary["trials"], plots={k: run_dir / v for k, v in files["plots"].items()},
    )


# -- study set-up -------------------------------------------------------------------------------------


def _spec(job: _Job) -> dict[str, Any]:
    """What must match for two processes to share one study (JSON-normalised)."""
    return json.loads(json.dumps({"space": job.space, "metric": job.metric, "direction": job.direction,
                                  "sampler": job.sampler, "n_trials": job.n_trials}, default=str))


def _wait_for(get: Callable[[], Any]) -> Any:
    """Poll ``get`` for up to 30 s until it returns something (another worker is setting the study up)."""
    for _ in range(300):
        value = get()
        if value:
            return value
        time.sleep(0.1)
    return None


def _check_spec(study: Any, job: _Job) -> None:
    """Joining a study another process started: it must search the same space for the same metric."""
    spec = _spec(job)
    stored = _wait_for(lambda: study.user_attrs.get(SPEC_ATTR))
    if stored is None:
        raise UserError(f"study {job.study_name!r} exists but was not made by cnnlab tune; use another --name")
    for key in ("space", "metric", "direction", "sampler"):
        if stored.get(key) != spec[key]:
            raise UserError(f"search {job.study_name!r} was started with a different {key} "
                            f"({stored.get(key)!r}); use another --name for a new search")
    if stored.get("n_trials") != spec["n_trials"]:
        study.set_user_attr(SPEC_ATTR, {**stored, "n_trials": spec["n_trials"]})


def _open_study(job: _Job, create: bool, worker: int = 0) -> Any:
    """Create the study (``create``) or join it; a grid study gets its points queued once."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    kwargs = dict(study_name=job.study_name, storage=open_storage(job.storage_url),
                  sampler=_make_sampler(job, worker, 0), pruner=_make_pruner(job))
    study = None
    if create:
        with contextlib.suppress(optuna.exceptions.DuplicatedStudyError):
            study = optuna.create_study(direction=job.direction, **kwargs)
    if study is not None:
        study.set_user_attr(SPEC_ATTR, _spec(job))
        if job.sampler == "grid":
            for i, point in enumerate(SearchSpace.from_dict(job.space).grid_points()):
                study.enqueue_trial(point, user_attrs={GRID_ATTR: i}, skip_if_exists=False)
            study.set_user_attr(READY_ATTR, True)
    else:
        try:
            study = optuna.load_study(**kwargs)
        except KeyError:
            raise UserError(f"no study {job.study_name!r} in {mask_url(job.storage_url)}") from None
        if study.direction.name.lower() != job.direction:
            raise UserError(f"search {job.study_name!r} {study.direction.name.lower()}s its metric; "
                            f"use another --name for a {job.direction} search")
        if create:
            _check_spec(study, job)
        if job.sampler == "grid":
            _wait_for(lambda: study.user_attrs.get(READY_ATTR))
    # each worker samples from its own stream, which also differs after a resume
    study.sampler = _make_sampler(job, worker, len(study.get_trials(deepcopy=False)))
    return study


def _make_sampler(job: _Job, worker: int, n_existing: int) -> Any:
    import optuna

    salt = f"{socket.gethostname()}:{os.getpid()}" if job.shared else ""
    seed = (job.seed * 1_000_003 + worker * 7919 + n_existing * 104_729 + zlib.crc32(salt.encode())) % (2**31)
    if job.sampler == "tpe":
        with quiet_experimental():
            return optuna.samplers.TPESampler(seed=seed, n_startup_trials=max(3, min(10, job.n_trials // 4)))
    # random, and grid (whose points all come from the queue; the sampler never picks them)
    return optuna.samplers.RandomSampler(seed=seed)


def _make_pruner(job: _Job) -> Any:
    import optuna

    if job.pruner == "none":
        return optuna.pruners.NopPruner()
    if job.pruner == "hyperband":
        epochs = job.base.get("epochs")
        tuned = "epochs" in job.space
        max_resource = int(epochs) if isinstance(epochs, int) and not tuned and epochs > 1 else "auto"
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max_resource, reduction_factor=3)
    return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=2)


# -- the worker loop ------------------------------------------------------------------------------


def _count(study: Any, finished: bool = False, before: int | None = None) -> int:
    """Trials within the budget (not surplus): finished ones, or all live ones (numbered below ``before``)."""
    from optuna.trial import TrialState

    states = [TrialState.COMPLETE, TrialState.PRUNED]
    if not finished:
        states += [TrialState.RUNNING, TrialState.WAITING]
    return sum(1 for t in study.get_trials(deepcopy=False, states=states)
               if not t.user_attrs.get(SURPLUS) and (before is None or t.number < before))


def _has_room(study: Any, job: _Job) -> bool:
    from optuna.trial import TrialState

    if job.sampler == "grid":
        return bool(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))
    return _count(study) < job.n_trials


def _is_surplus(study: Any, trial: Any, job: _Job) -> bool:
    """True for a trial another worker's race pushed past the budget (or off the grid queue)."""
    if job.sampler == "grid":
        return GRID_ATTR not in trial.user_attrs
    return _count(study, before=trial.number) >= job.n_trials


def work(job: _Job, worker: int = 0, on_trial_end: Callable[[], None] | None = None,
         study: Any = None) -> None:
    """Run trials until the budget (or the grid) is used up."""
    import optuna

    if study is None:
        study = _open_study(job, create=False, worker=worker)
    while True:
        fail_stale(study, job.storage_url)
        with ask_lock(job.storage_url):
            if not _has_room(study, job):
                break
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # "heartbeat is meant for optimize": we beat ourselves
                trial = study.ask()
            surplus = _is_surplus(study, trial, job)
        if surplus:
            trial.set_user_attr(SURPLUS, True)
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            break
        _run_trial(study, trial, job)
        if on_trial_end is not None:
            on_trial_end()


def _worker_main(job: _Job, worker: int, threads: int) -> None:
    """Entry point of a spawned worker process."""
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    os.environ.setdefault("MPLBACKEND", "Agg")
    work(job, worker)


def _run_trial(study: Any, trial: Any, job: _Job) -> None:
    import optuna

    params = SearchSpace.from_dict(job.space).suggest(trial)
    config = apply_params({"verbose": 0, **job.base}, params)  # the search shows its own progress
    run_dir = Path(job.run_dir) / TRIALS_DIR / f"trial_{trial.number:04d}"
    trial.set_user_attr("run_dir", str(Path(TRIALS_DIR) / run_dir.name))
    callbacks = [] if job.pruner == "none" else [make_pruning_callback(trial, job.metric)]
    train = job.train_fn or cnnlab_train
    with heartbeat(study._storage, trial._trial_id):
        try:
            metrics = dict(train(config, callbacks, run_dir))
            value = metric_value(metrics, job.metric)
        except optuna.TrialPruned:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            return
        except BaseException as e:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            if not isinstance(e, UserError):  # a crash or Ctrl-C: queue it again for the resumed search
                # (a bad configuration would fail the same way again; Ctrl-C never counts as a failure)
                requeue(study, trial._trial_id, counted=not isinstance(e, KeyboardInterrupt))
            raise
    trial.set_user_attr("metrics", numeric_metrics(metrics))
    if metrics.get("run_dir"):
        trial.set_user_attr("run_dir", relative(metrics["run_dir"], Path(job.run_dir)))
    study.tell(trial, value)


def make_pruning_callback(trial: Any, metric: str) -> Any:
    """A training Callback that reports ``metric`` each epoch to the trial and prunes hopeless ones."""
    from cnnlab.engine.callbacks import Callback

    class OptunaPruning(Callback):
        """Report the per-epoch validation metric; raise optuna.TrialPruned when the pruner says so."""

        def on_epoch_end(self, trainer: Any, epoch: int, logs: dict[str, Any]) -> None:
            import optuna

            value = logs.get(metric)
            if value is None or isinstance(value, bool):
                return
            trial.report(float(value), step=int(epoch))
            if trial.should_prune():
                raise optuna.TrialPruned(f"trial {trial.number} pruned at epoch {epoch} ({metric}={value:.4g})")

    return OptunaPruning()


def _run_workers(job: _Job, workers: int, study: Any, show: bool) -> None:
    """Run ``workers`` workers (this process for one, spawned processes for more) with a progress bar."""
    with progress_bar("tune", show) as bar:
        task = bar.add_task("tune", total=job.n_trials, completed=_count(study, finished=True), info="")

        def update() -> None:
            best = best_trial(study)
            bar.update(task, completed=min(job.n_trials, _count(study, finished=True)),
                       info="" if best is None else f"best {best.value:.4g} (trial {best.number})")

        if workers == 1:
            work(job, 0, on_trial_end=update, study=study)
        else:
            _spawn_workers(job, workers, update)
        update()


def _spawn_workers(job: _Job, workers: int, update: Callable[[], None]) -> None:
    """Run ``workers`` worker processes, updating the progress every second; the first error stops all."""
    import multiprocessing as mp
    from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait

    threads = max(1, (os.cpu_count() or 1) // workers)
    with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn")) as pool:
        pending = futures = [pool.submit(_worker_main, job, i, threads) for i in range(workers)]
        while pending:
            done, pending = wait(futures, timeout=1.0, return_when=FIRST_EXCEPTION)
            update()
            failed = [f for f in done if f.exception() is not None]
            if failed:
                for f in futures:
                    f.cancel()
                raise failed[0].exception()  # type: ignore[misc]
