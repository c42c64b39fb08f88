"""Run a task on the engine with a run folder: new runs, resumed runs, default callbacks, metrics.json.

    engine, metrics = fit_task(task, cfg, callbacks=[...])             # a new run folder
    run_dir, cfg, ckpt = load_resume("runs/classify/exp", TrainConfig, {"epochs": 20}, "cnnlab.classify")
    engine, metrics = fit_task(task, cfg, ckpt=ckpt, run_dir=run_dir)  # continue it exactly
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from cnnlab.config.run import RunConfig
from cnnlab.engine.callbacks import (
    Callback,
    EarlyStopping,
    HistoryLogger,
    MetricsLogger,
    ModelCheckpoint,
    ProgressLogger,
    TensorBoard,
)
from cnnlab.engine.loop import Engine
from cnnlab.engine.runlock import check_not_running, run_lock
from cnnlab.engine.seeding import run_context, seed_everything
from cnnlab.engine.task import Task
from cnnlab.errors import UserError
from cnnlab.runs import CONFIG, new_run_dir, write_run_config, write_run_metrics


def default_callbacks(cfg: RunConfig, run_dir: Path, user: Sequence[Callback] = ()) -> list[Callback]:
    """Built-in callbacks first (history, progress line, early stopping, checkpoints, TensorBoard), then
    the user's."""
    cbs: list[Callback] = [HistoryLogger(run_dir)]
    if cfg.verbose:
        cbs.append(ProgressLogger())
    if cfg.patience:
        cbs.append(EarlyStopping(cfg.monitor, cfg.patience, cfg.min_delta))
    checkpoint = ModelCheckpoint(run_dir / "weights", cfg.monitor, save_period=cfg.save_period)
    cbs += [checkpoint, MetricsLogger(run_dir, checkpoint)]
    if cfg.tensorboard:
        cbs.append(TensorBoard(run_dir / "tensorboard"))
    if cfg.diagnostics:
        from cnnlab.engine.diagnostics import Diagnostics

        cbs.append(Diagnostics(run_dir, cfg.diagnostics, tensorboard=cfg.tensorboard, plots=cfg.plots))
    return cbs + list(user)


def printer(verbose: int) -> Callable[[str], None]:
    """``say(msg)``: one plain line on stdout unless ``verbose`` is 0."""
    def say(msg: str) -> None:
        if verbose:
            from rich.console import Console

            Console(highlight=False).print(msg, soft_wrap=True, markup=False)

    return say


def fit_task(task: Task, cfg: RunConfig, *, ckpt: dict[str, Any] | None = None, run_dir: Path | None = None,
             callbacks: Sequence[Callback] = (), log: Callable[[str], None] | None = None,
             resume_hint: str = "cnnlab train --resume") -> tuple[Engine, dict[str, Any]]:
    """Set up ``task`` (data, model), create or reuse the run folder, train, finish; returns the engine
    and the final metrics (also written to ``metrics.json``)."""
    from cnnlab.devices import resolve_device
    from cnnlab.engine import distributed
    from cnnlab.engine.optim import check_config

    world = distributed.setup()  # torchrun: join the process group; otherwise one process, as always
    main = world.main
    say = (log or printer(cfg.verbose)) if main else (lambda _msg: None)
    with run_context(cfg.threads, cfg.deterministic):
        device = distributed.local_device(resolve_device(cfg.device))
        check_config(cfg.optim())
        if cfg.sync_bn and world.distributed and device.type != "cuda":
            distributed.convert_sync_bn(torch.nn.Module(), device)  # the one-line error, before any data
        if cfg.tensorboard and main:
            TensorBoard.check_available()
        seed_everything(cfg.seed, cfg.deterministic)
        if device.type == "cuda" and not cfg.deterministic:
            torch.backends.cudnn.benchmark = True
        task.resume_ckpt = ckpt
        with distributed.local_main_first():  # downloads and caches once per machine
            model, loader = task.setup(cfg, device)
        if run_dir is None:
            def create() -> Path:
                new = new_run_dir(cfg.project, task.name, cfg.name, exist_ok=cfg.exist_ok)
                write_run_config(new, task.run_config())
                return new

            run_dir = distributed.on_main(create)  # only rank 0 writes the run folder
        task.run_dir = run_dir if main else None
        if main:
            task.started(run_dir, device, say)
            if world.distributed:
                say(f"distributed: {world.size} processes, global batch {cfg.batch} "
                    f"(~{cfg.batch // world.size} per process), {'NCCL' if device.type == 'cuda' else 'gloo'}")
        cbs = default_callbacks(cfg, run_dir, callbacks) if main else []
        engine = Engine(task, cfg, model, loader, callbacks=cbs, device=device, run_dir=run_dir, log=say)
        with run_lock(run_dir) if main else contextlib.nullcontext():   # rank 0 owns the folder
            if ckpt is not None:
                engine.load_checkpoint(ckpt)
                if main:
                    _rewrite_checkpoint_files(engine, task, ckpt, run_dir)
                say(f"resuming after epoch {engine.epoch} of {engine.epochs} ({run_dir})")
            try:
                engine.fit()
            except KeyboardInterrupt:
                nproc = f" --nproc {world.size}" if world.distributed else ""
                say(f"interrupted after epoch {engine.epoch}; continue with: {resume_hint} {run_dir}{nproc}")
                raise

            def finish() -> dict[str, Any]:
                metrics = task.finish(engine)
                write_run_metrics(run_dir, metrics)
                return metrics

            metrics = distributed.on_main(finish)  # rank 0 evaluates and writes; every rank returns them
            distributed.barrier()                  # every rank has received them before any moves on
    return engine, metrics


def _rewrite_checkpoint_files(engine: Engine, task: Task, ckpt: dict[str, Any], run_dir: Path) -> None:
    """A kill between ``last.pt``/``best.pt`` and the task's files beside them (Darknet ``.cfg``/``.weights``)
    leaves those stale: the restored engine holds that epoch's state, so write them again."""
    best_epoch = ((ckpt.get("callbacks") or {}).get("ModelCheckpoint") or {}).get("best_epoch")
    weights = run_dir / "weights"
    for which in ("last", "best") if best_epoch == engine.epoch else ("last",):
        task.on_checkpoint(engine, which, weights / f"{which}.pt")


def find_last(resume: str | os.PathLike, fmt: str | None = None) -> tuple[Path, Path]:
    """``(run folder, weights/last.pt)`` of a run folder or of a checkpoint file inside one.

    A folder another process is training (its ``.lock`` held) is refused. Unfinished atomic writes
    (``.<name>.<random>.tmp``, left when the process was killed while writing a checkpoint or a log) are
    removed from the run folder and its ``weights/``. A run killed before its
    first checkpoint was complete has nothing to resume: one line says how to start it again.
    """
    p = Path(resume)
    if p.is_file():
        run_dir = p.parent.parent if p.parent.name == "weights" else p.parent
    elif p.is_dir():
        run_dir = p
    else:
        raise UserError(f"nothing to resume: {p} does not exist (give a run folder)")
    check_not_running(run_dir)   # its unfinished writes are another process's work in progress
    removed = 0
    for folder in (run_dir, run_dir / "weights"):
        leftovers = [f for f in folder.glob(".*.tmp") if f.is_file()] if folder.is_dir() else []
        for f in leftovers:
            try:
                f.unlink()
                removed += 1
            except FileNotFoundError:  # pragma: no cover - removed meanwhile
                pass
            except OSError as e:
                raise UserError(f"cannot resume {run_dir}: cannot remove the unfinished file {f} "
                                f"({e.strerror or e})") from None
    if p.is_file():
        return run_dir, p
    last = p / "weights" / "last.pt"
    if not last.is_file():
        cleaned = f"; removed {removed} unfinished file(s)" if removed else ""
        command = {"cnnlab.detect": "cnnlab detect-train", "cnnlab.localize": "cnnlab localize-train",
                   "cnnlab.segment": "cnnlab segment-train"}.get(fmt or "", "cnnlab train")
        again = (f"start it again with: {command} --config {p / CONFIG}" if (p / CONFIG).is_file()
                 else "start it again (it has no config.yaml either)")
        raise UserError(f"cannot resume {p}: no epoch was completed (no weights/last.pt{cleaned}); {again}")
    return p, last


def load_resume_any_rank(resume: str | os.PathLike, config_cls: type[RunConfig], overrides: dict[str, Any],
                         fmt: str) -> tuple[Path, RunConfig, dict[str, Any]]:
    """:func:`load_resume` on rank 0 (which reads and repairs the run folder), its result on every rank
    (the other machines of a multi-node run need no copy of the run folder)."""
    from cnnlab.engine import distributed

    distributed.setup()

    def load() -> tuple[Path, dict[str, Any], dict[str, Any]]:
        run_dir, cfg, ckpt = load_resume(resume, config_cls, overrides, fmt)
        return run_dir, cfg.to_dict(), ckpt

    run_dir, values, ckpt = distributed.on_main(load)
    return run_dir, config_cls.from_dict(values), ckpt


def load_resume(resume: str | os.PathLike, config_cls: type[RunConfig], overrides: dict[str, Any],
                fmt: str) -> tuple[Path, RunConfig, dict[str, Any]]:
    """The run folder, config (saved options + allowed overrides) and checkpoint to continue.

    Every field the engine restores is checked first (a malformed ``last.pt`` is one UserError line).
    When the run was killed while writing ``best.pt`` of its last epoch, ``best.pt`` is restored from
    ``last.pt`` (both hold that epoch), so the final evaluation never reads an older best.
    """
    from cnnlab.engine.checkpoint import check_checkpoint
    from cnnlab.engine.distributed import check_resume_world
    from cnnlab.io import atomic_path, torch_load_safe
    from cnnlab.runs import read_run_config

    run_dir, last = find_last(resume, fmt)
    ckpt = torch_load_safe(last)
    if not isinstance(ckpt, dict) or ckpt.get("format") != fmt or "optimizer" not in ckpt:
        raise UserError(f"{last}: not a resumable {fmt} checkpoint (weights/last.pt of a run made by this "
                        "cnnlab)")
    check_checkpoint(ckpt, last, resumable=True)
    check_resume_world(ckpt.get("world_size"), str(run_dir))
    saved = ckpt.get("config") or {}
    if (run_dir / CONFIG).is_file():
        saved = {**saved, **read_run_config(run_dir)}
    cfg = config_cls.resume_config(saved, overrides, source=str(run_dir / CONFIG))
    done = ckpt["epoch"]
    if done >= cfg.total_epochs:
        raise UserError(f"{run_dir} already completed {done} of {cfg.total_epochs} epochs "
                        "(pass --epochs N to train longer)")
    best_state = (ckpt.get("callbacks") or {}).get("ModelCheckpoint") or {}
    best = last.parent / "best.pt"
    best_epoch = best_state.get("best_epoch")
    if isinstance(best_epoch, int) and best_epoch == done and last.name == "last.pt":
        try:
            peek = torch_load_safe(best, mmap=True) if best.is_file() else None
        except UserError:
            peek = None
        if not isinstance(peek, dict) or not isinstance(peek.get("epoch"), int) or peek["epoch"] != done:
            import shutil  # killed while writing best.pt: last.pt holds that same checkpoint

            with atomic_path(best) as tmp:
                shutil.copyfile(last, tmp)
    if "epochs" in overrides:
        current = read_run_config(run_dir) if (run_dir / CONFIG).is_file() else {}
        write_run_config(run_dir, {**current, "epochs": cfg.epochs})
    return run_dir, cfg, ckpt
