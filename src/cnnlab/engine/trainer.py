"""The training loop: one function per epoch (torchvision reference style), Keras-like ``fit``/``evaluate``.

Resuming is exact on CPU: the loader's ``set_epoch`` makes batches a pure function of (seed, epoch),
global RNGs are re-seeded from (seed, epoch) at the start of every epoch, and the checkpoint holds the
model, optimiser, schedule, EMA, AMP scaler, callback states and history.
"""

from __future__ import annotations

import contextlib
import os
import random
import time
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from cnnlab.config import TrainConfig
from cnnlab.engine.callbacks import Callback
from cnnlab.engine.checkpoint import rng_state, set_rng_state
from cnnlab.engine.ema import ModelEMA
from cnnlab.engine.metrics import ClassificationMeter
from cnnlab.engine.optim import Schedule, create_optimizer, l1_penalty
from cnnlab.errors import UserError
from cnnlab.models.transfer import set_frozen_bn_eval


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` -> CUDA when available, else CPU; an unavailable CUDA request is a UserError."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise UserError(f"unknown device {device!r} (use auto, cpu or cuda[:N])") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device {device!r} requested but CUDA is not available")
    return dev


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed Python, NumPy and torch; optionally make torch use deterministic algorithms only."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True


def epoch_seed(seed: int, epoch: int) -> int:
    """Seed of the global RNGs during ``epoch`` (dropout, stochastic depth...): a pure function."""
    return (seed * 1_000_003 + epoch * 7919) % 2**31


def _set_loader_epoch(loader: Any, epoch: int) -> None:
    for obj in (loader, getattr(loader, "sampler", None), getattr(loader, "batch_sampler", None)):
        if obj is not None and hasattr(obj, "set_epoch"):
            obj.set_epoch(epoch)
            return


@torch.no_grad()
def evaluate_model(model: nn.Module, loader: Iterable, num_classes: int, device: torch.device | str = "cpu",
                   tta: bool = False, confusion: bool = False, amp: bool = False,
                   channels_last: bool = False, progress: bool = False) -> tuple[dict[str, float], Any]:
    """Loss (plain cross-entropy), top-1/top-5 accuracy, images/s; with ``confusion`` also the meter.

    ``tta`` averages the softmax of each image and its horizontal mirror.
    """
    device = torch.device(device)
    model.eval()
    meter = ClassificationMeter(num_classes, confusion=confusion)
    ce = nn.CrossEntropyLoss()
    use_amp = amp and device.type == "cuda"
    start = time.perf_counter()
    bar = _Bar("evaluate", _safe_len(loader)) if progress else contextlib.nullcontext(None)
    with bar as prog:
        task = prog.add_task("evaluate", total=_safe_len(loader)) if prog is not None else None
        for x, y in loader:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, enabled=use_amp):
                logits = model(x)
                if tta:
                    probs = (logits.float().softmax(1) + model(x.flip(-1)).float().softmax(1)) / 2
                    logits = probs.clamp_min(1e-12).log()
            logits = logits.float()
            meter.update(logits, y, ce(logits, y))
            if prog is not None:
                prog.advance(task)
    elapsed = time.perf_counter() - start
    logs = meter.result()
    logs["images"] = meter.n
    logs["images_per_s"] = meter.n / elapsed if elapsed > 0 else float("nan")
    return logs, meter


def _safe_len(loader: Any) -> int | None:
    try:
        return len(loader)
    except TypeError:
        return None


def _interactive() -> bool:
    from rich.console import Console

    return Console().is_terminal


class _Bar:
    """A transient rich progress bar with a free-text info field."""

    def __init__(self, label: str, total: int | None):
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[info]}"), TimeElapsedColumn(),
                                 TimeRemainingColumn(), transient=True)
        self.label, self.total = label, total

    def __enter__(self):
        self.progress.__enter__()
        return self

    def __exit__(self, *exc):
        return self.progress.__exit__(*exc)

    def add_task(self, description: str, total: int | None = None):
        return self.progress.add_task(description, total=total, info="")

    def advance(self, task, info: str | None = None) -> None:
        if info is None:
            self.progress.advance(task)
        else:
            self.progress.update(task, advance=1, info=info)


class Trainer:
    """Fits a classifier: ``Trainer(model, cfg, train_loader, val_loader).fit()`` (Keras ``model.fit``)."""

    def __init__(self, model: nn.Module, config: TrainConfig, train_loader: Iterable,
                 val_loader: Iterable | None = None, *, num_classes: int,
                 callbacks: Sequence[Callback] = (), meta: dict[str, Any] | None = None,
                 device: str | torch.device | None = None):
        self.cfg = config
        self.device = resolve_device(device if device is not None else config.device)
        self.cuda = self.device.type == "cuda"
        self.model = model.to(self.device)
        if config.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.train_loader, self.val_loader = train_loader, val_loader
        self.num_classes = num_classes
        self.steps_per_epoch = _safe_len(train_loader) or 1
        self.optimizer = create_optimizer(self.model, config)
        self.schedule = Schedule(self.optimizer, config, self.steps_per_epoch)
        self.ema = ModelEMA(self.model, config.ema, config.ema_warmup) if config.ema else None
        self.criterion = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
        self.amp = bool(config.amp and self.cuda)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        self.callbacks = list(callbacks)
        self.meta = dict(meta or {})
        self.epochs = config.total_epochs  # both fine-tuning phases
        self.phase = 1                 # 2 once `unfreeze` took effect (after config.epochs)
        self.epoch = 0                 # completed epochs
        self.global_step = 0
        self.history: list[dict[str, Any]] = []
        self.stop_training = False
        self.train_time = 0.0

    # -- Keras-like entry points ------------------------------------------------------------------

    @property
    def eval_model(self) -> nn.Module:
        """The weights used for evaluation: the EMA copy when EMA is on."""
        return self.ema.module if self.ema is not None else self.model

    def fit(self, epochs: int | None = None) -> list[dict[str, Any]]:
        """Train from the current epoch up to ``epochs``; returns the history (one dict per epoch)."""
        self.epochs = epochs or self.epochs
        self.stop_training = False
        for cb in self.callbacks:
            cb.on_train_begin(self)
        for epoch in range(self.epoch + 1, self.epochs + 1):
            logs = self.run_epoch(epoch)
            for cb in self.callbacks:
                cb.on_epoch_end(self, epoch, logs)
            if self.stop_training:
                break
        final = self.history[-1] if self.history else {}
        for cb in self.callbacks:
            cb.on_train_end(self, final)
        return self.history

    def evaluate(self, loader: Iterable, tta: bool = False, confusion: bool = False) -> dict[str, Any]:
        """Loss and accuracies of the evaluation weights on ``loader`` (Keras ``model.evaluate``)."""
        logs, meter = evaluate_model(self.eval_model, loader, self.num_classes, self.device, tta=tta,
                                     confusion=confusion, amp=self.amp,
                                     channels_last=self.cfg.channels_last)
        if confusion:
            logs["confusion"] = meter.matrix
        return logs

    # -- one epoch --------------------------------------------------------------------------------

    def run_epoch(self, epoch: int) -> dict[str, Any]:
        """Train one epoch, validate, step the epoch schedule and record the history row."""
        seed = epoch_seed(self.cfg.seed, epoch)
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)
        _set_loader_epoch(self.train_loader, epoch - 1)
        if self.phase == 1 and self.cfg.unfreeze_epochs and epoch > self.cfg.epochs:
            self.enter_phase2()
        lr = self.schedule.lr
        start = time.perf_counter()
        logs: dict[str, Any] = {"epoch": epoch, **self.train_one_epoch(epoch)}
        elapsed = time.perf_counter() - start
        self.train_time += elapsed
        if self.val_loader is not None:
            val, _ = evaluate_model(self.eval_model, self.val_loader, self.num_classes, self.device,
                                    amp=self.amp, channels_last=self.cfg.channels_last)
            logs.update({f"val_{k}": v for k, v in val.items() if k in ("loss", "accuracy", "top5_accuracy")})
        n = logs.pop("images")
        logs.update(lr=lr, epoch_time=elapsed, images_per_s=n / elapsed if elapsed > 0 else float("nan"))
        self.schedule.step_epoch(logs)
        self.epoch = epoch
        self.history.append(logs)
        return logs

    def enter_phase2(self) -> None:
        """Fine-tuning phase 2: apply ``unfreeze``, new optimiser and schedule at the phase-2 rate."""
        from cnnlab.models.transfer import freeze

        p2 = self.cfg.phase2()
        info = freeze(self.model, p2.freeze)
        self.optimizer = create_optimizer(self.model, p2)
        self.schedule = Schedule(self.optimizer, p2, self.steps_per_epoch)
        self.phase = 2
        self.log(f"phase 2: unfreeze={p2.freeze} -> {info['trainable']:,} trainable parameters, lr {p2.lr:g}, "
                 f"{p2.epochs} epochs")

    def train_one_epoch(self, epoch: int, loader: Iterable | None = None) -> dict[str, Any]:
        """One pass over the training loader (or ``loader``); returns loss, accuracies and images seen."""
        model, cfg = self.model, self.cfg
        loader = self.train_loader if loader is None else loader
        model.train()
        if cfg.freeze_bn:
            set_frozen_bn_eval(model)
        loss_sum = torch.zeros((), device=self.device)
        hits = torch.zeros(2, dtype=torch.int64, device=self.device)
        seen = 0
        total = _safe_len(loader)
        show = cfg.verbose == 1 and _interactive()
        bar = _Bar(f"epoch {epoch}/{self.epochs}", total) if show else contextlib.nullcontext(None)
        with bar as prog:
            task = prog.add_task(f"epoch {epoch}/{self.epochs}", total=total) if prog is not None else None
            for i, (x, y) in enumerate(loader):
                x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
                if cfg.channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                with torch.autocast(self.device.type, enabled=self.amp):
                    logits = model(x)
                    loss = self.criterion(logits, y)
                if cfg.l1:
                    loss = loss + cfg.l1 * l1_penalty(model)
                if (not self.cuda or i % 20 == 0) and not torch.isfinite(loss):  # a sync on CUDA: sample it
                    raise UserError(f"training diverged at epoch {epoch}, step {i + 1} (loss {float(loss)}); "
                                    "lower the learning rate or add gradient clipping")
                self.optimizer.zero_grad(set_to_none=True)
                self.scaler.scale(loss).backward()
                if cfg.grad_clip:
                    self.scaler.unscale_(self.optimizer)
                    nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                self.scaler.step(self.optimizer)
                self.scaler.update()
                self.schedule.step_batch()
                self.global_step += 1
                if self.ema is not None:
                    self.ema.update(model)
                with torch.no_grad():
                    n = x.shape[0]
                    loss_sum += loss.detach().float() * n
                    target = y.argmax(1) if y.ndim == 2 else y
                    top = logits.detach().topk(min(5, logits.shape[1]), 1).indices.eq(target.view(-1, 1))
                    hits += torch.stack([top[:, 0].sum(), top.any(1).sum()])
                    seen += n
                if prog is not None and (i % 10 == 0 or i + 1 == total):
                    prog.advance(task, info=f"loss {float(loss_sum) / seen:.4f}  acc {int(hits[0]) / seen:.4f}")
                elif prog is not None:
                    prog.advance(task)
        seen = max(seen, 1)
        h = hits.tolist()
        return {"loss": float(loss_sum) / seen, "accuracy": h[0] / seen, "top5_accuracy": h[1] / seen,
                "images": seen}

    # -- checkpoints and resume -------------------------------------------------------------------

    def checkpoint(self, epoch: int, logs: dict[str, Any] | None = None) -> dict[str, Any]:
        """Plain-data checkpoint of the current state (see cnnlab.engine.checkpoint for the format)."""
        return {
            "model_spec": self.meta.get("model_spec") or getattr(self.model, "cnnlab_spec", None),
            "model": _cpu_state(self.model.state_dict()),
            "ema": _cpu_state(self.ema.state_dict()) if self.ema is not None else None,
            "ema_updates": self.ema.updates if self.ema is not None else 0,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.schedule.state_dict(),
            "scaler": self.scaler.state_dict() if self.amp else None,
            "epoch": epoch,
            "phase": self.phase,
            "global_step": self.global_step,
            "train_time": self.train_time,
            "rng": rng_state(),
            "config": self.meta.get("config") or self.cfg.to_dict(),
            "classes": self.meta.get("classes"),
            "preprocess": self.meta.get("preprocess"),
            "metrics": dict(logs or {}),
            "history": list(self.history),
            "callbacks": {type(cb).__name__: cb.state_dict() for cb in self.callbacks if cb.state_dict()},
        }

    def load_checkpoint(self, ckpt: dict[str, Any]) -> None:
        """Restore everything :meth:`checkpoint` saved, to continue after epoch ``ckpt['epoch']``."""
        from cnnlab.engine.checkpoint import load_weights

        load_weights(self.model, ckpt["model"], ckpt.get("model_spec"), "checkpoint")
        if int(ckpt.get("phase", 1)) == 2 and self.phase == 1:
            self.enter_phase2()
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.schedule.load_state_dict(ckpt["scheduler"])
        if self.ema is not None:
            if ckpt.get("ema") is None:
                raise UserError("cannot resume with EMA on: the checkpoint was trained without EMA")
            self.ema.load_state_dict(ckpt["ema"], ckpt.get("ema_updates", 0))
        if self.amp and ckpt.get("scaler"):
            self.scaler.load_state_dict(ckpt["scaler"])
        self.epoch = int(ckpt["epoch"])
        self.global_step = int(ckpt.get("global_step", 0))
        self.train_time = float(ckpt.get("train_time", 0.0))
        self.history = list(ckpt.get("history", []))
        states = ckpt.get("callbacks", {})
        for cb in self.callbacks:
            if type(cb).__name__ in states:
                cb.load_state_dict(states[type(cb).__name__])
        if ckpt.get("rng"):
            set_rng_state(ckpt["rng"])

    def log(self, message: str) -> None:
        if self.cfg.verbose:
            from rich.console import Console

            Console(highlight=False).print(message, soft_wrap=True)


def _cpu_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu() for k, v in state.items()}
