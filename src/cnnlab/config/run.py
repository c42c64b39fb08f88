"""Options every training task shares (optimisation, schedule, numerics, callbacks, where it runs),
defined once; tasks subclass :class:`RunConfig` and add their own section."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

from cnnlab.config.schema import Config, option
from cnnlab.errors import UserError

OPT, SCHED, NUM, CB, RUN = "Optimisation", "Schedule", "Regularisation and numerics", "Callbacks and logging", "Run"


@dataclass
class OptimConfig:
    """What optimisers and schedules need, and nothing else (built by ``RunConfig.optim()``)."""

    optimizer: str = "sgd"
    lr: float = 0.01
    momentum: float = 0.9
    nesterov: bool = False
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    decay_norm_and_bias: bool = False
    backbone_lr: float | None = None
    epochs: int = 10
    schedule: str = "constant"
    boundaries: tuple[float, ...] = ()
    boundary_unit: str = "epochs"
    factors: float | list[float] = 0.1
    step_size: int = 30
    gamma: float = 0.1
    warmup_epochs: float = 0.0
    warmup_start: float = 0.01
    warmup_bias_lr: float | None = None   # biases warm up from this lr down to the schedule's (YOLOv5)
    warmup_min_steps: int = 0             # the warm-up lasts at least this many steps (when there is one)
    min_lr: float = 0.0
    max_lr: float | None = None
    pct_start: float = 0.3
    plateau_factor: float = 0.1
    plateau_patience: int = 5
    monitor: str = "val_loss"


@dataclass
class RunConfig(Config):
    """The shared run options (Keras / Ultralytics names where they exist)."""

    # optimisation
    epochs: int = option(10, "Training epochs.", short="-e", section=OPT)
    batch: int = option(128, "Images per batch (the global batch of all processes when distributed).",
                        short="-b", section=OPT)
    optimizer: str = option("sgd", "sgd, adam, adamw, nadam, rmsprop.", section=OPT)
    lr: float = option(0.01, "Initial learning rate.", section=OPT)
    momentum: float = option(0.9, "SGD momentum (RMSprop momentum).", section=OPT)
    nesterov: bool = option(False, "Nesterov momentum (SGD).", section=OPT)
    betas: list[float] = option(factory=lambda: [0.9, 0.999], help="Adam-family betas, e.g. 0.9,0.999.",
                                section=OPT)
    weight_decay: float = option(0.0, "Weight decay (L2) of the weight tensors.", section=OPT)
    decay_norm_and_bias: bool = option(False, "Also decay 1-d parameters (norm scales, biases).", section=OPT)
    # learning-rate schedule
    schedule: str = option("constant", "constant, piecewise, step, cosine, onecycle, triangle, plateau.", section=SCHED)
    boundaries: list[float] = option(factory=list, help="piecewise: boundaries, e.g. [10000,25000].",
                                     section=SCHED)
    boundary_unit: str = option("epochs", "piecewise: boundaries in epochs or steps.", section=SCHED)
    factors: float | list[float] = option(0.1, "piecewise: lr factor at each boundary (one or a list).",
                                          section=SCHED)
    step_size: int = option(30, "step: epochs between decays.", section=SCHED)
    gamma: float = option(0.1, "step: decay factor.", section=SCHED)
    warmup_epochs: float = option(0.0, "Linear warm-up length in epochs.", section=SCHED)
    warmup_start: float = option(0.01, "Warm-up starts at lr x this.", section=SCHED)
    min_lr: float | None = option(None, "cosine/plateau: final learning rate (default 0).", section=SCHED)
    max_lr: float | None = option(None, "onecycle: peak learning rate (default lr).", section=SCHED)
    pct_start: float = option(0.3, "onecycle: fraction of steps spent increasing.", section=SCHED)
    plateau_factor: float = option(0.1, "plateau: multiply the lr by this ...", section=SCHED)
    plateau_patience: int = option(5, "... after this many epochs without improvement of monitor.",
                                   section=SCHED)
    # numerics and regularisation shared by every task
    grad_clip: float | None = option(None, "Max global gradient norm (null: off).", section=NUM)
    ema: float | None = option(None, "EMA decay of the weights, e.g. 0.999 (null: off).", section=NUM)
    ema_warmup: int = option(2000, "EMA decay ramps up over this many steps.", section=NUM)
    amp: bool = option(True, "Mixed precision (CUDA only).", section=NUM)
    bf16_cpu: bool = option(False, "bfloat16 autocast of the training step and of the run's evaluations on CPU "
                            "(pays with AVX-512 BF16/AMX; measure: benchmarks/fast_recipes.py --throughput).",
                            section=NUM)
    channels_last: bool = option(True, "NHWC memory format (faster convolutions on CPU oneDNN and CUDA).",
                                 section=NUM)
    seed: int = option(0, "Random seed (data order, augmentation, init).", section=NUM)
    deterministic: bool = option(False, "torch.use_deterministic_algorithms.", section=NUM)
    # callbacks and logging
    monitor: str = option("val_loss", "Metric for the best checkpoint, early stopping and plateau "
                          "('fitness': the task's own measure).", section=CB)
    patience: int = option(0, "Early stopping patience in epochs (0: off).", section=CB)
    min_delta: float = option(0.0, "Smallest change of monitor that counts as improvement.", section=CB)
    save_period: int = option(0, "Also keep weights/epochN.pt every N epochs (0: off).", section=CB)
    time: float | None = option(None, "Time budget in hours (training + validation): stop when the next "
                                "epoch would end past it (the first epoch always runs).", section=CB)
    tensorboard: bool = option(False, "Log scalars to <run>/tensorboard.", section=CB)
    diagnostics: int = option(0, "Every N steps log per-layer gradient/weight/update norms and activation "
                              "stats (diagnostics.csv/.json/.png; 0: off).", section=CB)
    plots: bool = option(True, "Write plots (curves, confusion matrix, samples).", section=CB)
    verbose: int = option(1, "0 silent, 1 progress bar + epoch lines, 2 epoch lines only.", section=CB)
    # where it runs and where results go
    device: str = option("auto", "auto, cpu, cuda, cuda:N, mps.", section=RUN)
    sync_bn: bool = option(False, "Distributed runs: SyncBatchNorm, statistics of the global batch (CUDA).",
                           section=RUN)
    threads: int | None = option(None, "torch CPU threads (null: torch's default).", section=RUN)
    workers: int | None = option(None, "DataLoader workers for on-disk data (null: auto).", section=RUN)
    project: str = option("runs", "Parent folder of run folders.", section=RUN)
    name: str = option("exp", "Run name: <project>/<task>/<name> (exp, exp2, ... when taken).", section=RUN)
    exist_ok: bool = option(False, "Reuse the run folder if it exists.", section=RUN)

    # options a resumed run may change; everything else must match the original run
    RESUMABLE: ClassVar[tuple[str, ...]] = ("epochs", "device", "threads", "workers", "verbose", "plots",
                                            "tensorboard", "patience", "time", "diagnostics")
    TASK: ClassVar[str] = "run"

    def optim(self) -> OptimConfig:
        """The optimiser and schedule settings of this run (OptimConfig's fields, taken by name)."""
        values = {f.name: getattr(self, f.name, f.default) for f in dataclasses.fields(OptimConfig)}
        values.update(betas=tuple(self.betas), boundaries=tuple(self.boundaries),
                      min_lr=self.default_min_lr() if self.min_lr is None else self.min_lr)
        return OptimConfig(**values)

    def default_min_lr(self) -> float:
        """The final learning rate when ``min_lr`` is not given."""
        return 0.0

    @property
    def total_epochs(self) -> int:
        return self.epochs

    def validate(self) -> None:
        if self.epochs < 1:
            raise UserError(f"epochs must be >= 1, got {self.epochs}")
        if self.batch < 1:
            raise UserError(f"batch must be >= 1, got {self.batch}")
        if not self.lr > 0:
            raise UserError(f"lr must be > 0, got {self.lr}")
        if self.ema is not None and not 0.0 < self.ema < 1.0:
            raise UserError(f"ema must be a decay in (0, 1) or null, got {self.ema}")
        if self.boundary_unit not in ("epochs", "steps"):
            raise UserError(f"boundary_unit must be 'epochs' or 'steps', got {self.boundary_unit!r}")
        if self.verbose not in (0, 1, 2):
            raise UserError(f"verbose must be 0, 1 or 2, got {self.verbose}")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise UserError(f"grad_clip must be > 0 or null, got {self.grad_clip}")
        if self.time is not None and not self.time > 0:
            raise UserError(f"time must be > 0 hours or null, got {self.time}")
        if self.threads is not None and self.threads < 1:
            raise UserError(f"threads must be >= 1, got {self.threads}")
        if self.patience < 0 or self.save_period < 0 or self.diagnostics < 0:
            raise UserError("patience, save_period and diagnostics must be >= 0")
        from cnnlab.devices import check_device_spec

        check_device_spec(self.device)

    @classmethod
    def resume_config(cls, saved: dict[str, Any], overrides: dict[str, Any], source: str) -> Any:
        """The config of a resumed run: the saved options with the allowed ``overrides`` on top."""
        cls.check_keys(overrides, "resume")
        fixed = sorted(k for k in overrides if k not in cls.RESUMABLE)
        if fixed:
            raise UserError(f"cannot change {', '.join(fixed)} when resuming "
                            f"(allowed: {', '.join(cls.RESUMABLE)})")
        known = set(cls.field_names())
        return cls.from_dict({**{k: v for k, v in saved.items() if k in known}, **overrides}, source=source)
