"""Optimisers and learning-rate schedules, each a registry entry (add one = one entry + one test).

Schedules are stepped per iteration where that is their definition (warm-up, piecewise in steps,
cosine, one-cycle) and per epoch where it is not (reduce-on-plateau); ``Schedule`` hides the
difference from the trainer: call ``step_batch()`` after every optimiser step and
``step_epoch(logs)`` after every epoch.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from cnnlab.config.run import OptimConfig
from cnnlab.errors import UserError

# ---------------------------------------------------------------------------------------------
# optimisers

OptimizerBuilder = Callable[[list[dict[str, Any]], OptimConfig], torch.optim.Optimizer]
OPTIMIZERS: dict[str, OptimizerBuilder] = {}


def register_optimizer(name: str) -> Callable[[OptimizerBuilder], OptimizerBuilder]:
    def deco(fn: OptimizerBuilder) -> OptimizerBuilder:
        OPTIMIZERS[name] = fn
        return fn

    return deco


@register_optimizer("sgd")
def _sgd(groups: list[dict[str, Any]], cfg: OptimConfig) -> torch.optim.Optimizer:
    return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov and cfg.momentum > 0)


@register_optimizer("adam")
def _adam(groups: list[dict[str, Any]], cfg: OptimConfig) -> torch.optim.Optimizer:
    return torch.optim.Adam(groups, lr=cfg.lr, betas=tuple(cfg.betas))


@register_optimizer("adamw")
def _adamw(groups: list[dict[str, Any]], cfg: OptimConfig) -> torch.optim.Optimizer:
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=tuple(cfg.betas))


@register_optimizer("nadam")
def _nadam(groups: list[dict[str, Any]], cfg: OptimConfig) -> torch.optim.Optimizer:
    return torch.optim.NAdam(groups, lr=cfg.lr, betas=tuple(cfg.betas))


@register_optimizer("rmsprop")
def _rmsprop(groups: list[dict[str, Any]], cfg: OptimConfig) -> torch.optim.Optimizer:
    # Keras defaults: rho 0.9, eps 1e-7
    return torch.optim.RMSprop(groups, lr=cfg.lr, alpha=0.9, eps=1e-7, momentum=cfg.momentum)


def auto_optimizer(images: int, batch: int, epochs: int, num_classes: int, nominal_batch: int = 64
                   ) -> tuple[str, float, float, int]:
    """``optimizer auto``: Ultralytics' rule, as ``(name, lr, momentum, iterations)``.

    ``iterations`` = epochs x ceil(images / max(batch, nominal_batch)) (nominal batch 64). A long run
    (> 10000 iterations) gets SGD at lr 0.01 (momentum 0.9): enough steps for plain SGD to settle,
    and the best final accuracy. A short one - fine-tuning on a few hundred images - gets AdamW at
    lr 0.002 x 5 / (4 + classes) (0.002 for one class, 0.0012 for COCO's 80; beta1 0.9): Adam's
    per-parameter steps make progress in a few hundred updates where SGD at 0.01 barely moves a
    pretrained detector (issue 15: mAP50 0.03 after 5 epochs of SGD), and fewer classes tolerate a
    larger step.
    """
    iterations = max(1, epochs) * max(1, math.ceil(max(1, images) / max(batch, nominal_batch)))
    if iterations > 10000:
        return "sgd", 0.01, 0.9, iterations
    return "adamw", round(0.002 * 5 / (4 + max(1, num_classes)), 6), 0.9, iterations


def param_groups(model: nn.Module, weight_decay: float, decay_norm_and_bias: bool = False,
                 split_bias: bool = False) -> list[dict]:
    """Two groups: weights with ``weight_decay``; 1-d params (biases, norm scales) without, unless asked.
    ``split_bias``: the biases in a third group of their own (``"name": "bias"``, for a bias warm-up)."""
    decay, no_decay, bias = [], [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if split_bias and name.endswith(".bias") and p.ndim == 1:
            bias.append(p)
        else:
            (decay if p.ndim > 1 or decay_norm_and_bias else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    if bias:
        groups.append({"params": bias, "weight_decay": weight_decay if decay_norm_and_bias else 0.0,
                       "name": "bias"})
    return groups


def as_optim_config(cfg: Any) -> OptimConfig:
    """An OptimConfig from itself or from a run config (anything with ``.optim()``)."""
    return cfg if isinstance(cfg, OptimConfig) else cfg.optim()


def create_optimizer(model: nn.Module, cfg: OptimConfig | Any) -> torch.optim.Optimizer:
    """The optimiser named by ``cfg.optimizer`` over ``model``'s trainable parameters."""
    cfg = as_optim_config(cfg)
    name = cfg.optimizer.lower()
    if name not in OPTIMIZERS:
        raise UserError(_unknown("optimizer", cfg.optimizer, OPTIMIZERS))
    groups = param_groups(model, cfg.weight_decay, cfg.decay_norm_and_bias,
                          split_bias=cfg.warmup_bias_lr is not None and cfg.warmup_epochs > 0)
    if cfg.backbone_lr is not None:
        groups = split_backbone_groups(model, groups, cfg.lr, cfg.backbone_lr)
    if not any(g["params"] for g in groups):
        raise UserError("the model has no trainable parameters")
    return OPTIMIZERS[name](groups, cfg)


def split_backbone_groups(model: nn.Module, groups: list[dict], lr: float, backbone_lr: float) -> list[dict]:
    """Split each group into head (``lr``) and body/backbone (``backbone_lr``) parameters."""
    from cnnlab.models.transfer import split_head

    head_ids = {id(p) for h in split_head(model)[1] for p in h.parameters()}
    out = []
    for g in groups:
        for part, part_lr in (("head", lr), ("backbone", backbone_lr)):
            params = [p for p in g["params"] if (id(p) in head_ids) == (part == "head")]
            if params:
                out.append({**g, "params": params, "lr": part_lr, "name": part})
    return out


def l1_penalty(model: nn.Module) -> torch.Tensor:
    """Sum of absolute values of the weight tensors (not biases or norm scales)."""
    terms = [p.abs().sum() for p in model.parameters() if p.requires_grad and p.ndim > 1]
    return torch.stack(terms).sum() if terms else torch.zeros(())


# ---------------------------------------------------------------------------------------------
# schedules: each builder returns a multiplier function of the global step (or a torch scheduler)

ScheduleBuilder = Callable[[OptimConfig, int, int], Callable[[int], float] | None]
SCHEDULES: dict[str, ScheduleBuilder] = {}


def register_schedule(name: str) -> Callable[[ScheduleBuilder], ScheduleBuilder]:
    def deco(fn: ScheduleBuilder) -> ScheduleBuilder:
        SCHEDULES[name] = fn
        return fn

    return deco


@register_schedule("constant")
def _constant(cfg: OptimConfig, steps_per_epoch: int, total_steps: int) -> Callable[[int], float]:
    return lambda step: 1.0


@register_schedule("piecewise")
def _piecewise(cfg: OptimConfig, steps_per_epoch: int, total_steps: int) -> Callable[[int], float]:
    scale = 1 if cfg.boundary_unit == "steps" else steps_per_epoch
    bounds = [float(b) * scale for b in cfg.boundaries]
    if bounds != sorted(bounds):
        raise UserError(f"piecewise boundaries must increase, got {cfg.boundaries}")
    factors = cfg.factors if isinstance(cfg.factors, list) else [cfg.factors] * len(bounds)
    if len(factors) != len(bounds):
        raise UserError(f"piecewise: {len(bounds)} boundaries but {len(factors)} factors")

    def fn(step: int) -> float:
        m = 1.0
        for b, f in zip(bounds, factors, strict=True):
            if step >= b:
                m *= f
        return m

    return fn


@register_schedule("step")
def _step(cfg: OptimConfig, steps_per_epoch: int, total_steps: int) -> Callable[[int], float]:
    if cfg.step_size < 1:
        raise UserError(f"step_size must be >= 1 epoch, got {cfg.step_size}")
    return lambda step: cfg.gamma ** (step // (cfg.step_size * steps_per_epoch))


@register_schedule("cosine")
def _cosine(cfg: OptimConfig, steps_per_epoch: int, total_steps: int) -> Callable[[int], float]:
    warm = warmup_steps(cfg, steps_per_epoch)
    floor = cfg.min_lr / cfg.lr
    span = max(1, total_steps - warm)

    def fn(step: int) -> float:
        t = min(1.0, max(0, step - warm) / span)
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * t))

    return fn


@register_schedule("triangle")
def _triangle(cfg: OptimConfig, steps_per_epoch: int, total_steps: int) -> Callable[[int], float]:
    """airbench's schedule: linear from ``warmup_start`` to 1 over ``pct_start`` of the steps, then linear
    down to ``min_lr`` (no momentum cycling, unlike onecycle)."""
    peak = max(1, int(round(cfg.pct_start * total_steps)))
    floor = cfg.min_lr / cfg.lr
    down = max(1, total_steps - peak)

    def fn(step: int) -> float:
        if step < peak:
            return cfg.warmup_start + (1 - cfg.warmup_start) * step / peak
        return 1 + (floor - 1) * min(1.0, (step - peak) / down)

    return fn


@register_schedule("onecycle")
def _onecycle(cfg: OptimConfig, steps_per_epoch: int, total_steps: int) -> None:
    return None  # built as torch.optim.lr_scheduler.OneCycleLR in Schedule


@register_schedule("plateau")
def _plateau(cfg: OptimConfig, steps_per_epoch: int, total_steps: int) -> Callable[[int], float]:
    return lambda step: 1.0  # warm-up only; the decay is torch's ReduceLROnPlateau in Schedule


def warmup_steps(cfg: OptimConfig, steps_per_epoch: int) -> int:
    """Warm-up length in steps: ``warmup_epochs`` x steps per epoch, at least ``warmup_min_steps`` when
    there is a warm-up (Ultralytics' 100 for detection: a fine-tune of a few hundred images is all
    warm-up, its lr never jumps on a pretrained model)."""
    warm = int(round(cfg.warmup_epochs * steps_per_epoch))
    return max(warm, int(cfg.warmup_min_steps)) if cfg.warmup_epochs > 0 else warm


def check_config(cfg: OptimConfig | Any) -> None:
    """Fail fast (before a run folder exists) on an unknown optimiser or schedule name."""
    cfg = as_optim_config(cfg)
    if cfg.optimizer.lower() == "auto":   # resolved by the task once the data is known (`auto_optimizer`)
        cfg = dataclasses.replace(cfg, optimizer="sgd")
    if cfg.optimizer.lower() not in OPTIMIZERS:
        raise UserError(_unknown("optimizer", cfg.optimizer, OPTIMIZERS))
    if cfg.schedule.lower() not in SCHEDULES:
        raise UserError(_unknown("schedule", cfg.schedule, SCHEDULES))
    if cfg.schedule.lower() == "piecewise" and not cfg.boundaries:
        raise UserError("schedule piecewise needs boundaries, e.g. --boundaries [10000,25000,40000] "
                        "--boundary-unit steps")


MAXIMISED = ("acc", "map", "fitness", "precision", "recall", "iou", "f1")


def monitor_mode(monitor: str) -> str:
    """``max`` for accuracies, mAP, fitness, precision/recall; ``min`` for losses (Keras' mode='auto')."""
    return "max" if any(k in monitor.lower() for k in MAXIMISED) else "min"


class Schedule:
    """Learning-rate schedule of one run: per-step multiplier (with warm-up), one-cycle or plateau."""

    def __init__(self, optimizer: torch.optim.Optimizer, cfg: OptimConfig | Any, steps_per_epoch: int):
        cfg = as_optim_config(cfg)
        name = cfg.schedule.lower()
        if name not in SCHEDULES:
            raise UserError(_unknown("schedule", cfg.schedule, SCHEDULES))
        self.name = name
        self.optimizer = optimizer
        self.steps_per_epoch = max(1, steps_per_epoch)
        total = cfg.epochs * self.steps_per_epoch
        self.plateau: torch.optim.lr_scheduler.ReduceLROnPlateau | None = None
        self.monitor = cfg.monitor
        if name == "onecycle":
            self.torch_sched: torch.optim.lr_scheduler.LRScheduler = torch.optim.lr_scheduler.OneCycleLR(
                optimizer, max_lr=cfg.max_lr or cfg.lr, total_steps=total, pct_start=cfg.pct_start)
            return
        base = SCHEDULES[name](cfg, self.steps_per_epoch, total)
        warm = warmup_steps(cfg, self.steps_per_epoch)
        start = cfg.warmup_start

        def multiplier(step: int) -> float:
            m = base(step)
            if step < warm:
                m *= start + (1 - start) * step / warm
            return m

        def bias_multiplier(step: int) -> float:   # YOLOv5: biases fall from warmup_bias_lr to the schedule
            if step >= warm:
                return base(step)
            t = step / warm
            return (cfg.warmup_bias_lr / cfg.lr) * (1 - t) + base(step) * t

        bias_warmup = cfg.warmup_bias_lr is not None and warm > 0
        lambdas = [bias_multiplier if bias_warmup and g.get("name") == "bias" else multiplier
                   for g in optimizer.param_groups]
        self.torch_sched = torch.optim.lr_scheduler.LambdaLR(optimizer, lambdas)
        if name == "plateau":
            self.plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
                optimizer, mode=monitor_mode(cfg.monitor), factor=cfg.plateau_factor,
                patience=cfg.plateau_patience, min_lr=cfg.min_lr)
            self._plateau_scale = 1.0

    def step_batch(self) -> None:
        """Advance one optimiser step."""
        if self.plateau is None:
            self.torch_sched.step()
            return
        # LambdaLR (warm-up) sets lr = base * m; keep the plateau reductions on top of it
        self.torch_sched.step()
        for g in self.optimizer.param_groups:
            g["lr"] *= self._plateau_scale

    def step_epoch(self, logs: dict[str, float]) -> None:
        """Advance one epoch (reduce-on-plateau looks at ``logs[monitor]``)."""
        if self.plateau is None:
            return
        value = logs.get(self.monitor)
        if value is None:
            value = logs.get(self.monitor.removeprefix("val_"))
        if value is None:
            return
        before = self.optimizer.param_groups[0]["lr"]
        self.plateau.step(value)
        after = self.optimizer.param_groups[0]["lr"]
        if before > 0:
            self._plateau_scale *= after / before

    @property
    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"name": self.name, "torch": _plain_state(self.torch_sched.state_dict())}
        if self.plateau is not None:
            state["plateau"] = _plain_state(self.plateau.state_dict())
            state["plateau_scale"] = self._plateau_scale
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("name") != self.name:
            raise UserError(f"checkpoint used schedule {state.get('name')!r}, config says {self.name!r}")
        sched_state = dict(state["torch"])
        if isinstance(self.torch_sched, torch.optim.lr_scheduler.LambdaLR):
            sched_state["lr_lambdas"] = [None] * len(self.optimizer.param_groups)
        self.torch_sched.load_state_dict(sched_state)
        if self.plateau is not None:
            self.plateau.load_state_dict(state["plateau"])
            self._plateau_scale = float(state["plateau_scale"])


def _plain_state(state: dict[str, Any]) -> dict[str, Any]:
    """Drop callables (lambdas) so the state loads with ``weights_only``."""
    return {k: v for k, v in state.items() if k != "lr_lambdas" and not callable(v)}


def _unknown(kind: str, name: str, registry: dict[str, Any]) -> str:
    import difflib

    close = difflib.get_close_matches(name.lower(), list(registry), n=2)
    hint = f" (did you mean {' or '.join(close)}?)" if close else ""
    return f"unknown {kind} {name!r}{hint}; choose from {', '.join(sorted(registry))}"
