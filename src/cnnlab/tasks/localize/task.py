"""Classification + localisation as an engine task: one class and one box per image; cross-entropy +
smooth-L1 + GIoU; top-1 accuracy, mean IoU and "correct" (class right and IoU >= 0.5)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnlab.config.localize import LocalizeConfig
from cnnlab.engine.loop import Engine
from cnnlab.engine.task import Task
from cnnlab.tasks.localize.data import LocalizeLoader, channel_stats, load_train_val
from cnnlab.tasks.localize.metrics import evaluate, hits, losses
from cnnlab.tasks.localize.model import build_localizer

CHECKPOINT_VERSION = 1


def fitness(logs: dict[str, Any]) -> float | None:
    """Which epoch is best: the "correct" rate, ties broken by the mean IoU."""
    return logs["val_correct"] + 1e-3 * logs["val_iou"] if "val_correct" in logs else None


class LocalizeTask(Task):
    """One object per image: a :class:`Localizer` on :class:`LocalizeData` batches."""

    name = "localize"
    train_keys = ("loss", "cls_loss", "box_loss", "giou_loss", "accuracy", "iou", "correct")

    def __init__(self, cfg: LocalizeConfig) -> None:
        super().__init__(cfg)
        self.cfg: LocalizeConfig = cfg
        self.gains = (cfg.cls_gain, cfg.box_gain, cfg.giou_gain)
        self.meta: dict[str, Any] = {}

    def setup(self, cfg: LocalizeConfig, device: torch.device) -> tuple[nn.Module, Any]:
        self.train_data, self.val_data = load_train_val(cfg)
        mean, std = channel_stats(self.train_data)
        classes = self.train_data.classes
        spec = {"backbone": cfg.model, "features": cfg.features, "num_classes": len(classes), "in_chans": 3,
                "img_size": cfg.imgsz}
        model = build_localizer(spec)
        self.meta = {"model_spec": spec, "classes": classes,
                     "preprocess": {"mean": list(mean), "std": list(std), "img_size": cfg.imgsz, "in_chans": 3}}
        self.val_loader = LocalizeLoader(self.val_data, max(cfg.batch, 64), mean, std)
        self.n_params = sum(p.numel() for p in model.parameters())
        return model, LocalizeLoader(self.train_data, cfg.batch, mean, std, shuffle=True, fliplr=cfg.fliplr,
                                     seed=cfg.seed)

    def run_config(self) -> dict[str, Any]:
        return {**self.cfg.to_dict(), "task": self.name, "names": list(self.meta["classes"])}

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

    def checkpoint_meta(self, engine: Engine) -> dict[str, Any]:
        return {"version": CHECKPOINT_VERSION, **self.meta}

    def on_epoch_end(self, engine: Engine, epoch: int, logs: dict[str, Any]) -> None:
        if self.cfg.plots and self.run_dir is not None:
            self.plots(self.run_dir, engine.history)

    def plots(self, run_dir: Path, history: list[dict[str, Any]]) -> None:
        from cnnlab.tasks.localize.plots import plot_curves

        plot_curves(history, run_dir / "curves.png")

    def finish(self, engine: Engine) -> dict[str, Any]:
        """The best checkpoint's (EMA) weights on the validation images: metrics and a picture."""
        from cnnlab.tasks.localize.infer import load_localizer

        run_dir = engine.run_dir
        assert run_dir is not None
        best = run_dir / "weights" / "best.pt"
        model = load_localizer(best).model.to(engine.device) if best.is_file() else engine.eval_model
        logs, preds = evaluate(model, self.val_loader, engine.device, self.gains)
        hist = engine.history
        best_row = max((h for h in hist if "val_correct" in h), key=fitness, default={})
        metrics = {"data": self.cfg.data, "model": self.cfg.model, "epochs": engine.epoch,
                   "params_trainable": self.n_params, "best_epoch": best_row.get("epoch"),
                   "train_time_s": round(engine.train_time, 3),
                   **{f"val_{k}": v for k, v in logs.items()},
                   **{k: v for k, v in (hist[-1] if hist else {}).items() if k in self.train_keys}}
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
