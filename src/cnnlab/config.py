"""Run configuration: the ``TrainConfig`` dataclass, YAML in and out, and CLI-style overrides.

Every option of a classification run lives here, so a run folder's ``config.yaml`` is enough to
re-run it: ``cnnlab train --config runs/classify/exp/config.yaml``.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

from cnnlab.errors import UserError


@dataclass
class TrainConfig:
    """Every option of a classification training run (Keras / Ultralytics names where they exist)."""

    # data
    dataset: str = "digits"
    data_dir: str | None = None
    dataset_options: dict[str, Any] = field(default_factory=dict)  # e.g. {label_mode: coarse}, {root: DIR}
    img_size: int | None = None          # folder datasets are resized to this; others keep their size
    validation_split: float = 0.1        # fraction of the training set held out (stratified, seeded)
    folds: int = 0                       # k > 1: validation is fold `fold` of k stratified folds
    fold: int = 0
    subset: int | None = None            # labelled pool: this many training images (stratified), before the validation split
    augment: dict[str, Any] | str = field(default_factory=dict)  # AugmentConfig fields or a preset name
    # model
    model: str = "lenet5"
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    max_params: str | int | None = None  # e.g. "30M": refuse bigger models
    weights: str | None = None           # initialise from a cnnlab checkpoint (same architecture)
    # transfer learning (model "transfer" with a backbone, or any model re-headed from another run)
    pretrained: str | None = None        # hub | weights file (.safetensors/.pt/.h5) | cnnlab run to re-head
    freeze: str | None = None            # none | all | 0.5 | N layers | last | <stage name>
    freeze_bn: bool = True               # frozen BatchNorm layers keep their statistics (eval mode)
    backbone_lr: float | None = None     # learning rate of the body/backbone (default: lr, like the head)
    unfreeze: str | None = None          # phase 2 freeze spec (default none: everything trains; or last, 0.5...)
    unfreeze_epochs: int = 0             # phase 2 length in epochs (0 = one phase)
    unfreeze_lr: float | None = None     # phase 2 learning rate (default: lr / 10)
    # optimisation
    epochs: int = 10
    batch: int = 128
    optimizer: str = "sgd"               # sgd, adam, adamw, nadam, rmsprop
    lr: float = 0.01
    momentum: float = 0.9
    nesterov: bool = False
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    weight_decay: float = 0.0
    decay_norm_and_bias: bool = False    # also apply weight decay to 1-d params (norms, biases)
    l1: float = 0.0                      # L1 penalty on weights (added to the loss)
    # learning-rate schedule
    schedule: str = "constant"           # constant, piecewise, step, cosine, onecycle, plateau
    boundaries: list[float] = field(default_factory=list)  # piecewise: e.g. [10000, 25000, 40000]
    boundary_unit: str = "epochs"        # piecewise boundaries in "epochs" or "steps"
    factors: float | list[float] = 0.1   # piecewise: multiply the lr by this at each boundary
    step_size: int = 30                  # step: epochs between decays
    gamma: float = 0.1                   # step: decay factor
    warmup_epochs: float = 0.0           # linear warm-up (constant/piecewise/step/cosine/plateau)
    warmup_start: float = 0.01           # warm-up starts at lr * warmup_start
    min_lr: float = 0.0                  # cosine: final learning rate
    max_lr: float | None = None          # onecycle: peak learning rate (default: lr)
    pct_start: float = 0.3               # onecycle: fraction of steps spent increasing
    plateau_factor: float = 0.1          # plateau: multiply the lr by this ...
    plateau_patience: int = 5            # ... after this many epochs without improvement of `monitor`
    # regularisation and numerics
    label_smoothing: float = 0.0
    grad_clip: float | None = None       # max global gradient norm
    ema: float | None = None             # EMA decay of the weights (e.g. 0.999); None = off
    ema_warmup: int = 2000               # EMA decay ramps up over this many steps
    amp: bool = True                     # mixed precision (CUDA only)
    channels_last: bool = True           # NHWC memory format: faster convolutions on CPU (oneDNN) and CUDA
    seed: int = 0
    deterministic: bool = False          # torch.use_deterministic_algorithms
    # callbacks and logging
    monitor: str = "val_accuracy"        # metric for best checkpoint, early stopping and plateau
    patience: int = 0                    # early stopping patience in epochs (0 = off)
    min_delta: float = 0.0
    save_period: int = 0                 # also keep weights/epochN.pt every N epochs (0 = off)
    tensorboard: bool = False
    plots: bool = True
    verbose: int = 1                     # 0 silent, 1 progress bar + epoch lines, 2 epoch lines only
    # where it runs and where results go
    device: str = "auto"                 # auto, cpu, cuda, cuda:1
    threads: int | None = None           # torch CPU threads (None = torch's default)
    workers: int | None = None           # DataLoader workers for on-disk folders (None = auto)
    project: str = "runs"
    name: str = "exp"
    exist_ok: bool = False

    # -- construction -----------------------------------------------------------------------------

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None, source: str = "config") -> TrainConfig:
        """Build from a plain dict; unknown keys are a UserError naming them (with close matches)."""
        data = dict(data or {})
        check_keys(data, source)
        cfg = cls()
        for k, v in data.items():
            setattr(cfg, k, coerce(k, v))
        cfg.validate()
        return cfg

    @classmethod
    def from_yaml(cls, path: str | os.PathLike) -> TrainConfig:
        from cnnlab.io import read_yaml

        data = read_yaml(path)
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise UserError(f"{path}: a config file must be a mapping of option: value")
        return cls.from_dict(data, source=str(path))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_yaml(self, path: str | os.PathLike) -> Path:
        from cnnlab.io import write_yaml

        return write_yaml(path, self.to_dict())

    @property
    def total_epochs(self) -> int:
        """Epochs of both phases: ``epochs`` (phase 1) + ``unfreeze_epochs`` (phase 2)."""
        return self.epochs + self.unfreeze_epochs

    def phase2(self) -> TrainConfig:
        """The settings of the fine-tuning phase: its own length, learning rate and freeze spec."""
        lr = self.unfreeze_lr if self.unfreeze_lr is not None else self.lr / 10
        scale = lr / self.lr
        return self.replace(epochs=max(self.unfreeze_epochs, 1), lr=lr, freeze=self.unfreeze,
                            backbone_lr=self.backbone_lr * scale if self.backbone_lr else None,
                            max_lr=self.max_lr * scale if self.max_lr else None, warmup_epochs=0.0,
                            unfreeze=None, unfreeze_epochs=0, unfreeze_lr=None)

    def replace(self, **overrides: Any) -> TrainConfig:
        """A copy with ``overrides`` applied (validated like a config file)."""
        data = self.to_dict()
        check_keys(overrides, "overrides")
        data.update({k: v for k, v in overrides.items()})
        return TrainConfig.from_dict(data)

    def validate(self) -> None:
        """Range checks that give one-line errors before anything heavy starts."""
        if self.epochs < 1:
            raise UserError(f"epochs must be >= 1, got {self.epochs}")
        if self.batch < 1:
            raise UserError(f"batch must be >= 1, got {self.batch}")
        if self.lr <= 0:
            raise UserError(f"lr must be > 0, got {self.lr}")
        if not 0.0 <= self.validation_split < 1.0:
            raise UserError(f"validation_split must be in [0, 1), got {self.validation_split}")
        if self.folds == 1 or self.folds < 0:
            raise UserError(f"folds must be 0 (off) or >= 2, got {self.folds}")
        if self.folds and not 0 <= self.fold < self.folds:
            raise UserError(f"fold must be in [0, {self.folds - 1}], got {self.fold}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise UserError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.ema is not None and not 0.0 < self.ema < 1.0:
            raise UserError(f"ema must be a decay in (0, 1) or null, got {self.ema}")
        if self.boundary_unit not in ("epochs", "steps"):
            raise UserError(f"boundary_unit must be 'epochs' or 'steps', got {self.boundary_unit!r}")
        if self.unfreeze_epochs < 0:
            raise UserError(f"unfreeze_epochs must be >= 0, got {self.unfreeze_epochs}")
        for name in ("backbone_lr", "unfreeze_lr"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise UserError(f"{name} must be > 0, got {value}")
        if self.verbose not in (0, 1, 2):
            raise UserError(f"verbose must be 0, 1 or 2, got {self.verbose}")


# names users bring from Keras / timm / Ultralytics -> ours (suggested in unknown-option errors)
ALIASES = {
    "learning_rate": "lr", "lr0": "lr", "batch_size": "batch", "epoch": "epochs", "opt": "optimizer",
    "scheduler": "schedule", "lr_schedule": "schedule", "sched": "schedule", "wd": "weight_decay",
    "smoothing": "label_smoothing", "clip_grad": "grad_clip", "clip_grad_norm": "grad_clip",
    "imgsz": "img_size", "image_size": "img_size", "input_size": "img_size", "arch": "model", "data": "dataset",
    "model_ema": "ema", "model_ema_decay": "ema", "mixed_precision": "amp", "num_workers": "workers",
    "early_stopping": "patience", "checkpoint_period": "save_period", "period": "save_period",
}


def check_keys(data: dict[str, Any], source: str = "config") -> None:
    """Raise a UserError naming unknown option names, with close matches."""
    known = TrainConfig.field_names()
    unknown = [k for k in data if k not in known]
    if not unknown:
        return
    hints = []
    for k in unknown:
        key = str(k).replace("-", "_").lower()
        close = [ALIASES[key]] if key in ALIASES else difflib.get_close_matches(key, known, n=2, cutoff=0.6)
        hints.append(f"{k!r}" + (f" (did you mean {' or '.join(close)}?)" if close else ""))
    raise UserError(f"{source}: unknown option{'s' if len(unknown) > 1 else ''} " + ", ".join(hints))


def _field_type(name: str) -> Any:
    hints = typing.get_type_hints(TrainConfig)
    return hints[name]


def _allows_none(tp: Any) -> bool:
    origin = typing.get_origin(tp)
    return (origin is Union or origin is types.UnionType) and type(None) in typing.get_args(tp)


def coerce(name: str, value: Any) -> Any:
    """Convert ``value`` (from YAML or the command line) to the type of option ``name``."""
    tp = _field_type(name)
    if value is None:
        if _allows_none(tp):
            return None
        raise UserError(f"option {name} cannot be null")
    if isinstance(value, str) and value.strip().lower() in ("none", "null", "off") and _allows_none(tp):
        return None
    options = [a for a in typing.get_args(tp) if a is not type(None)] if typing.get_args(tp) else [tp]
    if typing.get_origin(tp) in (dict, list):
        options = [tp]
    errors = []
    for opt in options:
        try:
            return _coerce_one(opt, value)
        except (TypeError, ValueError) as e:
            errors.append(str(e))
    raise UserError(f"option {name}: cannot use {value!r} ({'; '.join(errors)})")


def _coerce_one(tp: Any, value: Any) -> Any:
    origin = typing.get_origin(tp)
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("1", "true", "yes", "on"):
            return True
        if isinstance(value, str) and value.strip().lower() in ("0", "false", "no", "off"):
            return False
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise ValueError("expected true or false")
    if tp is int:
        if isinstance(value, bool):
            raise TypeError("expected an integer")
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, (int, str)):
            return int(value)
        raise TypeError("expected an integer")
    if tp is float:
        if isinstance(value, bool):
            raise TypeError("expected a number")
        return float(value)
    if tp is str:
        if isinstance(value, (dict, list)):
            raise TypeError("expected a string")
        return str(value)
    if origin is list:
        (item,) = typing.get_args(tp) or (Any,)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = [value]
        if isinstance(value, str):
            value = _parse_list(value)
        if not isinstance(value, (list, tuple)):
            raise TypeError("expected a list")
        return [_coerce_one(item, v) if item is not Any else v for v in value]
    if origin is dict:
        if not isinstance(value, dict):
            raise TypeError("expected a mapping")
        return dict(value)
    return value


def _only_str(tp: Any) -> bool:
    args = [a for a in typing.get_args(tp) if a is not type(None)] or [tp]
    return args == [str]


def _parse_list(text: str) -> list[Any]:
    import yaml

    parsed = yaml.safe_load(text) if text.strip().startswith("[") else [p for p in text.split(",") if p.strip()]
    if not isinstance(parsed, list):
        raise TypeError("expected a list")
    return parsed


def parse_cli_overrides(args: list[str]) -> dict[str, Any]:
    """Parse extra ``--option value`` / ``--flag`` / ``--no-flag`` / ``option=value`` arguments."""
    import yaml

    known = TrainConfig.field_names()
    out: dict[str, Any] = {}
    i = 0
    while i < len(args):
        tok = args[i]
        i += 1
        if tok.startswith("--"):
            key, eq, val = tok[2:].partition("=")
        elif "=" in tok:
            key, _, val = tok.partition("=")
            eq = "="
        else:
            raise UserError(f"unexpected argument {tok!r} (options look like --name VALUE)")
        key = key.replace("-", "_")
        negate = key.startswith("no_") and key not in known and key[3:] in known
        if negate:
            key = key[3:]
        check_keys({key: None}, "command line")
        is_bool = _field_type(key) is bool
        if negate:
            out[key] = False
            continue
        if not eq:
            if is_bool and (i >= len(args) or args[i].startswith("--")):
                out[key] = True
                continue
            if i >= len(args):
                raise UserError(f"option --{key.replace('_', '-')} needs a value")
            val = args[i]
            i += 1
        try:
            parsed = yaml.safe_load(val) if val != "" else ""
        except yaml.YAMLError:
            parsed = val
        if _only_str(_field_type(key)) and not (isinstance(val, str) and val.lower() in ("null", "none")):
            parsed = val
        out[key] = coerce(key, parsed)
    return out
