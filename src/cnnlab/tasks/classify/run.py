"""A classification training run: config, data, model, trainer, test evaluation and plots."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from cnnlab.config import TrainConfig, check_keys
from cnnlab.engine.callbacks import (
    Callback,
    EarlyStopping,
    HistoryLogger,
    ModelCheckpoint,
    ProgressLogger,
    TensorBoard,
)
from cnnlab.engine.checkpoint import load_checkpoint, load_weights, model_from_checkpoint
from cnnlab.engine.metrics import confusion_report, plot_confusion, plot_curves
from cnnlab.engine.optim import check_config
from cnnlab.engine.trainer import Trainer, evaluate_model, resolve_device, seed_everything
from cnnlab.errors import UserError
from cnnlab.io import read_yaml
from cnnlab.runs import CONFIG, new_run_dir, resolve_run, write_run_metrics
from cnnlab.tasks.classify.data import DataBundle, build_data

RESUME_OVERRIDES = ("epochs", "device", "threads", "workers", "verbose", "plots", "tensorboard", "patience")


# -----------------------------------------------------------------------------------------------
# results


@dataclass
class TrainResult:
    """What ``cnnlab.train`` returns; usable wherever a run folder path is expected."""

    run_dir: Path
    metrics: dict[str, Any]
    model: nn.Module
    history: list[dict[str, Any]] = field(default_factory=list)

    def __fspath__(self) -> str:
        return str(self.run_dir)

    def __str__(self) -> str:
        return str(self.run_dir)



# -----------------------------------------------------------------------------------------------
# configuration


def resolve_config(config: TrainConfig | dict | str | os.PathLike | None = None, **overrides: Any) -> TrainConfig:
    """A TrainConfig from a config object, dict or YAML file, with keyword overrides on top."""
    if config is None:
        cfg = TrainConfig()
    elif isinstance(config, TrainConfig):
        cfg = config
    elif isinstance(config, dict):
        cfg = TrainConfig.from_dict(config)
    elif isinstance(config, (str, os.PathLike)):
        cfg = TrainConfig.from_yaml(config)
    else:
        raise UserError(f"config must be a TrainConfig, a dict or a YAML path, not {type(config).__name__}")
    cfg = cfg.replace(**overrides) if overrides else cfg
    cfg.validate()
    return cfg



# -----------------------------------------------------------------------------------------------
# train


def train(config: TrainConfig | dict | str | os.PathLike | None = None, callbacks: Sequence[Callback] = (),
          resume: str | os.PathLike | None = None, **overrides: Any) -> TrainResult:
    """Train a classifier; returns the run folder, final metrics and the best model.

    ``config`` is a TrainConfig, a dict or a YAML file; keyword ``overrides`` win over it.
    ``resume`` (a run folder or its ``last.pt``) continues an interrupted run from its last epoch.
    """
    ckpt, run_dir = None, None
    if resume is not None:
        run_dir, cfg, ckpt = _resume_state(resume, overrides)
    else:
        cfg = resolve_config(config, **overrides)
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    try:
        return _train(cfg, ckpt, run_dir, callbacks)
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)


def _train(cfg: TrainConfig, ckpt: dict | None, run_dir: Path | None, callbacks: Sequence[Callback]) -> TrainResult:
    device = resolve_device(cfg.device)
    check_config(cfg)
    if cfg.tensorboard:
        TensorBoard.check_available()
    seed_everything(cfg.seed, cfg.deterministic)
    if device.type == "cuda" and not cfg.deterministic:
        torch.backends.cudnn.benchmark = True
    say = _printer(cfg.verbose)

    data = build_data(cfg, device, norm=_input_norm(cfg))
    model = _create_model(cfg, data)
    from cnnlab.models import count_params
    from cnnlab.models.transfer import freeze, freeze_cut, load_pretrained

    if cfg.weights and ckpt is None:
        init = load_checkpoint(cfg.weights)
        load_weights(model, init.get("ema") or init["model"], init.get("model_spec"), str(cfg.weights))
        say(f"initialised from {cfg.weights}")
    if cfg.pretrained and ckpt is None:
        say(f"pretrained: {load_pretrained(model, cfg.pretrained)}")
    if cfg.freeze is not None:
        freeze(model, cfg.freeze)
    if cfg.unfreeze is not None:
        freeze_cut(model, cfg.unfreeze)  # a bad phase-2 spec fails now, not after phase 1
    trainable, frozen = count_params(model)
    say(f"model {cfg.model}: {trainable:,} trainable + {frozen:,} non-trainable parameters"
        + (f" (freeze={cfg.freeze})" if cfg.freeze is not None else ""))

    if run_dir is None:
        run_dir = new_run_dir(cfg.project, "classify", cfg.name, exist_ok=cfg.exist_ok)
        cfg.to_yaml(run_dir / CONFIG)
    say(f"run folder {run_dir}  ({data.num_train} train / {data.num_val} validation images, "
        f"{len(data.classes)} classes, device {device})")

    meta = {"model_spec": model.cnnlab_spec, "config": cfg.to_dict(), "classes": data.classes,
            "preprocess": {"mean": list(data.mean), "std": list(data.std), "img_size": data.img_size,
                           "in_chans": data.in_chans}}
    trainer = Trainer(model, cfg, data.train, data.val, num_classes=len(data.classes),
                      callbacks=_callbacks(cfg, run_dir, callbacks), meta=meta, device=device)
    if ckpt is not None:
        trainer.load_checkpoint(ckpt)
        say(f"resuming after epoch {trainer.epoch} of {cfg.total_epochs}")
    try:
        trainer.fit()
    except KeyboardInterrupt:
        say(f"interrupted after epoch {trainer.epoch}; continue with: cnnlab train --resume {run_dir}")
        raise

    metrics = _finish(trainer, data, run_dir, cfg, (trainable, frozen))
    say(f"test accuracy {metrics.get('test_accuracy', float('nan')):.4f}  -> {run_dir}")
    best_model = trainer.eval_model
    best = run_dir / "weights" / "best.pt"
    if best.is_file():
        best_model = model_from_checkpoint(load_checkpoint(best), str(best)).to(device)
    return TrainResult(run_dir, metrics, best_model.eval(), trainer.history)


def _create_model(cfg: TrainConfig, data: DataBundle) -> nn.Module:
    from cnnlab.errors import ModelError
    from cnnlab.models import create_model

    name, kwargs = model_name_and_kwargs(cfg)
    model = create_model(name, num_classes=len(data.classes), in_chans=data.in_chans,
                         img_size=data.img_size, max_params=cfg.max_params, **kwargs)
    # one dry forward pass: a model that cannot take these inputs fails here with one line, not mid-epoch
    shape = (2, data.in_chans, data.img_size, data.img_size)
    try:
        with torch.no_grad():
            out = model.eval()(torch.zeros(shape))
    except RuntimeError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelError(f"model {cfg.model} cannot take {cfg.dataset} inputs of shape "
                         f"{data.in_chans}x{data.img_size}x{data.img_size}: {first[:200]}") from None
    model.train()
    if tuple(out.shape) != (2, len(data.classes)):
        raise ModelError(f"model {cfg.model} returns shape {tuple(out.shape[1:])} per image, "
                         f"expected ({len(data.classes)},) class scores")
    return model


def model_name_and_kwargs(cfg: TrainConfig) -> tuple[str, dict[str, Any]]:
    """The registry name and options behind ``cfg.model``.

    A familiar backbone name (``ResNet50V2``, ``mobilenet``...) that is not a cnnlab model, or a
    ``timm/<name>`` asked for with ``pretrained`` weights, becomes the ``transfer`` model with that
    backbone and a new head.
    """
    from cnnlab.models.registry import is_model_name
    from cnnlab.models.transfer import ALIASES

    key = "".join(ch for ch in cfg.model.lower() if ch.isalnum())
    familiar = key in ALIASES and not is_model_name(cfg.model)
    if familiar or (cfg.model.startswith("timm/") and cfg.pretrained):
        return "transfer", {"backbone": cfg.model, **cfg.model_kwargs}
    return cfg.model, dict(cfg.model_kwargs)


def _input_norm(cfg: TrainConfig) -> dict[str, float] | None:
    """The input scaling a model asks for itself (``cnnlab_input`` on its registry function)."""
    from cnnlab.models.registry import get_entry, is_model_name

    name, _ = model_name_and_kwargs(cfg)
    if name.startswith("timm/") or not is_model_name(name):
        return None
    return getattr(get_entry(name).fn, "cnnlab_input", None)


def _resume_state(resume: str | os.PathLike, overrides: dict[str, Any]) -> tuple[Path, TrainConfig, dict]:
    p = Path(resume)
    run_dir = resolve_run(p)
    last = p if p.is_file() else run_dir / "weights" / "last.pt"
    if not last.is_file():
        raise UserError(f"cannot resume {run_dir}: no weights/last.pt (no epoch was completed)")
    ckpt = load_checkpoint(last)
    check_keys(overrides, "resume")
    fixed = sorted(k for k in overrides if k not in RESUME_OVERRIDES)
    if fixed:
        raise UserError(f"cannot change {', '.join(fixed)} when resuming (allowed: {', '.join(RESUME_OVERRIDES)})")
    base = read_yaml(run_dir / CONFIG) or {}
    cfg = TrainConfig.from_dict({**base, **overrides}, source=str(run_dir / CONFIG))
    if int(ckpt["epoch"]) >= cfg.total_epochs:
        raise UserError(f"{run_dir} already completed {ckpt['epoch']} of {cfg.total_epochs} epochs "
                        "(pass --epochs N to train longer)")
    if cfg.epochs != int(base.get("epochs", cfg.epochs)):
        cfg.to_yaml(run_dir / CONFIG)
    return run_dir, cfg, ckpt


def _callbacks(cfg: TrainConfig, run_dir: Path, user: Sequence[Callback]) -> list[Callback]:
    """Built-in callbacks first (history, early stopping, checkpoints), then the user's."""
    cbs: list[Callback] = [HistoryLogger(run_dir)]
    if cfg.verbose:
        cbs.append(ProgressLogger())
    if cfg.patience:
        cbs.append(EarlyStopping(cfg.monitor, cfg.patience, cfg.min_delta))
    cbs.append(ModelCheckpoint(run_dir / "weights", cfg.monitor, save_period=cfg.save_period))
    if cfg.tensorboard:
        cbs.append(TensorBoard(run_dir / "tensorboard"))
    return cbs + list(user)


def _finish(trainer: Trainer, data: DataBundle, run_dir: Path, cfg: TrainConfig,
            params: tuple[int, int]) -> dict[str, Any]:
    """Evaluate the best checkpoint on the test split, write metrics.json and the plots."""
    metrics: dict[str, Any] = {"dataset": cfg.dataset, "model": cfg.model, "epochs": trainer.epoch,
                               "params_trainable": params[0], "params_non_trainable": params[1],
                               "train_time_s": round(trainer.train_time, 3)}
    hist = trainer.history
    if hist:
        metrics["images_per_s"] = float(np.mean([h["images_per_s"] for h in hist]))
        metrics["epoch_time_s"] = float(np.mean([h["epoch_time"] for h in hist]))
        metrics.update({k: v for k, v in hist[-1].items() if k in ("loss", "accuracy", "top5_accuracy")})
    ckpt_cb = next((c for c in trainer.callbacks if isinstance(c, ModelCheckpoint)), None)
    best_path = run_dir / "weights" / "best.pt"
    model = trainer.eval_model
    if ckpt_cb is not None and ckpt_cb.best_epoch is not None and best_path.is_file():
        best_row = hist[ckpt_cb.best_epoch - 1] if ckpt_cb.best_epoch <= len(hist) else {}
        metrics.update({"best_epoch": ckpt_cb.best_epoch, "monitor": cfg.monitor, "best_" + cfg.monitor: ckpt_cb.best})
        metrics.update({k: v for k, v in best_row.items() if k.startswith("val_")})
        model = model_from_checkpoint(load_checkpoint(best_path), str(best_path)).to(trainer.device)
    eval_loader = data.test if data.test is not None else data.val
    split = "test" if data.test is not None else "val"
    if eval_loader is not None:
        logs, meter = evaluate_model(model, eval_loader, len(data.classes), trainer.device, confusion=True,
                                     amp=trainer.amp, channels_last=cfg.channels_last)
        metrics.update({f"{split}_{k}": v for k, v in logs.items() if k in ("loss", "accuracy", "top5_accuracy")})
        metrics[split] = {**logs, **confusion_report(meter.matrix, data.classes)}
        if cfg.plots:
            plot_confusion(meter.matrix, data.classes, run_dir / "confusion.png",
                           title=f"{cfg.model} on {cfg.dataset} ({split}), accuracy {logs['accuracy']:.4f}")
    if cfg.plots and hist:
        plot_curves(hist, run_dir / "curves.png")
    write_run_metrics(run_dir, metrics)
    return metrics


def _printer(verbose: int) -> Callable[[str], None]:
    def say(msg: str) -> None:
        if verbose:
            from rich.console import Console

            Console(highlight=False).print(msg, soft_wrap=True)

    return say


