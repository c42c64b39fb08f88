"""Two-stage detection as an engine task: a torchvision Faster R-CNN that brings its own loss (the loss
dict of train mode) and its own decoding, on the detection task's data, augmentation, validation mAP,
plots and run folder (everything else is ``DetectTask``'s)."""

from __future__ import annotations

import time
from typing import Any

import torch
from torch import nn

from cnnlab.engine.loop import Engine
from cnnlab.io import plain_data
from cnnlab.tasks.detect.data import ValidationSet, load_train_val
from cnnlab.tasks.detect.task import CHECKPOINT_VERSION, DetectTask

#: torchvision's loss names -> cnnlab's logged keys
LOSSES = {"loss_classifier": "cls_loss", "loss_box_reg": "box_loss", "loss_objectness": "rpn_obj_loss",
          "loss_rpn_box_reg": "rpn_box_loss"}


class TwoStageTask(DetectTask):
    """Faster R-CNN (``cnnlab.detect.twostage``): RPN + RoI-head losses summed, COCO mAP."""

    train_keys = ("loss", *LOSSES.values())
    train_method = "forward"       # train mode: model(images, targets) -> loss dict
    loss_reduction = "mean"        # torchvision's losses are means over the batch

    def setup(self, cfg: Any, device: torch.device) -> tuple[nn.Module, Any]:
        from cnnlab.detect.train.dataset import AugmentOptions, DetectionLoader, DetectionTrainSet
        from cnnlab.detect.twostage import TwoStageDetector, build_two_stage

        train_set, val_set = load_train_val(cfg, self.log)
        self.names = list(train_set.names)
        self.sizes = (len(train_set), len(val_set))
        ckpt = self.resume_ckpt
        if ckpt is not None:
            model = TwoStageDetector.from_spec(ckpt["torchvision"])
            self.info = dict(ckpt.get("init") or {})
        else:
            model, self.info = build_two_stage(cfg.model, len(self.names), cfg.imgsz, cfg.weights, cfg.seed)
            if cfg.optimizer.lower() == "auto":
                self._auto_optimizer(cfg, len(train_set))
        aug = AugmentOptions.from_config(cfg) if cfg.augment else None
        self.train_data = DetectionTrainSet(train_set.samples, cfg.imgsz, aug, cfg.seed, cfg.cache)
        loader = DetectionLoader(self.train_data, cfg.batch, shuffle=True, seed=cfg.seed,
                                 multi_scale=cfg.multi_scale)
        self.val_data = ValidationSet(val_set.samples, cfg.imgsz, cfg.cache)
        self.n_params = sum(p.numel() for p in model.parameters())
        return model, loader

    def train_mode(self, model: nn.Module) -> None:
        model.train()

    def loss(self, model: nn.Module, batch: Any, engine: Engine) -> tuple[torch.Tensor, dict[str, torch.Tensor], int]:
        from cnnlab.detect.twostage import rows_to_targets

        x, t = batch
        if engine.epoch == 0 and engine.batch_index == 0 and self.cfg.plots and not self.resuming and engine.is_main:
            from cnnlab.detect.train.plots import save_train_batch

            save_train_batch(self.run_dir / "train_batch0.jpg", x.float().cpu(), t, self.names)
        n, h, w = x.shape[0], x.shape[2], x.shape[3]
        parts = model(x, rows_to_targets(t, n, h, w, x.device))
        total = sum(parts.values())
        logged = {LOSSES[k]: v.detach() * n for k, v in parts.items() if k in LOSSES}
        logged["loss"] = total.detach() * n
        return total, logged, n

    @torch.no_grad()
    def validate(self, model: nn.Module, engine: Engine) -> dict[str, Any]:
        """COCO mAP of the (EMA) model on the validation images, preprocessed as ``Detector`` does."""
        from cnnlab.detect.evaluate import evaluate_detections
        from cnnlab.detect.processing import postprocess_output
        from cnnlab.detect.types import Detections
        from cnnlab.engine.progress import Progress

        cfg = self.cfg
        model.eval()
        preds: dict[int, Detections] = {}
        t0 = time.perf_counter()
        batch = max(1, cfg.batch)
        val: ValidationSet = self.val_data
        with Progress(f"validation {engine.epoch + 1}/{engine.epochs}", -(-len(val.samples) // batch),
                      enabled=cfg.verbose == 1) as bar:
            for idx, x, _, metas in val.batches(batch):
                boxes, scores, labels = (o.cpu().numpy() for o in model(x.to(engine.device)))
                for k, i in enumerate(idx):
                    preds[i] = postprocess_output([boxes[k], scores[k], labels[k]], "boxes", metas[k], self.names,
                                                  cfg.conf, cfg.iou, 300)
                bar.advance()
        seconds = time.perf_counter() - t0
        result = evaluate_detections(val.samples, preds, self.names)
        self.last_eval = result
        if cfg.plots and self.run_dir is not None:
            from cnnlab.detect.train.plots import save_val_samples

            k = min(4, len(val.samples))
            save_val_samples(self.run_dir / "val_samples.jpg", [val.image(i) for i in range(k)],
                             [(val.samples[i].boxes, val.samples[i].class_ids) for i in range(k)],
                             [preds[i] for i in range(k)], self.names)
        return {"mAP50": float(result["mAP50"]), "mAP50_95": float(result["mAP50_95"]),
                "precision": float(result["precision"]), "recall": float(result["recall"]),
                "val_seconds": seconds}

    def checkpoint_meta(self, engine: Engine) -> dict[str, Any]:
        return {"version": CHECKPOINT_VERSION, "torchvision": engine.model.spec(), "names": list(self.names),
                "imgsz": [self.cfg.imgsz, self.cfg.imgsz], "letterbox": True, "init": plain_data(self.info)}

    def on_checkpoint(self, engine: Engine, which: str, path: Any) -> None:
        """No Darknet files: a torchvision model has no cfg."""

    def plots(self, run_dir: Any, history: list[dict[str, Any]]) -> None:
        from cnnlab.detect.train.plots import plot_detect_curves

        plot_detect_curves(history, run_dir / "results.png", losses=tuple(LOSSES.values()))

    def epoch_line(self, epoch: int, epochs: int, logs: dict[str, Any]) -> str:
        parts = [f"epoch {epoch}/{epochs}", f"loss {logs['loss']:.4f} = cls {logs['cls_loss']:.4f} + box "
                 f"{logs['box_loss']:.4f} + rpn obj {logs['rpn_obj_loss']:.4f} + rpn box {logs['rpn_box_loss']:.4f}"]
        if "mAP50" in logs:
            parts.append(f"val mAP50 {logs['mAP50']:.4f} mAP50-95 {logs['mAP50_95']:.4f}")
        parts.append(f"{logs['epoch_time']:.1f}s")
        return " - ".join(parts)
