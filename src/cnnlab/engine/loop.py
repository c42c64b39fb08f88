"""The one training engine: every task's epochs run here.

    engine = Engine(task, cfg, model, train_loader, callbacks=[...])
    engine.fit()

It owns the epoch loop, exact resume (model, EMA, optimiser, schedule, AMP scaler, RNG, history,
callback and task state in one checkpoint), EMA, AMP (CUDA), ``channels_last``, gradient clipping,
the divergence check, the time budget, progress and the epoch line, and distributed data-parallel
training under ``torchrun`` (``cnnlab.engine.distributed``: DDP, sharded global batches, rank 0
validates, logs and writes). The task (``cnnlab.engine.task``) supplies data, model, loss, validation,
fitness and plots.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from cnnlab.config.run import OptimConfig, RunConfig
from cnnlab.engine import distributed
from cnnlab.engine.callbacks import Callback
from cnnlab.engine.checkpoint import load_weights, rng_state, set_rng_state
from cnnlab.engine.ema import ModelEMA
from cnnlab.engine.optim import Schedule, create_optimizer
from cnnlab.engine.progress import Progress
from cnnlab.engine.seeding import epoch_seed, set_loader_epoch
from cnnlab.engine.task import Task
from cnnlab.errors import UserError, first_line
from cnnlab.io import plain_data


class Engine:
    """Fits ``model`` for ``task`` (Keras ``model.fit``); ``history`` holds one dict per epoch."""

    def __init__(self, task: Task, cfg: RunConfig, model: nn.Module, train_loader: Any, *,
                 callbacks: Sequence[Callback] = (), device: torch.device | str | None = None,
                 run_dir: Path | None = None, log: Any = None) -> None:
        from cnnlab.devices import resolve_device

        self.task, self.cfg, self.run_dir = task, cfg, run_dir
        self.world = distributed.setup()
        self.is_main = self.world.main
        self.device = distributed.local_device(resolve_device(device if device is not None else cfg.device))
        self.cuda = self.device.type == "cuda"
        self.channels_last = bool(cfg.channels_last)
        if getattr(cfg, "sync_bn", False) and self.world.distributed:
            model = distributed.convert_sync_bn(model, self.device)
        self.model = model.to(self.device)
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        if self.world.distributed and hasattr(train_loader, "shard"):
            train_loader.shard(self.world.rank, self.world.size)   # else: the caller's DistributedSampler
        self.train_loader = train_loader
        self.steps_per_epoch = _safe_len(train_loader) or 1
        self.set_optimizer(cfg.optim())
        self.ema = ModelEMA(self.model, cfg.ema, cfg.ema_warmup) if cfg.ema else None
        self.amp = bool(cfg.amp and self.cuda)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        self.bf16_cpu = bool(getattr(cfg, "bf16_cpu", False) and self.device.type == "cpu")
        self.callbacks = list(callbacks)
        self.epochs = task.total_epochs()
        self.epoch = 0                 # completed epochs
        self.batch_index = 0           # batch of the running epoch
        self.global_step = 0
        self.history: list[dict[str, Any]] = []
        self.stop_training = False
        self.train_time = 0.0
        self._log = log

    # -- views --------------------------------------------------------------------------------------
    @property
    def eval_model(self) -> nn.Module:
        """The weights used for evaluation: the EMA copy when EMA is on."""
        return self.ema.module if self.ema is not None else self.model

    def set_optimizer(self, optim: OptimConfig) -> None:
        """A fresh optimiser and schedule over the trainable parameters (phase changes call this), and
        the module training steps call (DDP registers the trainable parameters, so it is made anew)."""
        self.optim = optim
        self.optimizer = create_optimizer(self.model, optim)
        self.schedule = Schedule(self.optimizer, optim, self.steps_per_epoch)
        self.train_model = distributed.wrap_for_training(self.model, self.task.train_method, self.device)

    def log(self, message: str) -> None:
        if not self.is_main:
            return
        if self._log is not None:
            self._log(message)
        elif self.cfg.verbose:
            from rich.console import Console

            Console(highlight=False).print(message, soft_wrap=True, markup=False)

    # -- the loop -----------------------------------------------------------------------------------
    def fit(self, epochs: int | None = None) -> list[dict[str, Any]]:
        """Train from the current epoch up to ``epochs``; returns the history."""
        self.epochs = epochs or self.epochs
        self.stop_training = False
        self._on_main(lambda: [cb.on_train_begin(self) for cb in self.callbacks])
        for epoch in range(self.epoch + 1, self.epochs + 1):
            logs = self.run_epoch(epoch)

            def epoch_end(epoch: int = epoch, logs: dict[str, Any] = logs) -> bool:
                for cb in self.callbacks:
                    cb.on_epoch_end(self, epoch, logs)
                if self.cfg.time is not None and epoch < self.epochs and self.budget_spent(self.cfg.time):
                    self.stop_training = True
                return self.stop_training

            self.stop_training = bool(self._on_main(epoch_end))  # rank 0 decides for every rank
            if self.stop_training:
                break
        final = self.history[-1] if self.history else {}
        self._on_main(lambda: [cb.on_train_end(self, final) for cb in self.callbacks])
        return self.history

    def budget_spent(self, hours: float) -> bool:
        """True (and a log line saying so) when the next epoch would end past a time budget of ``hours``,
        counting the training and validation time of the epochs so far (resumed epochs included)."""
        spent = sum(float(h.get("epoch_time", 0.0)) + float(h.get("val_time", 0.0)) for h in self.history)
        per_epoch = spent / max(len(self.history), 1)
        budget = hours * 3600
        if spent + per_epoch <= budget:
            return False
        self.log(f"time budget of {hours:g} h ({budget / 60:.1f} min): {spent / 60:.1f} min used after epoch "
                 f"{self.epoch}, the next epoch (~{per_epoch / 60:.1f} min) would not fit: stopping")
        return True

    def _on_main(self, fn: Any) -> Any:
        """Callbacks, checkpoints and stop decisions: rank 0 runs them, every rank gets the outcome."""
        return distributed.on_main(fn) if self.world.distributed else fn()

    def run_epoch(self, epoch: int) -> dict[str, Any]:
        """Train one epoch, validate, step the epoch schedule and record the history row."""
        seed = (epoch_seed(self.cfg.seed, epoch) + 104_729 * self.world.rank) % 2**31  # own dropout per rank
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)
        set_loader_epoch(self.train_loader, epoch - 1)
        self.task.on_epoch_start(self, epoch)
        lr = self.schedule.lr
        start, cpu = time.perf_counter(), time.process_time()
        logs: dict[str, Any] = {"epoch": epoch, **self.train_one_epoch(epoch)}
        elapsed = time.perf_counter() - start
        self.train_time += elapsed
        val_start = time.perf_counter()
        if self.task.should_validate(epoch, epoch == self.epochs):
            logs.update(self._on_main(lambda: self.task.validate(self.eval_model, self)))
            fit = self.task.fitness(logs)
            if fit is not None:
                logs["fitness"] = float(fit)
        logs["val_time"] = time.perf_counter() - val_start
        n = logs.pop("images")
        logs.update(lr=lr, epoch_time=elapsed, images_per_s=n / elapsed if elapsed > 0 else float("nan"),
                    epoch_cpu_time=time.process_time() - cpu)  # CPU seconds of this process, all threads
        self.schedule.step_epoch(logs)
        self.epoch = epoch
        logs = plain_data(logs)
        self.history.append(logs)
        self.task.on_epoch_end(self, epoch, logs)
        return logs

    def train_one_epoch(self, epoch: int) -> dict[str, Any]:
        """One pass over the training loader; returns the task's averaged keys and images seen."""
        model, cfg, task = self.model, self.cfg, self.task
        self.train_model.train()
        task.train_mode(model)
        sums: dict[str, torch.Tensor] = {}
        seen = 0
        total = _safe_len(self.train_loader)
        label = f"epoch {epoch}/{self.epochs}"
        world = self.world.size
        with Progress(label, total, enabled=cfg.verbose == 1 and self.is_main) as bar:
            per_batch = [cb for cb in self.callbacks if _has_batch_hooks(cb)]
            wants_loss = any(getattr(cb, "wants_loss", False) for cb in per_batch)
            for i, batch in enumerate(self.train_loader):
                self.batch_index = i
                step = self.global_step + 1
                for cb in per_batch:
                    if hasattr(cb, "on_batch_begin"):
                        cb.on_batch_begin(self, step)
                batch = task.to_device(batch, self.device, self.channels_last)
                with torch.autocast(self.device.type, enabled=self.amp or self.bf16_cpu,
                                    dtype=torch.bfloat16 if self.bf16_cpu else None):
                    loss, parts, n = task.loss(self.train_model, batch, self)
                if world > 1:  # DDP averages gradients over ranks: scale so the step is that of the global batch
                    factor = world * n / distributed.global_count(n, self.device) \
                        if task.loss_reduction == "mean" else float(world)
                    loss_for_grad = loss * factor
                else:
                    loss_for_grad = loss
                if (not self.cuda or i % 20 == 0) and not torch.isfinite(loss):  # a sync on CUDA: sample it
                    raise UserError(f"training diverged at epoch {epoch}, step {i + 1} (loss {float(loss)}); "
                                    "lower the learning rate or add gradient clipping")
                self.optimizer.zero_grad(set_to_none=True)
                self.scaler.scale(loss_for_grad).backward()
                for cb in per_batch:
                    if hasattr(cb, "on_after_backward"):
                        cb.on_after_backward(self, step)
                if cfg.grad_clip:
                    self.scaler.unscale_(self.optimizer)
                    nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                self.scaler.step(self.optimizer)
                self.scaler.update()
                self.schedule.step_batch()
                self.global_step += 1
                if self.ema is not None:
                    self.ema.update(model)
                if per_batch:
                    value = float(loss.detach()) if wants_loss else None
                    for cb in per_batch:
                        if hasattr(cb, "on_batch_end"):
                            cb.on_batch_end(self, step, value)
                with torch.no_grad():
                    for k, v in parts.items():
                        v = v.detach().float()
                        sums[k] = sums[k] + v if k in sums else v
                    seen += n
                if i % 10 == 0 or i + 1 == total:
                    bar.advance(info="  ".join(f"{k} {float(sums[k]) / seen:.4f}" for k in task.train_keys
                                               if k in sums))
                else:
                    bar.advance()
        sums, seen = distributed.all_reduce_sums(sums, seen, self.device)
        seen = max(seen, 1)
        return {**{k: float(v) / seen for k, v in sums.items()}, "images": seen}

    # -- checkpoints and resume ---------------------------------------------------------------------
    def checkpoint(self, epoch: int, logs: dict[str, Any] | None = None) -> dict[str, Any]:
        """The whole training state as plain data (loadable with ``weights_only``), plus what the task
        needs for inference (``task.checkpoint_meta``)."""
        return {
            "format": f"cnnlab.{self.task.name}",
            **self.task.checkpoint_meta(self),
            "model": _cpu_state(self.model.state_dict()),
            "ema": _cpu_state(self.ema.state_dict()) if self.ema is not None else None,
            "ema_updates": self.ema.updates if self.ema is not None else 0,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.schedule.state_dict(),
            "scaler": self.scaler.state_dict() if self.amp else None,
            "epoch": epoch,
            "world_size": self.world.size,
            "global_step": self.global_step,
            "train_time": self.train_time,
            "rng": rng_state(),
            "config": self.cfg.to_dict(),
            "metrics": plain_data(dict(logs or {})),
            "history": plain_data(list(self.history)),
            "callbacks": {type(cb).__name__: state for cb in self.callbacks
                          if (state := getattr(cb, "state_dict", dict)())},
            "task_state": self.task.state_dict(),
        }

    def load_checkpoint(self, ckpt: dict[str, Any]) -> None:
        """Restore everything :meth:`checkpoint` saved, to continue after epoch ``ckpt['epoch']``."""
        distributed.check_resume_world(ckpt.get("world_size"), "the checkpoint")
        load_weights(self.model, ckpt["model"], ckpt.get("model_spec"), "checkpoint")
        self.task.load_state_dict(self, dict(ckpt.get("task_state") or {"phase": ckpt.get("phase", 1)}))
        _check_optimizer_state(self.optimizer, ckpt["optimizer"])
        try:
            self.optimizer.load_state_dict(ckpt["optimizer"])
            self.schedule.load_state_dict(ckpt["scheduler"])
        except (ValueError, KeyError, TypeError, RuntimeError) as e:
            raise UserError(f"cannot resume: the checkpoint's optimizer or schedule state does not fit this "
                            f"run ({first_line(e)})") from None
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
            if type(cb).__name__ in states and hasattr(cb, "load_state_dict"):
                cb.load_state_dict(states[type(cb).__name__])
        if ckpt.get("rng"):
            set_rng_state(ckpt["rng"])


def _check_optimizer_state(optimizer: torch.optim.Optimizer, state: Any) -> None:
    """The saved optimizer's parameter groups must match this run's, group by group (torch's own error
    for a mismatch is a traceback about ``param_groups``)."""
    groups = state.get("param_groups") if isinstance(state, dict) else None
    if not isinstance(groups, list) or not all(isinstance(g, dict) and isinstance(g.get("params"), list)
                                               for g in groups):
        raise UserError("cannot resume: the checkpoint's optimizer state has no parameter groups")
    saved = [len(g["params"]) for g in groups]
    ours = [len(g["params"]) for g in optimizer.param_groups]
    if saved != ours:
        raise UserError(f"cannot resume: the checkpoint's optimizer has parameter groups of {saved} tensors, "
                        f"this run's has {ours} (the model, its frozen layers or the optimizer changed)")


def _has_batch_hooks(cb: Callback) -> bool:
    """True when ``cb`` overrides a per-batch hook (the others cost nothing per step)."""
    return any(getattr(type(cb), name, None) not in (None, getattr(Callback, name))
               for name in ("on_batch_begin", "on_after_backward", "on_batch_end"))


def _safe_len(loader: Any) -> int | None:
    try:
        return len(loader)
    except TypeError:
        return None


def _cpu_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu() for k, v in state.items()}

