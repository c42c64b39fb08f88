"""Image classification as an engine task: cross-entropy on (image, label) batches, accuracy metrics,
two-phase fine-tuning, test evaluation, curves and a confusion matrix."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from cnnlab.config import TrainConfig
from cnnlab.engine.callbacks import Callback, ModelCheckpoint
from cnnlab.engine.loop import Engine
from cnnlab.engine.optim import l1_penalty
from cnnlab.engine.task import Task
from cnnlab.errors import ModelError
from cnnlab.tasks.classify.evaluate import evaluate_model


class ClassifyTask(Task):
    """Classification: data from ``build_data``, a registry model, cross-entropy, val/test accuracy."""

    name = "classify"
    train_keys = ("loss", "accuracy", "top5_accuracy")

    def __init__(self, cfg: TrainConfig, *, num_classes: int | None = None, val_loader: Iterable | None = None,
                 meta: dict[str, Any] | None = None) -> None:
        super().__init__(cfg)
        self.cfg: TrainConfig = cfg
        self.num_classes = num_classes
        self.val_loader = val_loader
        self.meta = dict(meta or {})
        self.data: Any = None
        self.params = (0, 0)
        self.phase = 1
        self.criterion = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
        self.tta_ops = _tta_ops(cfg)

    # -- setup --------------------------------------------------------------------------------------
    def setup(self, cfg: TrainConfig, device: torch.device) -> tuple[nn.Module, Any]:
        from cnnlab.engine.checkpoint import load_checkpoint, load_weights
        from cnnlab.models import count_params, input_norm
        from cnnlab.models.transfer import freeze, freeze_cut, load_pretrained
        from cnnlab.tasks.classify.data import build_data

        say = self._say
        self.data = data = build_data(cfg, device, norm=input_norm(cfg.model, cfg.pretrained))
        self.num_classes, self.val_loader = len(data.classes), data.val
        model = create_classifier(cfg, data.in_chans, data.img_size, len(data.classes))
        if cfg.weights and not self.resuming:
            init = load_checkpoint(cfg.weights)
            load_weights(model, init.get("ema") or init["model"], init.get("model_spec"), str(cfg.weights))
            say(f"initialised from {cfg.weights}")
        if cfg.pretrained and not self.resuming:
            say(f"pretrained: {load_pretrained(model, cfg.pretrained)}")
        if cfg.whiten_init:
            self._whiten(model, data.train)
        if cfg.whiten == "zca" and not self.resuming and not cfg.weights:
            self._fit_zca(model, data)
        if cfg.freeze is not None:
            freeze(model, cfg.freeze)
        if cfg.unfreeze is not None:
            freeze_cut(model, cfg.unfreeze)  # a bad phase-2 spec fails now, not after phase 1
        self.params = count_params(model)
        say(f"model {cfg.model}: {self.params[0]:,} trainable + {self.params[1]:,} non-trainable parameters"
            + (f" (freeze={cfg.freeze})" if cfg.freeze is not None else ""))
        self.meta = {"model_spec": model.cnnlab_spec, "classes": data.classes,
                     "preprocess": {"mean": list(data.mean), "std": list(data.std), "img_size": data.img_size,
                                    "in_chans": data.in_chans}}
        return model, data.train

    def _whiten(self, model: nn.Module, loader: Any) -> None:
        """``whiten_init``: the first conv's filters from the training images' patch whitening, then fixed
        (on resume the checkpoint's weights replace them; freezing keeps the optimiser's groups equal)."""
        from cnnlab.models.patch_whitening import first_conv, loader_images, whiten_conv_

        conv = first_conv(model)
        if not self.resuming:
            n = whiten_conv_(conv, loader_images(loader, 5000, self.cfg.seed).to(conv.weight.device))
            self._say(f"whiten_init: {n} of {conv.out_channels} filters of the first conv from patch whitening")
        conv.weight.requires_grad_(False)

    def _fit_zca(self, model: nn.Module, data: Any) -> None:
        """Fit the model's ZCA layer on the (standardised, not augmented) training split."""
        import time

        from cnnlab.data import make_loader
        from cnnlab.models.zca import fit_zca, image_batches, whitening_of

        zca = whitening_of(model)
        assert zca is not None
        start = time.perf_counter()
        loader = make_loader(data.train_set, 512, shuffle=False, mean=data.mean, std=data.std,
                             num_workers=self.cfg.workers)
        mean, matrix = fit_zca(image_batches(loader), self.cfg.zca_epsilon)
        zca.set(mean, matrix)
        self._say(f"ZCA whitening fitted on {data.num_train} training images ({mean.numel()} dims, "
                  f"epsilon {self.cfg.zca_epsilon:g}, {time.perf_counter() - start:.1f}s)")

    def started(self, run_dir: Path, device: torch.device, say: Any) -> None:
        d = self.data
        say(f"run folder {run_dir}  ({d.num_train} train / {d.num_val} validation images, "
            f"{len(d.classes)} classes, device {device})")

    def _say(self, msg: str) -> None:
        if self.cfg.verbose:
            from cnnlab.engine.run import printer

            printer(self.cfg.verbose)(msg)

    # -- the step and its metrics -------------------------------------------------------------------
    def loss(self, model: nn.Module, batch: Any, engine: Engine) -> tuple[torch.Tensor, dict[str, torch.Tensor], int]:
        x, y = batch
        logits = model(x)
        loss = self.criterion(logits, y)
        if self.cfg.l1:
            loss = loss + self.cfg.l1 * l1_penalty(model)
        with torch.no_grad():
            n = x.shape[0]
            target = y.argmax(1) if y.ndim == 2 else y
            top = logits.detach().topk(min(5, logits.shape[1]), 1).indices.eq(target.view(-1, 1))
            parts = {"loss": loss.detach().float() * n, "accuracy": top[:, 0].sum(), "top5_accuracy": top.any(1).sum()}
        return loss, parts, n

    def train_mode(self, model: nn.Module) -> None:
        from cnnlab.models.transfer import set_frozen_bn_eval

        model.train()
        if self.cfg.freeze_bn:
            set_frozen_bn_eval(model)

    def validate(self, model: nn.Module, engine: Engine) -> dict[str, Any]:
        if self.val_loader is None:
            return {}
        val, _ = evaluate_model(model, self.val_loader, self.num_classes or 0, engine.device, amp=engine.amp,
                                channels_last=engine.channels_last, tta=self.tta_ops, bf16=engine.bf16_cpu)
        return {f"val_{k}": v for k, v in val.items() if k in ("loss", "accuracy", "top5_accuracy")}

    def fitness(self, logs: dict[str, Any]) -> float | None:
        return logs.get("val_accuracy")

    # -- two-phase fine-tuning ----------------------------------------------------------------------
    def on_epoch_start(self, engine: Engine, epoch: int) -> None:
        if self.phase == 1 and self.cfg.unfreeze_epochs and epoch > self.cfg.epochs:
            self.enter_phase2(engine)

    def enter_phase2(self, engine: Engine) -> None:
        """Phase 2: apply ``unfreeze``, a new optimiser and schedule at the phase-2 rate."""
        from cnnlab.models.transfer import freeze

        p2 = self.cfg.phase2()
        info = freeze(engine.model, p2.freeze)
        engine.set_optimizer(p2.optim())
        self.phase = 2
        engine.log(f"phase 2: unfreeze={p2.freeze} -> {info['trainable']:,} trainable parameters, "
                   f"lr {p2.lr:g}, {p2.epochs} epochs")

    def state_dict(self) -> dict[str, Any]:
        return {"phase": self.phase}

    def load_state_dict(self, engine: Engine, state: dict[str, Any]) -> None:
        if int(state.get("phase", 1)) == 2 and self.phase == 1:
            self.enter_phase2(engine)

    # -- checkpoints and the end of the run ---------------------------------------------------------
    def checkpoint_meta(self, engine: Engine) -> dict[str, Any]:
        return {"version": 1, "model_spec": self.meta.get("model_spec") or getattr(engine.model, "cnnlab_spec", None),
                "classes": self.meta.get("classes"), "preprocess": self.meta.get("preprocess"),
                "phase": self.phase}

    def finish(self, engine: Engine) -> dict[str, Any]:
        """Evaluate the best checkpoint on the test split (else validation); metrics and plots."""
        from cnnlab.engine.checkpoint import load_checkpoint, model_from_checkpoint
        from cnnlab.tasks.classify.metrics import confusion_report, plot_confusion, plot_curves

        cfg, data, run_dir, hist = self.cfg, self.data, engine.run_dir, engine.history
        assert run_dir is not None and data is not None
        metrics: dict[str, Any] = {"dataset": cfg.dataset, "model": cfg.model, "epochs": engine.epoch,
                                   "params_trainable": self.params[0], "params_non_trainable": self.params[1],
                                   "train_time_s": round(engine.train_time, 3)}
        if hist:
            metrics["images_per_s"] = float(np.mean([h["images_per_s"] for h in hist]))
            metrics["epoch_time_s"] = float(np.mean([h["epoch_time"] for h in hist]))
            metrics.update({k: v for k, v in hist[-1].items() if k in self.train_keys})
        ckpt_cb = next((c for c in engine.callbacks if isinstance(c, ModelCheckpoint)), None)
        best_path = run_dir / "weights" / "best.pt"
        model = engine.eval_model
        if ckpt_cb is not None and ckpt_cb.best_epoch is not None and best_path.is_file():
            best_row = hist[ckpt_cb.best_epoch - 1] if ckpt_cb.best_epoch <= len(hist) else {}
            metrics.update({"best_epoch": ckpt_cb.best_epoch, "monitor": cfg.monitor,
                            "best_" + cfg.monitor: ckpt_cb.best})
            metrics.update({k: v for k, v in best_row.items() if k.startswith("val_")})
            model = model_from_checkpoint(load_checkpoint(best_path), str(best_path)).to(engine.device)
        self.best_model = model
        eval_loader = data.test if data.test is not None else data.val
        split = "test" if data.test is not None else "val"
        if eval_loader is not None and cfg.test_eval:
            engine.log(f"{split} evaluation of the best weights: {len(eval_loader)} batches")
            logs, meter = evaluate_model(model, eval_loader, len(data.classes), engine.device, confusion=True,
                                         amp=engine.amp, channels_last=cfg.channels_last, tta=self.tta_ops,
                                         progress=cfg.verbose > 0, label=f"{split} evaluation", bf16=engine.bf16_cpu)
            metrics.update({f"{split}_{k}": v for k, v in logs.items() if k in ("loss", "accuracy", "top5_accuracy")})
            metrics[split] = {**logs, **confusion_report(meter.matrix, data.classes)}
            if cfg.plots:
                plot_confusion(meter.matrix, data.classes, run_dir / "confusion.png",
                               title=f"{cfg.model} on {cfg.dataset} ({split}), accuracy {logs['accuracy']:.4f}")
        if cfg.plots and hist:
            best = ckpt_cb.best_epoch if ckpt_cb is not None else None
            plot_curves(hist, run_dir / "curves.png", best_epoch=best, monitor=cfg.monitor)
        return metrics


def create_classifier(cfg: TrainConfig, in_chans: int, img_size: int, num_classes: int) -> nn.Module:
    """The registry model behind ``cfg.model`` for these inputs, checked with one dry forward pass (a
    model that cannot take them fails here with one line, not mid-epoch)."""
    from cnnlab.models import create_model, resolve_model

    name, kwargs = resolve_model(cfg.model, cfg.pretrained, cfg.model_options())
    model = create_model(name, num_classes=num_classes, in_chans=in_chans, img_size=img_size,
                         max_params=cfg.max_params, **kwargs)
    shape = (2, in_chans, img_size, img_size)
    try:
        with torch.no_grad():
            out = model.eval()(torch.zeros(shape))
    except RuntimeError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelError(f"model {cfg.model} cannot take {cfg.dataset} inputs of shape "
                         f"{in_chans}x{img_size}x{img_size}: {first[:200]}") from None
    model.train()
    if tuple(out.shape) != (2, num_classes):
        raise ModelError(f"model {cfg.model} returns shape {tuple(out.shape[1:])} per image, "
                         f"expected ({num_classes},) class scores")
    return model


class Trainer(Engine):
    """Keras-style ``fit`` of a classifier on your own loaders (no run folder, no checkpoints unless a
    ``ModelCheckpoint`` callback is given): the engine with a :class:`ClassifyTask`."""

    def __init__(self, model: nn.Module, config: TrainConfig, train_loader: Iterable,
                 val_loader: Iterable | None = None, *, num_classes: int, callbacks: Sequence[Callback] = (),
                 meta: dict[str, Any] | None = None, device: str | torch.device | None = None) -> None:
        task = ClassifyTask(config, num_classes=num_classes, val_loader=val_loader, meta=meta)
        super().__init__(task, config, model, train_loader, callbacks=callbacks, device=device)

    def evaluate(self, loader: Iterable, tta: bool = False, confusion: bool = False) -> dict[str, Any]:
        """Loss and accuracies of the evaluation weights on ``loader`` (Keras ``model.evaluate``)."""
        logs, meter = evaluate_model(self.eval_model, loader, self.task.num_classes, self.device, tta=tta,  # type: ignore[attr-defined]
                                     confusion=confusion, amp=self.amp, channels_last=self.channels_last,
                                     bf16=self.bf16_cpu)
        if confusion:
            logs["confusion"] = meter.matrix
        return logs


def _tta_ops(cfg: TrainConfig) -> tuple[str, ...]:
    """``--tta``: the flips the run trains with (a mirrored digit is another digit) and the shifted copies
    of ``tta_translate``, with a warning when there are none."""
    if not cfg.tta:
        return ()
    from cnnlab.errors import warn
    from cnnlab.tasks.classify.evaluate import tta_from_augment

    ops = tta_from_augment(cfg.augment, cfg.tta_translate)
    if not ops:
        warn("--tta: the run does not train with flips, so mirrored images would only mislead it; "
             "validating without TTA")
    return ops
