"""Training callbacks in the Keras vocabulary: checkpoints, early stopping, history, TensorBoard.

A callback sees the engine (``cnnlab.engine.loop.Engine``, called ``trainer`` in the hooks, Keras'
vocabulary); set ``trainer.stop_training = True`` to stop after the current epoch.
An exception raised in ``on_epoch_end`` (e.g. ``optuna.TrialPruned``) propagates out of the trainer
after the built-in checkpoint callbacks of that epoch have written ``last.pt``.
"""

from __future__ import annotations

import csv
import io
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cnnlab.engine.optim import monitor_mode
from cnnlab.errors import UserError
from cnnlab.io import atomic_write_text, write_json

if TYPE_CHECKING:  # pragma: no cover
    from cnnlab.engine.loop import Engine as Trainer


class Callback:
    """Base class: override any hook. ``state_dict``/``load_state_dict`` make a callback resumable."""

    def on_train_begin(self, trainer: Trainer) -> None:
        """Called once before the first epoch (also after a resume)."""

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, Any]) -> None:
        """Called after each epoch (``epoch`` counts from 1) with the epoch's metrics."""

    def on_train_end(self, trainer: Trainer, logs: dict[str, Any]) -> None:
        """Called once after the last epoch (not when training was interrupted by an exception)."""

    def on_batch_begin(self, trainer: Trainer, step: int) -> None:
        """Called before the forward pass of training step ``step`` (counts from 1 over the run)."""

    def on_after_backward(self, trainer: Trainer, step: int) -> None:
        """Called after the backward pass, before clipping and the optimiser step (gradients are set)."""

    def on_batch_end(self, trainer: Trainer, step: int, loss: float | None) -> None:
        """Called after the optimiser step. ``loss``: the batch loss when a callback asked for it
        (``wants_loss = True``; reading it costs a device sync), else None."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""


def _better(mode: str, value: float, best: float | None, min_delta: float = 0.0) -> bool:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return False
    if best is None:
        return True
    return value > best + min_delta if mode == "max" else value < best - min_delta


def _monitored(logs: dict[str, Any], monitor: str) -> tuple[str, float | None]:
    """The monitored value; without validation data ``val_x`` falls back to ``x`` (training metric)."""
    if logs.get(monitor) is not None:
        return monitor, logs[monitor]
    alt = monitor.removeprefix("val_")
    return alt, logs.get(alt)


class ModelCheckpoint(Callback):
    """Write ``last.pt`` every epoch and ``best.pt`` when ``monitor`` improves (mode auto, as in Keras)."""

    def __init__(self, weights_dir: str | os.PathLike, monitor: str = "val_accuracy", mode: str = "auto",
                 save_last: bool = True, save_period: int = 0):
        self.dir = Path(weights_dir)
        self.monitor = monitor
        self.mode = monitor_mode(monitor) if mode == "auto" else mode
        self.save_last = save_last
        self.save_period = save_period
        self.best: float | None = None
        self.best_epoch: int | None = None

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, Any]) -> None:
        from cnnlab.engine.checkpoint import save_checkpoint

        name, value = _monitored(logs, self.monitor)
        improved = _better(self.mode, value, self.best)
        if improved:
            self.best, self.best_epoch = float(value), epoch
        ckpt = trainer.checkpoint(epoch, logs)  # includes this callback's updated state
        task = getattr(trainer, "task", None)
        targets = ([("last", self.dir / "last.pt")] if self.save_last else []) \
            + ([("best", self.dir / "best.pt")] if improved else []) \
            + ([(f"epoch{epoch}", self.dir / f"epoch{epoch}.pt")]
               if self.save_period and epoch % self.save_period == 0 else [])
        for which, path in targets:
            save_checkpoint(path, ckpt)
            if task is not None:
                task.on_checkpoint(trainer, which, path)

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.best_epoch = state.get("best"), state.get("best_epoch")


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved for ``patience`` epochs."""

    def __init__(self, monitor: str = "val_accuracy", patience: int = 10, min_delta: float = 0.0,
                 mode: str = "auto"):
        self.monitor = monitor
        self.patience = patience
        self.min_delta = min_delta
        self.mode = monitor_mode(monitor) if mode == "auto" else mode
        self.best: float | None = None
        self.wait = 0
        self.stopped_epoch: int | None = None

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, Any]) -> None:
        _, value = _monitored(logs, self.monitor)
        if _better(self.mode, value, self.best, self.min_delta):
            self.best, self.wait = float(value), 0
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = epoch
            trainer.stop_training = True
            trainer.log(f"early stopping: {self.monitor} did not improve for {self.patience} epochs")

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "wait": self.wait}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.wait = state.get("best"), int(state.get("wait", 0))


class HistoryLogger(Callback):
    """``history.csv`` (rewritten atomically every epoch) and ``history.json`` from ``trainer.history``."""

    def __init__(self, run_dir: str | os.PathLike):
        self.run_dir = Path(run_dir)

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, Any]) -> None:
        write_history(self.run_dir, trainer.history)


def write_history(run_dir: str | os.PathLike, history: list[dict[str, Any]]) -> None:
    """Write ``history.csv`` and ``history.json`` atomically."""
    columns: list[str] = []
    for row in history:
        columns += [k for k in row if k not in columns]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in history:
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    atomic_write_text(Path(run_dir) / "history.csv", buf.getvalue())
    write_json(Path(run_dir) / "history.json", history)


class MetricsLogger(Callback):
    """``metrics.json`` rewritten atomically after every epoch while a run trains (``"status":
    "training"``, the epoch's metrics and the best so far), so other commands can read a running run;
    the run's final metrics replace it when training ends."""

    def __init__(self, run_dir: str | os.PathLike, checkpoint: ModelCheckpoint | None = None):
        self.run_dir, self.checkpoint = Path(run_dir), checkpoint

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, Any]) -> None:
        row: dict[str, Any] = {"status": "training", "epoch": epoch, "epochs": getattr(trainer, "epochs", None)}
        cp = self.checkpoint
        if cp is not None and cp.best_epoch is not None:
            row.update({"best_epoch": cp.best_epoch, "monitor": cp.monitor, f"best_{cp.monitor}": cp.best})
        row.update({k: v for k, v in logs.items() if isinstance(v, (int, float, str)) and k not in row})
        write_json(self.run_dir / "metrics.json", row)


class ProgressLogger(Callback):
    """One line per epoch: metrics, learning rate, time and throughput."""

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, Any]) -> None:
        trainer.log(trainer.task.epoch_line(epoch, trainer.epochs, logs))


class TensorBoard(Callback):
    """Scalars of every epoch to ``<run>/tensorboard`` (needs the ``tensorboard`` package)."""

    def __init__(self, log_dir: str | os.PathLike):
        self.check_available()
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(log_dir))

    @staticmethod
    def check_available() -> None:
        """A one-line UserError when the tensorboard package is missing."""
        try:
            import tensorboard  # noqa: F401
        except ImportError:
            raise UserError("tensorboard logging needs the 'tensorboard' package: pip install tensorboard") from None

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, Any]) -> None:
        for k, v in logs.items():
            if isinstance(v, (int, float)) and k != "epoch":
                self.writer.add_scalar(k, v, epoch)
        self.writer.flush()

    def on_train_end(self, trainer: Trainer, logs: dict[str, Any]) -> None:
        self.writer.close()

