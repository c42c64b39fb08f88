"""Semantic segmentation as an engine task: per-pixel cross-entropy; pixel accuracy, per-class IoU and
mIoU from a confusion matrix; masks-over-images and confusion-matrix plots."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.config.segment import SegmentConfig
from cnnlab.engine.loop import Engine
from cnnlab.engine.task import Task
from cnnlab.tasks.segment.data import IGNORE, SegmentLoader, channel_stats, load_train_val
from cnnlab.tasks.segment.metrics import evaluate, scores
from cnnlab.tasks.segment.model import build_segmenter, load_local_weights

CHECKPOINT_VERSION = 1


class SegmentTask(Task):
    """A class for every pixel: a U-Net / FCN / torchvision model on :class:`SegmentData` batches."""

    name = "segment"
    train_keys = ("loss", "pixel_accuracy")

    def __init__(self, cfg: SegmentConfig) -> None:
        super().__init__(cfg)
        self.cfg: SegmentConfig = cfg
        self.meta: dict[str, Any] = {}

    def setup(self, cfg: SegmentConfig, device: torch.device) -> tuple[nn.Module, Any]:
        self.train_data, self.val_data = load_train_val(cfg)
        self.classes = self.train_data.classes
        mean, std = channel_stats(self.train_data)
        spec = {"name": cfg.model, "num_classes": len(self.classes), "in_chans": 3, "width": cfg.width,
                "img_size": cfg.imgsz}
        model = build_segmenter(spec)
        self.init = load_local_weights(model, cfg.weights) if cfg.weights and not self.resuming else ""
        self.meta = {"model_spec": spec, "classes": list(self.classes),
                     "preprocess": {"mean": list(mean), "std": list(std), "img_size": cfg.imgsz, "in_chans": 3}}
        self.val_loader = SegmentLoader(self.val_data, max(cfg.batch, 16), mean, std)
        self.n_params = sum(p.numel() for p in model.parameters())
        return model, SegmentLoader(self.train_data, cfg.batch, mean, std, shuffle=True, fliplr=cfg.fliplr,
                                    seed=cfg.seed)

    def run_config(self) -> dict[str, Any]:
        return {**self.cfg.to_dict(), "task": self.name, "names": list(self.classes)}

    def started(self, run_dir: Path, device: torch.device, say: Any) -> None:
        init = f", {self.init}" if self.init else ""
        say(f"segment-train: {self.cfg.model} ({self.n_params / 1e6:.2f}M parameters, {len(self.classes)} classes"
            f"{init}) on {len(self.train_data)} train / {len(self.val_data)} val images at {self.cfg.imgsz}px, "
            f"device {device} -> {run_dir}")

    def loss(self, model: nn.Module, batch: Any, engine: Engine) -> tuple[torch.Tensor, dict[str, torch.Tensor], int]:
        x, m = batch
        logits = model(x)
        loss = F.cross_entropy(logits.float(), m, ignore_index=IGNORE)
        n = x.shape[0]
        with torch.no_grad():
            valid = (m != IGNORE).sum(dim=(1, 2)).clamp_min(1)
            right = ((logits.argmax(1) == m) & (m != IGNORE)).sum(dim=(1, 2))
            parts = {"loss": loss.detach() * n, "pixel_accuracy": (right / valid).sum()}
        return loss, parts, n

    def validate(self, model: nn.Module, engine: Engine) -> dict[str, Any]:
        loss, matrix = evaluate(model, self.val_loader, len(self.classes), engine.device)
        s = scores(matrix, self.classes)
        return {"val_loss": loss, "val_pixel_accuracy": s["pixel_accuracy"], "val_miou": s["miou"]}

    def fitness(self, logs: dict[str, Any]) -> float | None:
        return logs.get("val_miou")

    def checkpoint_meta(self, engine: Engine) -> dict[str, Any]:
        return {"version": CHECKPOINT_VERSION, **self.meta}

    def on_epoch_end(self, engine: Engine, epoch: int, logs: dict[str, Any]) -> None:
        if self.cfg.plots and self.run_dir is not None:
            self.plots(self.run_dir, engine.history)

    def plots(self, run_dir: Path, history: list[dict[str, Any]]) -> None:
        from cnnlab.tasks.segment.plots import plot_curves

        plot_curves(history, run_dir / "curves.png")

    def finish(self, engine: Engine) -> dict[str, Any]:
        """The best checkpoint's (EMA) weights on the validation images: metrics, masks, confusion."""
        from cnnlab.tasks.segment.infer import load_segmenter

        run_dir = engine.run_dir
        assert run_dir is not None
        best = run_dir / "weights" / "best.pt"
        model = load_segmenter(best).model.to(engine.device) if best.is_file() else engine.eval_model
        loss, matrix = evaluate(model, self.val_loader, len(self.classes), engine.device)
        s = scores(matrix, self.classes)
        hist = engine.history
        best_row = max((h for h in hist if "val_miou" in h), key=lambda h: h["val_miou"], default={})
        metrics = {"data": self.cfg.data, "model": self.cfg.model, "epochs": engine.epoch,
                   "params_trainable": self.n_params, "best_epoch": best_row.get("epoch"),
                   "train_time_s": round(engine.train_time, 3), "val_loss": loss,
                   "val_pixel_accuracy": s["pixel_accuracy"], "val_miou": s["miou"], "val_iou": s["iou"],
                   "confusion_matrix": matrix.tolist(), "classes": list(self.classes),
                   **{k: v for k, v in (hist[-1] if hist else {}).items() if k in self.train_keys}}
        if self.cfg.plots:
            self._pictures(model, engine.device, matrix, s, run_dir)
        return metrics

    @torch.no_grad()
    def _pictures(self, model: nn.Module, device: torch.device, matrix: torch.Tensor, s: dict[str, Any],
                  run_dir: Path) -> None:
        from cnnlab.tasks.classify.metrics import plot_confusion
        from cnnlab.tasks.segment.plots import plot_masks

        k = min(4, len(self.val_data))
        x, _ = next(iter(SegmentLoader(self.val_data.subset(list(range(k))), k, *self._norm())))
        pred = model.eval()(x.to(device)).argmax(1).cpu().numpy()
        plot_masks(self.val_data.images[:k].numpy(), self.val_data.masks[:k].numpy(), pred, self.classes,
                   run_dir / "val_masks.png", f"{self.cfg.model}: pixel accuracy {s['pixel_accuracy']:.3f}, "
                   f"mIoU {s['miou']:.3f} (validation)")
        plot_confusion(matrix, self.classes, run_dir / "confusion.png",
                       title=f"{self.cfg.model}: pixels, rows true class, columns predicted")

    def _norm(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        pre = self.meta["preprocess"]
        return tuple(pre["mean"]), tuple(pre["std"])


