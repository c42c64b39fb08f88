"""Classification + localisation as an engine task: one class and one box per image; cross-entropy +
smooth-L1 + GIoU; top-1 accuracy, mean IoU and "correct" (class right and IoU >= 0.5)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnlab.config.localize import LocalizeConfig
from cnnlab.engine.loop import Engine
from cnnlab.tasks.dense import DenseTask, LoadedModel, channel_stats
from cnnlab.tasks.localize.data import LocalizeLoader, load_train_val
from cnnlab.tasks.localize.metrics import evaluate, hits, losses
from cnnlab.tasks.localize.model import build_localizer


def fitness(logs: dict[str, Any]) -> float | None:
    """Which epoch is best: the "correct" rate, ties broken by the mean IoU."""
    return logs["val_correct"] + 1e-3 * logs["val_iou"] if "val_correct" in logs else None


class LocalizeTask(DenseTask):
    """One object per image: a :class:`Localizer` on :class:`LocalizeData` batches."""

    name = "localize"
    train_keys = ("loss", "cls_loss", "box_loss", "giou_loss", "accuracy", "iou", "correct")

    def __init__(self, cfg: LocalizeConfig) -> None:
        super().__init__(cfg)
        self.cfg: LocalizeConfig = cfg
        self.gains = (cfg.cls_gain, cfg.box_gain, cfg.giou_gain)

    def setup(self, cfg: LocalizeConfig, device: torch.device) -> tuple[nn.Module, Any]:
        self.train_data, self.val_data = load_train_val(cfg)
        mean, std = channel_stats(self.train_data)
        classes = self.train_data.classes
        spec = {"backbone": cfg.model, "features": cfg.features, "num_classes": len(classes), "in_chans": 3,
                "img_size": cfg.imgsz}
        model = build_localizer(spec)
        self.describe(spec, classes, mean, std, model)
        self.val_loader = LocalizeLoader(self.val_data, max(cfg.batch, 64), mean, std)
        return model, LocalizeLoader(self.train_data, cfg.batch, mean, std, shuffle=True, fliplr=cfg.fliplr,
                                     seed=cfg.seed)

    def started(self, run_dir: Path, device: torch.device, say: Any) -> None:
        say(f"localize-train: {self.cfg.model} ({self.n_params / 1e6:.2f}M parameters, "
            f"{len(self.meta['classes'])} classes) on {len(self.train_data)} train / {len(self.val_data)} val "
            f"images at {self.cfg.imgsz}px, device {device} -> {run_dir}")

    def to_device(self, batch: Any, device: torch.device, channels_last: bool) -> Any:
        x, (y, b) = batch
        x = x.to(device, non_blocking=True)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, (y.to(device), b.to(device))

    def loss(self, model: nn.Module, batch: Any, engine: Engine) -> tuple[torch.Tensor, dict[str, torch.Tensor], int]:
        x, (y, b) = batch
        logits, box = model(x)
        total, parts = losses(logits, box, y, b, self.gains)
        n = x.shape[0]
        with torch.no_grad():
            logged = {"loss": total.detach() * n, **{f"{k}_loss": v.detach() * n for k, v in parts.items()},
                      **hits(logits.detach(), box.detach(), y, b)}
        return total, logged, n

    def validate(self, model: nn.Module, engine: Engine) -> dict[str, Any]:
        logs, _ = evaluate(model, self.val_loader, engine.device, self.gains)
        return {f"val_{k}": v for k, v in logs.items()}

    def fitness(self, logs: dict[str, Any]) -> float | None:
        return fitness(logs)

    def plot_curves(self, history: list[dict[str, Any]], path: Path) -> None:
        from cnnlab.tasks.localize.plots import plot_curves

        plot_curves(history, path)

    def load_best(self, path: Path) -> LoadedModel:
        from cnnlab.tasks.localize.infer import load_localizer

        return load_localizer(path)

    def finish(self, engine: Engine) -> dict[str, Any]:
        """The best checkpoint's (EMA) weights on the validation images: metrics and a picture."""
        run_dir = engine.run_dir
        assert run_dir is not None
        model = self.best_model(engine)
        logs, preds = evaluate(model, self.val_loader, engine.device, self.gains)
        metrics = {**self.summary(engine, fitness), **{f"val_{k}": v for k, v in logs.items()}}
        if self.cfg.plots:
            from cnnlab.tasks.localize.plots import plot_predictions

            k = min(16, len(self.val_data))
            iou = _pair_iou(preds["boxes"][:k], self.val_data.boxes[:k])
            plot_predictions(self.val_data.images[:k].numpy(), (self.val_data.labels[:k].numpy(),
                             self.val_data.boxes[:k].numpy()), (preds["labels"][:k].numpy(),
                             preds["scores"][:k].numpy(), preds["boxes"][:k].numpy(), iou.numpy()),
                             self.meta["classes"], run_dir / "val_predictions.png",
                             f"{self.cfg.model}: top-1 {logs['accuracy']:.3f}, mean IoU {logs['iou']:.3f}, "
                             f"correct {logs['correct']:.3f} (green: truth, red: prediction)")
        return metrics


def _pair_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    from torchvision.ops import box_iou

    return box_iou(a, b).diagonal() if len(a) else torch.zeros(0)
