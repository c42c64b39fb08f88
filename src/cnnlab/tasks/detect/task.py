"""YOLO detection as an engine task: YOLO targets and losses on letterboxed, augmented batches; COCO mAP
on the validation images; Darknet ``.cfg``/``.weights`` beside every checkpoint."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnlab.config import DetectTrainConfig
from cnnlab.engine.loop import Engine
from cnnlab.engine.task import Task
from cnnlab.io import plain_data
from cnnlab.tasks.detect.data import ValidationSet, load_train_val, resolve_anchors

CHECKPOINT_VERSION = 2   # v2: "model" = training weights, "ema" = EMA weights (v1 kept EMA in "model")


def fitness(logs: dict[str, Any]) -> float:
    """Which epoch is best: 0.1 mAP@0.5 + 0.9 mAP@0.5:0.95 (as Ultralytics)."""
    return 0.1 * float(logs.get("mAP50", 0.0)) + 0.9 * float(logs.get("mAP50_95", 0.0))


class DetectTask(Task):
    """Detection: a Darknet-family model, ``YoloLoss``, mosaic/affine/HSV augmentation, COCO mAP."""

    name = "detect"
    train_keys = ("loss", "box_loss", "obj_loss", "cls_loss")   # setup: the criterion's parts
    loss_parts: tuple[str, ...] = ("box", "obj", "cls")
    train_method = "forward_raw"   # the undecoded maps the loss needs
    loss_reduction = "sum"         # YoloLoss total = (box + obj + cls) x batch size

    def __init__(self, cfg: DetectTrainConfig, log: Any = print) -> None:
        super().__init__(cfg)
        self.cfg: DetectTrainConfig = cfg
        self.log = log
        self.names: list[str] = []
        self.info: dict[str, Any] = {}
        self.last_eval: dict[str, Any] = {}

    # -- setup --------------------------------------------------------------------------------------
    def setup(self, cfg: DetectTrainConfig, device: torch.device) -> tuple[nn.Module, Any]:
        from cnnlab.detect.train.dataset import AugmentOptions, DetectionLoader, DetectionTrainSet
        from cnnlab.detect.train.model import training_criterion

        train_set, val_set = load_train_val(cfg, self.log)
        self.names = list(train_set.names)
        self.sizes = (len(train_set), len(val_set))
        ckpt = self.resume_ckpt
        if ckpt is not None and ckpt.get("model_spec") is not None:   # an anchor-free model (cnnlab-nano)
            from cnnlab.models import model_from_spec

            model = model_from_spec(ckpt["model_spec"])
            self.info = dict(ckpt.get("init") or {})
        elif ckpt is not None:
            from cnnlab.darknet.cfg import parse_cfg_text
            from cnnlab.darknet.model import DarknetModel

            model = DarknetModel(parse_cfg_text(ckpt["cfg"], source="last.pt"), source="last.pt")
            self.info = dict(ckpt.get("init") or {})
        else:
            from cnnlab.detect.train.model import build_training_model

            check = cfg.anchors == "check"
            anchors = None if check else resolve_anchors(cfg, train_set.samples, self.log)
            model, self.info = build_training_model(cfg.model, len(self.names), cfg.imgsz, cfg.width_mult,
                                                    anchors, cfg.weights, cfg.seed, names=self.names)
            if check:   # a fresh head may take new anchors; a pretrained one keeps those it learnt
                anchors = resolve_anchors(cfg, train_set.samples, self.log,
                                          pretrained_head=bool(self.info.get("head_pretrained")))
                if anchors is not None:
                    model, self.info = build_training_model(cfg.model, len(self.names), cfg.imgsz,
                                                            cfg.width_mult, anchors, cfg.weights, cfg.seed,
                                                            names=self.names)
            cfg.anchors = anchors   # what the run trains with (null: the cfg's), so a resume rebuilds it
            if self.info.get("head_classes"):
                self.log(f"head: {self.info['head_classes']}")
            if cfg.optimizer.lower() == "auto":
                self._auto_optimizer(cfg, len(train_set))
        if cfg.freeze:
            from cnnlab.detect.train.model import freeze_layers

            freeze_layers(model, cfg.freeze)
        aug = AugmentOptions.from_config(cfg) if cfg.augment else None
        self.train_data = DetectionTrainSet(train_set.samples, cfg.imgsz, aug, cfg.seed, cfg.cache)
        loader = DetectionLoader(self.train_data, cfg.batch, shuffle=True, seed=cfg.seed,
                                 multi_scale=cfg.multi_scale)
        self.val_data = ValidationSet(val_set.samples, cfg.imgsz, cfg.cache)
        self.n_params = sum(p.numel() for p in model.parameters())
        self.criterion = training_criterion(model, cfg)   # YoloLoss, or the model's own (anchor-free)
        self.loss_parts = tuple(getattr(self.criterion, "parts", ("box", "obj", "cls")))
        self.train_keys = ("loss", *(f"{k}_loss" for k in self.loss_parts))
        return model, loader

    def _auto_optimizer(self, cfg: DetectTrainConfig, images: int) -> None:
        """Replace ``optimizer auto`` by what it means for this run (saved so in config.yaml)."""
        from cnnlab.engine.optim import auto_optimizer

        name, lr, momentum, iterations = auto_optimizer(images, cfg.batch, cfg.epochs, len(self.names))
        cfg.optimizer, cfg.lr = name, lr
        if name == "sgd":
            cfg.momentum = momentum
        else:
            cfg.betas = [momentum, 0.999]
            cfg.warmup_bias_lr = 0.0 if cfg.warmup_bias_lr is not None else None   # no 0.1 bias lr for Adam
        cfg.min_lr = None   # the schedule's floor follows the new lr
        self.log(f"optimizer auto: {name} lr {lr:g} momentum {momentum:g} ({iterations} iterations "
                 f"{'>' if name == 'sgd' else '<='} 10000, {len(self.names)} classes)")

    def run_config(self) -> dict[str, Any]:
        return {**self.cfg.to_dict(), "task": "detect", "names": self.names, "init": plain_data(self.info)}

    def started(self, run_dir: Path, device: torch.device, say: Any) -> None:
        from cnnlab.io import atomic_write_text

        if not self.resuming:
            atomic_write_text(run_dir / "weights" / "classes.names", "".join(f"{n}\n" for n in self.names))
        cfg = self.cfg
        transferred = f", transferred {self.info['transferred']} tensors" if "transferred" in self.info else ""
        say(f"detect-train: {cfg.model} ({self.n_params / 1e6:.2f}M parameters, {len(self.names)} classes"
            f"{transferred}) on {self.sizes[0]} train / {self.sizes[1]} val images at {cfg.imgsz}px, "
            f"device {device} -> {run_dir}")

    # -- the step -----------------------------------------------------------------------------------
    def to_device(self, batch: Any, device: torch.device, channels_last: bool) -> Any:
        x, t = batch
        x = x.to(device, non_blocking=True)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, t

    def train_mode(self, model: nn.Module) -> None:
        model.train()
        for i, layer in enumerate(model.layers):  # frozen layers keep their BN statistics
            if i < self.cfg.freeze:
                layer.eval()

    def on_epoch_start(self, engine: Engine, epoch: int) -> None:
        self.train_data.mosaic_off = epoch - 1 >= self.cfg.epochs - self.cfg.close_mosaic_epochs()

    def loss(self, model: nn.Module, batch: Any, engine: Engine) -> tuple[torch.Tensor, dict[str, torch.Tensor], int]:
        x, t = batch
        if engine.epoch == 0 and engine.batch_index == 0 and self.cfg.plots and not self.resuming and engine.is_main:
            from cnnlab.detect.train.plots import save_train_batch

            save_train_batch(self.run_dir / "train_batch0.jpg", x.float().cpu(), t, self.names)
        raw = model(x)   # forward_raw (train_method)
        total, parts = self.criterion(raw, t, (x.shape[2], x.shape[3]))
        n = x.shape[0]
        logged = {f"{k}_loss": v.detach() * n for k, v in parts.items()}
        logged["loss"] = total.detach()   # = (weighted box + obj + cls) x batch: the parts add up to it
        return total, logged, n

    # -- validation ---------------------------------------------------------------------------------
    def should_validate(self, epoch: int, last: bool) -> bool:
        return epoch % self.cfg.val_period == 0 or last

    @torch.no_grad()
    def validate(self, model: nn.Module, engine: Engine) -> dict[str, Any]:
        """Validation losses and COCO mAP of the (EMA) model, preprocessed exactly as ``Detector`` does."""
        from cnnlab.detect.evaluate import evaluate_detections
        from cnnlab.detect.processing import postprocess_output
        from cnnlab.detect.types import Detections
        from cnnlab.engine.progress import Progress

        cfg = self.cfg
        model.eval()
        preds: dict[int, Detections] = {}
        sums = dict.fromkeys(self.loss_parts, 0.0)
        nb = 0
        t0 = time.perf_counter()
        batch = max(1, cfg.batch)
        n_batches = -(-len(self.val_data.samples) // batch)
        with Progress(f"validation {engine.epoch + 1}/{engine.epochs}", n_batches, enabled=cfg.verbose == 1) as bar:
            for idx, x, t, metas in self.val_data.batches(batch):
                x = x.to(engine.device)
                if engine.channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                raw = model.forward_raw(x)
                _, parts = self.criterion(raw, t, (x.shape[2], x.shape[3]))
                for k, v in parts.items():
                    sums[k] += float(v)
                nb += 1
                decoded = [d.cpu().numpy() for d in model.decode(raw, (x.shape[2], x.shape[3]))]
                for k, i in enumerate(idx):
                    preds[i] = postprocess_output([d[k] for d in decoded], "darknet", metas[k], self.names,
                                                  cfg.conf, cfg.iou, 300)
                bar.advance()
        seconds = time.perf_counter() - t0
        result = evaluate_detections(self.val_data.samples, preds, self.names)
        self.last_eval = result
        if cfg.plots and self.run_dir is not None:
            from cnnlab.detect.train.plots import save_val_samples

            k = min(4, len(self.val_data.samples))
            save_val_samples(self.run_dir / "val_samples.jpg", [self.val_data.image(i) for i in range(k)],
                             [(self.val_data.samples[i].boxes, self.val_data.samples[i].class_ids)
                              for i in range(k)], [preds[i] for i in range(k)], self.names)
        nb = max(nb, 1)
        val = {f"val_{k}_loss": v / nb for k, v in sums.items()}
        return {**val, "val_loss": sum(val.values()),
                "mAP50": float(result["mAP50"]), "mAP50_95": float(result["mAP50_95"]),
                "precision": float(result["precision"]), "recall": float(result["recall"]),
                "val_seconds": seconds}

    def fitness(self, logs: dict[str, Any]) -> float | None:
        return fitness(logs) if "mAP50" in logs else None

    # -- checkpoints, plots, the end ----------------------------------------------------------------
    def checkpoint_meta(self, engine: Engine) -> dict[str, Any]:
        model = engine.model
        arch = {"model_spec": plain_data(model.cnnlab_spec)} if getattr(model, "anchor_free", False) \
            else {"cfg": model.to_cfg()}
        return {"version": CHECKPOINT_VERSION, **arch, "names": list(self.names),
                "imgsz": [self.cfg.imgsz, self.cfg.imgsz], "letterbox": True, "init": plain_data(self.info)}

    def on_checkpoint(self, engine: Engine, which: str, path: Path) -> None:
        """``weights/<which>.cfg`` + ``.weights``: the inference (EMA) weights in Darknet format."""
        from cnnlab.darknet.weights import save_darknet_weights
        from cnnlab.io import atomic_write_text

        model = engine.eval_model
        if getattr(model, "anchor_free", False):   # no Darknet form: the .pt (and its ONNX export) only
            return
        atomic_write_text(path.with_suffix(".cfg"), model.to_cfg())
        save_darknet_weights(model, path.with_suffix(".weights"))

    def on_epoch_end(self, engine: Engine, epoch: int, logs: dict[str, Any]) -> None:
        if self.cfg.plots and self.run_dir is not None:
            self.plots(self.run_dir, engine.history)

    def plots(self, run_dir: Path, history: list[dict[str, Any]]) -> None:
        from cnnlab.detect.train.plots import plot_detect_curves

        plot_detect_curves(history, run_dir / "results.png")

    def epoch_line(self, epoch: int, epochs: int, logs: dict[str, Any]) -> str:
        terms = " + ".join(f"{k} {logs[f'{k}_loss']:.4f}" for k in self.loss_parts if f"{k}_loss" in logs)
        parts = [f"epoch {epoch}/{epochs}", f"loss {logs['loss']:.4f} = {terms}"]
        if "mAP50" in logs:
            parts.append(f"val mAP50 {logs['mAP50']:.4f} mAP50-95 {logs['mAP50_95']:.4f}")
        parts.append(f"{logs['epoch_time']:.1f}s")
        return " - ".join(parts)

    def finish(self, engine: Engine) -> dict[str, Any]:
        history = engine.history
        best = max((h for h in history if "mAP50" in h), key=fitness, default=history[-1] if history else {})
        last = history[-1] if history else {}
        return {"best_epoch": best.get("epoch"), "mAP50": best.get("mAP50"), "mAP50_95": best.get("mAP50_95"),
                "precision": best.get("precision"), "recall": best.get("recall"),
                "epochs_done": len(history), "last": plain_data(last),
                "train_seconds": float(sum(h.get("epoch_time", 0.0) for h in history)),
                "train_cpu_seconds": float(sum(h.get("epoch_cpu_time", 0.0) for h in history)),
                "per_class": plain_data(self.last_eval.get("per_class", {}))}
