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
from cnnlab.tasks.dense import DenseTask, LoadedModel, channel_stats
from cnnlab.tasks.segment.data import IGNORE, SegmentLoader, load_train_val
from cnnlab.tasks.segment.metrics import evaluate, scores
from cnnlab.tasks.segment.model import build_segmenter, load_local_weights


class SegmentTask(DenseTask):
    """A class for every pixel: a U-Net / FCN / torchvision model on :class:`SegmentData` batches."""

    name = "segment"
    train_keys = ("loss", "pixel_accuracy")

    def __init__(self, cfg: SegmentConfig) -> None:
        super().__init__(cfg)
        self.cfg: SegmentConfig = cfg

    def setup(self, cfg: SegmentConfig, device: torch.device) -> tuple[nn.Module, Any]:
        self.train_data, self.val_data = load_train_val(cfg)
        self.classes = self.train_data.classes
        mean, std = channel_stats(self.train_data)
        spec = {"name": cfg.model, "num_classes": len(self.classes), "in_chans": 3, "width": cfg.width,
                "img_size": cfg.imgsz}
        model = build_segmenter(spec)
        self.init = load_local_weights(model, cfg.weights) if cfg.weights and not self.resuming else ""
        self.describe(spec, self.classes, mean, std, model)
        self.val_loader = SegmentLoader(self.val_data, max(cfg.batch, 16), mean, std)
        return model, SegmentLoader(self.train_data, cfg.batch, mean, std, shuffle=True, fliplr=cfg.fliplr,
                                    seed=cfg.seed)

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

    def plot_curves(self, history: list[dict[str, Any]], path: Path) -> None:
        from cnnlab.tasks.segment.plots import plot_curves

        plot_curves(history, path)

    def load_best(self, path: Path) -> LoadedModel:
        from cnnlab.tasks.segment.infer import load_segmenter

        return load_segmenter(path)

    def finish(self, engine: Engine) -> dict[str, Any]:
        """The best checkpoint's (EMA) weights on the validation images: metrics, masks, confusion."""
        run_dir = engine.run_dir
        assert run_dir is not None
        model = self.best_model(engine)
        loss, matrix = evaluate(model, self.val_loader, len(self.classes), engine.device)
        s = scores(matrix, self.classes)
        metrics = {**self.summary(engine, lambda h: h.get("val_miou")), "val_loss": loss,
                   "val_pixel_accuracy": s["pixel_accuracy"], "val_miou": s["miou"], "val_iou": s["iou"],
                   "confusion_matrix": matrix.tolist(), "classes": list(self.classes)}
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


