"""Load a trained classifier (run folder, checkpoint or ONNX) and use it: ``load``, ``evaluate``, ``predict``."""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from cnnlab.config import TrainConfig
from cnnlab.devices import resolve_device
from cnnlab.errors import UserError
from cnnlab.io import write_json
from cnnlab.notebook import Metrics
from cnnlab.sources import Resolved, resolve
from cnnlab.tasks.classify.data import _shape, folder_root, load_split
from cnnlab.tasks.classify.evaluate import evaluate_model
from cnnlab.tasks.classify.metrics import confusion_report


class LoadedModel(Resolved):
    """A trained classifier ready for inference (what :func:`load` returns): a :class:`Resolved`
    classifier (model in eval mode, classes, ``preprocessing`` with ``mean``/``std``/``img_size``/``in_chans``,
    spec, config, metrics, runtime, source) with batch inference on top."""

    @classmethod
    def of(cls, resolved: Resolved) -> LoadedModel:
        """The same model, with the inference methods."""
        if isinstance(resolved, cls):
            return resolved
        return cls(**{f.name: getattr(resolved, f.name) for f in dataclasses.fields(resolved)})

    def preprocess(self, images: Sequence[np.ndarray | str | os.PathLike]) -> torch.Tensor:
        """HxWxC uint8 RGB arrays (or image paths) -> a normalised float32 NCHW batch."""
        from cnnlab.deploy.preprocess import preprocess_batch

        return torch.from_numpy(preprocess_batch(list(images), self._pre()))

    @torch.no_grad()
    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of a preprocessed batch."""
        if self.runtime == "onnxruntime":
            return torch.from_numpy(self.model(x.numpy()))
        device = next(self.model.parameters()).device
        return self.model(x.to(device)).float().cpu()

    def probabilities(self, x: torch.Tensor) -> torch.Tensor:
        """Class probabilities of a preprocessed batch (an ONNX model may output them already)."""
        if self.runtime == "onnxruntime":
            return torch.from_numpy(self.model.probabilities(x.numpy()))
        return self.logits(x).softmax(1)

    def __repr__(self) -> str:
        size = "x".join(map(str, self.input_shape)) if self.preprocessing else "?"
        where = self.run_dir or self.path or self.source
        return (f"LoadedModel({self.name}, {len(self.classes)} classes, input {size}, runtime {self.runtime}, "
                f"from {where})")

    def _repr_html_(self) -> str:
        from cnnlab.notebook import html_table

        rows = [("model", self.name), ("classes", f"{len(self.classes)}: {', '.join(self.classes[:10])}"
                                       + (" ..." if len(self.classes) > 10 else "")),
                ("input", "x".join(map(str, self.input_shape))), ("runtime", self.runtime),
                ("from", str(self.run_dir or self.path or self.source))]
        rows += [(k, v) for k, v in (self.metrics or {}).items() if k.endswith("accuracy") and isinstance(v, float)]
        return html_table(rows, ("name", "value"), title="loaded model")

    def evaluate(self, dataset: str | None = None, split: str = "test", **options: Any) -> Metrics:
        """This model's loss, accuracy, per-class accuracy and confusion matrix on a dataset split (see
        :func:`evaluate`; ``options``: data_dir, batch, tta, json, device, dataset_options)."""
        return evaluate(self, dataset=dataset, split=split, **options)

    def export(self, format: str = "onnx", output: str | os.PathLike | None = None, **options: Any) -> Any:
        """Export this model (see :func:`cnnlab.export`: ONNX with its preprocessing, INT8, fp16,
        TorchScript); a PyTorch model only."""
        from cnnlab.deploy.export import export

        if self.runtime != "torch":
            raise UserError(f"{self.source}: only a PyTorch model can be exported, this one runs on {self.runtime}")
        return export(self.run_dir or self.path or self, format=format, output=output, **options)

    def predict(self, images: Sequence[np.ndarray | str | os.PathLike], topk: int = 5,
                batch: int = 64) -> list[list[tuple[str, float]]]:
        """Top-k ``(class, probability)`` for each image."""
        from cnnlab.deploy.runtime import top_k

        out: list[list[tuple[str, float]]] = []
        images = list(images)
        for i in range(0, len(images), batch):
            out += top_k(self.probabilities(self.preprocess(images[i:i + batch])).numpy(), self.classes, topk)
        return out


# -----------------------------------------------------------------------------------------------
# load / evaluate / predict


def load(source: str | os.PathLike, device: str = "cpu", runtime: str | None = None,
         use_ema: bool = True) -> LoadedModel:
    """A run folder, a checkpoint file or an ``.onnx`` model, ready for inference (see ``cnnlab.sources``)."""
    return LoadedModel.of(resolve(source, task="classify", runtime=runtime, device=device, use_ema=use_ema))


def _eval_split(name: str, split: str, data_dir: str | None, opts: dict[str, Any],
                run_cfg: dict[str, Any]) -> tuple[Any, str]:
    """``(dataset, split scored)``. ``val`` is the run's own validation split (an image folder's
    ``val/``, else the seeded hold-out of its training set); ``test`` of a dataset without one (an image
    folder without ``test/``) is the run's validation split, said in one line, or an error without a run."""
    from cnnlab.tasks.classify.data import has_split, run_validation_set

    split = {"validation": "val", "valid": "val"}.get(str(split).lower(), str(split).lower())
    cfg = None
    if run_cfg:
        cfg = TrainConfig.from_dict({k: v for k, v in run_cfg.items() if k in TrainConfig.field_names()})
        cfg = cfg.replace(dataset=name, data_dir=data_dir, dataset_options=opts)
    if split == "val" and cfg is not None:
        return run_validation_set(cfg, opts), "val"
    if split == "test" and not has_split(name, "test", opts, data_dir):
        if cfg is None:
            raise UserError(f"{name} has no test split (no test/ folder); pass --split val or --split train")
        from cnnlab.errors import warn

        warn(f"{name} has no test split (no test/ folder): scoring the run's validation split instead")
        return run_validation_set(cfg, opts), "val"
    return load_split(name, split, data_dir, opts), split


class _OnnxModule:
    """Adapts an OnnxClassifier to the ``model(x) -> logits`` call used by evaluate_model."""

    def __init__(self, clf: Any):
        self.clf = clf

    def eval(self) -> _OnnxModule:
        return self

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.clf(x.detach().cpu().numpy()))


def tta_ops(run_config: dict[str, Any] | None) -> tuple[str, ...]:
    """Test-time transforms for ``--tta``: only those the run trained with (its ``augment``); a run that
    never flipped gets none and a one-line warning (a mirrored digit is another digit), a model of
    unknown training a horizontal flip and a warning."""
    from cnnlab.errors import warn
    from cnnlab.tasks.classify.evaluate import tta_from_augment

    if not run_config or "augment" not in run_config:
        warn("--tta: the model's training augmentation is unknown; averaging with horizontal mirrors")
        return ("hflip",)
    translate = run_config.get("tta_translate") or 0
    ops = tta_from_augment(run_config.get("augment"), translate if translate in range(1, 9) else 0)
    if not ops:
        warn("--tta: the run never trained with flips, so mirrored images would only mislead it; "
             "scoring without TTA")
    return ops


def evaluate(source: str | os.PathLike | LoadedModel, dataset: str | None = None, split: str = "test",
             data_dir: str | None = None, batch: int = 256, tta: bool = False,
             json: str | os.PathLike | None = None, runtime: str | None = None, device: str = "auto",
             dataset_options: dict[str, Any] | None = None) -> Metrics:
    """Loss, top-1/top-5 accuracy, per-class accuracy and confusion matrix of a model on a dataset split.

    ``source`` is a run folder, a checkpoint or an ``.onnx`` file; ``dataset`` defaults to the one the
    model was trained on. ``tta`` averages predictions of each image and its mirror images, using only
    the flips the run trained with (see :func:`tta_ops`).
    """
    from cnnlab.data import make_loader

    lm = load(source, device="cpu", runtime=runtime)
    trained_on = lm.config.get("dataset")
    name = dataset or trained_on
    if not name:
        raise UserError(f"{source}: say which dataset to evaluate on (--dataset NAME)")
    data_dir = data_dir or (lm.config.get("data_dir") if name == trained_on else None)
    opts = dict(dataset_options if dataset_options is not None else
                (lm.config.get("dataset_options") or {} if name == trained_on else {}))
    if lm.img_size and folder_root(name, opts, data_dir) is not None:  # an image folder: the model's size
        opts.setdefault("img_size", lm.img_size)
    ds, split = _eval_split(name, split, data_dir, opts, lm.config if name == trained_on else {})
    in_chans, img_size = _shape(ds)
    if in_chans != lm.in_chans or (lm.img_size and img_size and img_size != lm.img_size):
        raise UserError(f"{name} images are {in_chans}x{img_size}x{img_size}, but the model expects "
                        f"{lm.in_chans}x{lm.img_size}x{lm.img_size}")
    if len(ds.classes) != len(lm.classes):
        raise UserError(f"{name} has {len(ds.classes)} classes, the model predicts {len(lm.classes)}")
    onnx = lm.runtime == "onnxruntime"
    dev = torch.device("cpu") if onnx else resolve_device(device)
    loader = make_loader(ds, batch, shuffle=False, device=str(dev), num_classes=len(ds.classes),
                         mean=lm.mean, std=lm.std)
    model = _OnnxModule(lm.model) if onnx else lm.model.to(dev)
    ops = tta_ops(lm.config) if tta else ()
    start = time.perf_counter()
    logs, meter = evaluate_model(model, loader, len(ds.classes), dev, tta=ops, confusion=True,
                                 progress=True)
    result = Metrics({
        "source": str(source) if isinstance(source, (str, os.PathLike)) else lm.source, "checkpoint": lm.source,
        "runtime": lm.runtime, "dataset": name,
        "split": split, "tta": list(ops), **logs, "seconds": round(time.perf_counter() - start, 3),
        **confusion_report(meter.matrix, list(ds.classes)),
    })
    if json:
        write_json(json, result)
    return result


def predict(source: str | os.PathLike, images: Sequence[str | os.PathLike | np.ndarray], topk: int = 5,
            runtime: str | None = None, device: str = "auto") -> list[list[tuple[str, float]]]:
    """Top-k ``(class, probability)`` for each image file (or HxWxC uint8 RGB array)."""
    if not images:
        raise UserError("no images given")
    if topk < 1:
        raise UserError(f"topk must be >= 1, got {topk}")
    return load(source, device=device, runtime=runtime).predict(list(images), topk=topk)


