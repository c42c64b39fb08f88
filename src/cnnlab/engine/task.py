"""The task contract: what a training task supplies to the one engine.

A task is a small plug-in. The engine (``cnnlab.engine.loop.Engine``) owns the epoch loop, resume,
EMA, AMP, ``channels_last``, gradient clipping, callbacks (checkpoints, early stopping, history,
TensorBoard, progress), devices, threads and seeding. A task supplies only:

- ``setup(cfg, device)``: build its data and model; returns ``(model, train_loader)``;
- ``loss(model, batch)``: the loss of one batch and what to log of it (sums over the batch);
- ``validate(model)``: validation metrics (``val_*``, mAP...);
- ``fitness(logs)``: what "best" means when ``monitor`` is ``fitness`` (higher is better);
- ``plots(run_dir, history)`` and ``finish(engine)``: its pictures and its final metrics.

Everything else has a sensible default below. The train loader follows the data contract: iterating
yields batches, ``len(loader)`` is the number of batches, and ``loader.set_epoch(e)`` makes the
epoch's order and augmentation a pure function of (seed, e), which is what makes resume exact.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

if TYPE_CHECKING:  # pragma: no cover
    from cnnlab.config.run import RunConfig
    from cnnlab.engine.loop import Engine


class Task:
    """Base class of every training task; override the hooks your task needs."""

    #: run folders go to <project>/<name>/<run name>; checkpoints carry format "cnnlab.<name>"
    name: str = "task"
    #: metric keys of a training epoch (the engine averages ``loss`` sums over the images seen)
    train_keys: tuple[str, ...] = ("loss",)
    #: the model method a training step calls (``loss`` gets a module whose ``forward`` is that method;
    #: in a distributed run it is wrapped in DistributedDataParallel)
    train_method: str = "forward"
    #: "mean": ``loss`` is a mean over the batch; "sum": it grows with the batch (a distributed run
    #: scales each rank's loss so a step is the step of the global batch)
    loss_reduction: str = "mean"

    def __init__(self, cfg: RunConfig) -> None:
        self.cfg = cfg
        self.run_dir: Path | None = None
        self.resume_ckpt: dict[str, Any] | None = None   # the checkpoint being resumed (set before setup)

    @property
    def resuming(self) -> bool:
        return self.resume_ckpt is not None

    # -- what every task supplies -----------------------------------------------------------------
    def setup(self, cfg: RunConfig, device: torch.device) -> tuple[nn.Module, Any]:
        """Build the data and the model; return ``(model, train_loader)``."""
        raise NotImplementedError

    def loss(self, model: nn.Module, batch: Any, engine: Engine) -> tuple[torch.Tensor, dict[str, torch.Tensor], int]:
        """``(loss to minimise, {key: sum over the batch}, batch size)`` of one training batch; ``model(x)``
        runs ``train_method`` (in a distributed run, through DDP)."""
        raise NotImplementedError

    def validate(self, model: nn.Module, engine: Engine) -> dict[str, Any]:
        """Validation metrics of ``model`` (the EMA weights when EMA is on)."""
        return {}

    def fitness(self, logs: dict[str, Any]) -> float | None:
        """Higher is better; None when the epoch has no validation."""
        return None

    def finish(self, engine: Engine) -> dict[str, Any]:
        """Final metrics of the run (written to metrics.json by the engine's runner)."""
        return {}

    def plots(self, run_dir: Path, history: list[dict[str, Any]]) -> None:
        """The task's pictures of the run so far."""

    # -- optional hooks -----------------------------------------------------------------------------
    def run_config(self) -> dict[str, Any]:
        """What ``config.yaml`` of a new run folder holds (enough to re-run it)."""
        return self.cfg.to_dict()

    def started(self, run_dir: Path, device: torch.device, say: Any) -> None:
        """Announce the run (one or two lines)."""

    def to_device(self, batch: Any, device: torch.device, channels_last: bool) -> Any:
        """Move a batch (``(x, y)`` by default) to the device; images in NHWC when asked."""
        x, y = batch
        x = x.to(device, non_blocking=True)
        if channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        if isinstance(y, torch.Tensor):
            y = y.to(device, non_blocking=True)
        return x, y

    def train_mode(self, model: nn.Module) -> None:
        """Put the model in training mode (a task may keep frozen layers in eval mode)."""
        model.train()

    def on_epoch_start(self, engine: Engine, epoch: int) -> None:
        """Called before each training epoch (``epoch`` counts from 1)."""

    def on_epoch_end(self, engine: Engine, epoch: int, logs: dict[str, Any]) -> None:
        """Called after each epoch, before the callbacks."""

    def should_validate(self, epoch: int, last: bool) -> bool:
        return True

    def total_epochs(self) -> int:
        return self.cfg.total_epochs

    def checkpoint_meta(self, engine: Engine) -> dict[str, Any]:
        """What inference needs besides the weights (classes, preprocessing, architecture)."""
        return {}

    def on_checkpoint(self, engine: Engine, which: str, path: Path) -> None:
        """Called after ``weights/<which>.pt`` was written (e.g. to export it in another format too)."""

    def state_dict(self) -> dict[str, Any]:
        """Task state to resume (e.g. the fine-tuning phase)."""
        return {}

    def load_state_dict(self, engine: Engine, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` (called before the optimiser state is loaded)."""

    def epoch_line(self, epoch: int, epochs: int, logs: dict[str, Any]) -> str:
        """The one line printed after each epoch."""
        parts = [f"epoch {epoch}/{epochs}"]
        for key in self.train_keys + tuple(k for k in logs if k.startswith("val_") or k in ("mAP50", "mAP50_95")):
            v = logs.get(key)
            if isinstance(v, float):
                parts.append(f"{key} {v:.4f}")
        parts.append(f"lr {logs['lr']:.3g}")
        parts.append(f"{logs['epoch_time']:.1f}s ({logs['images_per_s']:.0f} img/s)")
        return "  ".join(parts)
