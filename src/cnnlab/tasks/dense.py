"""What the localisation and segmentation tasks share: in-memory uint8 image tensors batched with seeded
order and flips, checkpoints of ``model_spec`` + classes + preprocessing, loading a run folder or its
checkpoint for inference, reading the user's images, and a checked ONNX export.

Each task keeps only what is its own: the model, the targets (a box / a mask), the loss, the metrics
and the pictures.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from cnnlab.engine.checkpoint import _is_int, check_version, malformed
from cnnlab.engine.loop import Engine
from cnnlab.engine.task import Task
from cnnlab.errors import UserError

# what a real model of these tasks can have (a larger value is a corrupt or hostile file, not a model to build)
LIMITS = {"features": 65536, "num_classes": 100_000, "in_chans": 3, "img_size": 4096, "width": 1024}


# ------------------------------------------------------------------------------------------- batches
class SeededLoader:
    """Batches of ``data.images`` (uint8 NCHW) normalised to float, with the targets :meth:`targets` picks
    and flips. Order and flips are a pure function of (seed, epoch) (``set_epoch``), so a resumed run sees
    exactly the batches of an uninterrupted one."""

    def __init__(self, data: Any, batch: int, mean: tuple[float, ...], std: tuple[float, ...],
                 shuffle: bool = False, fliplr: float = 0.0, seed: int = 0) -> None:
        self.data, self.batch, self.shuffle, self.fliplr, self.seed = data, batch, shuffle, fliplr, seed
        self.mean = torch.tensor(mean).view(1, -1, 1, 1)
        self.std = torch.tensor(std).view(1, -1, 1, 1)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return math.ceil(len(self.data) / self.batch)

    def targets(self, idx: torch.Tensor) -> Any:
        """The targets of the images ``idx`` (a copy: :meth:`flip` may change them in place)."""
        raise NotImplementedError

    def flip(self, targets: Any, flip: torch.Tensor) -> Any:
        """``targets`` with the images ``flip`` (a boolean mask) mirrored left-right."""
        raise NotImplementedError

    def __iter__(self) -> Iterator[tuple[torch.Tensor, Any]]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        n = len(self.data)
        order = torch.randperm(n, generator=g) if self.shuffle else torch.arange(n)
        for start in range(0, n, self.batch):
            idx = order[start:start + self.batch]
            x, t = self.data.images[idx].float() / 255.0, self.targets(idx)
            if self.fliplr > 0:
                flip = torch.rand(len(idx), generator=g) < self.fliplr
                x[flip] = x[flip].flip(-1)
                t = self.flip(t, flip)
            yield (x - self.mean) / self.std, t


def channel_stats(data: Any) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of ``data.images`` on the [0, 1] scale."""
    x = data.images.float() / 255.0
    return tuple(x.mean((0, 2, 3)).tolist()), tuple(x.std((0, 2, 3)).clamp_min(1e-3).tolist())


# -------------------------------------------------------------------------------------------- task
class DenseTask(Task):
    """The engine task of a model of ``model_spec`` + classes + preprocessing: the checkpoint's meta, the
    run config, curves after each epoch and the best weights' summary at the end. Subclasses set ``meta``
    (:meth:`describe`), ``n_params``, :meth:`load_best` and :meth:`plot_curves`."""

    def __init__(self, cfg: Any) -> None:
        super().__init__(cfg)
        self.meta: dict[str, Any] = {}

    def describe(self, spec: dict[str, Any], classes: Sequence[str], mean: tuple[float, ...],
                 std: tuple[float, ...], model: nn.Module) -> None:
        """What the checkpoints carry (``meta``) and the parameter count of ``model``."""
        self.meta = {"model_spec": spec, "classes": list(classes),
                     "preprocess": {"mean": list(mean), "std": list(std), "img_size": spec["img_size"],
                                    "in_chans": spec["in_chans"]}}
        self.n_params = sum(p.numel() for p in model.parameters())

    def run_config(self) -> dict[str, Any]:
        return {**self.cfg.to_dict(), "task": self.name, "names": list(self.meta["classes"])}

    def checkpoint_meta(self, engine: Engine) -> dict[str, Any]:
        return {"version": 1, **self.meta}

    def on_epoch_end(self, engine: Engine, epoch: int, logs: dict[str, Any]) -> None:
        if self.cfg.plots and self.run_dir is not None:
            self.plots(self.run_dir, engine.history)

    def plots(self, run_dir: Path, history: list[dict[str, Any]]) -> None:
        self.plot_curves(history, run_dir / "curves.png")

    def plot_curves(self, history: list[dict[str, Any]], path: Path) -> None:
        raise NotImplementedError

    def load_best(self, path: Path) -> LoadedModel:
        """The checkpoint ``path`` loaded for inference (the task's own loader)."""
        raise NotImplementedError

    def best_model(self, engine: Engine) -> nn.Module:
        """The best checkpoint's (EMA) network, else the engine's evaluation model."""
        assert engine.run_dir is not None
        best = engine.run_dir / "weights" / "best.pt"
        return self.load_best(best).model.to(engine.device) if best.is_file() else engine.eval_model

    def summary(self, engine: Engine, best_key: Callable[[dict[str, Any]], float | None]) -> dict[str, Any]:
        """The fields every final ``metrics.json`` has: data, model, epochs, parameters, the best epoch
        (by ``best_key`` over the validated epochs) and training time, and the last epoch's training
        values."""
        hist = engine.history
        best_row = max((h for h in hist if best_key(h) is not None), key=best_key, default={})
        return {"data": self.cfg.data, "model": self.cfg.model, "epochs": engine.epoch,
                "params_trainable": self.n_params, "best_epoch": best_row.get("epoch"),
                "train_time_s": round(engine.train_time, 3),
                **{k: v for k, v in (hist[-1] if hist else {}).items() if k in self.train_keys}}


# ------------------------------------------------------------------------------------------ curves
def plot_curves(history: list[dict[str, Any]], path: str | os.PathLike,
                panels: Sequence[tuple[Sequence[str], str]]) -> Path:
    """``curves.png``: one panel per ``(keys, title)``, each key's training (dashed) and validation
    (``val_`` key, solid) values per epoch."""
    from cnnlab.plots import pyplot, save_figure

    plt = pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4), squeeze=False)
    epochs = [h["epoch"] for h in history]
    for ax, (keys, title) in zip(axes[0], panels, strict=True):
        for key in keys:
            for prefix, style in (("", "--"), ("val_", "-")):
                pts = [(e, h[prefix + key]) for e, h in zip(epochs, history, strict=True)
                       if isinstance(h.get(prefix + key), float)]
                if pts:
                    ax.plot(*zip(*pts, strict=True), style, marker="o", ms=3,
                            label=f"{'val' if prefix else 'train'} {key}")
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)


# ---------------------------------------------------------------------------------------- checkpoints
def check_fields(ckpt: dict[str, Any], path: str | os.PathLike, name_key: str, int_keys: Sequence[str]) -> None:
    """Every field inference reads has the type it expects, or one UserError naming it: ``model_spec``
    (its ``name_key`` a model name, ``int_keys`` integers within :data:`LIMITS`), ``classes``,
    ``preprocess`` (mean/std per channel) and the ``model`` state dict."""
    check_version(ckpt, path, 1)
    spec = ckpt.get("model_spec")
    if not isinstance(spec, dict):
        raise malformed(path, "model_spec", "a mapping", spec)
    if not isinstance(spec.get(name_key), str) or not spec[name_key]:
        raise malformed(path, f"model_spec.{name_key}", "a model name", spec.get(name_key))
    for key in int_keys:
        if not (_is_int(spec.get(key)) and 1 <= spec[key] <= LIMITS[key]):
            raise malformed(path, f"model_spec.{key}", f"an integer in [1, {LIMITS[key]}]", spec.get(key))
    classes = ckpt.get("classes")
    if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes) \
            or len(classes) != spec["num_classes"]:
        raise malformed(path, "classes", f"a list of {spec['num_classes']} class names", classes)
    pre = ckpt.get("preprocess")
    if not isinstance(pre, dict) or not all(isinstance(pre.get(k), list) and len(pre[k]) == spec["in_chans"]
                                            and all(isinstance(v, float) for v in pre[k]) for k in ("mean", "std")):
        raise malformed(path, "preprocess", "mean and std lists of floats, one per channel", pre)
    if not isinstance(ckpt.get("model"), dict):
        raise malformed(path, "model", "a state dict", type(ckpt.get("model")).__name__)


@dataclass
class LoadedModel:
    """A trained model ready for inference: the network (eval mode) and what its inputs must look like."""

    model: nn.Module
    classes: list[str]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    img_size: int
    spec: dict[str, Any]
    path: Path
    run_dir: Path | None

    def preprocess(self, images_bgr: Sequence[np.ndarray]) -> torch.Tensor:
        """BGR uint8 images -> the normalised (N, 3, S, S) batch the model takes (plain resize)."""
        import cv2

        s = self.img_size
        x = np.stack([cv2.resize(im, (s, s), interpolation=cv2.INTER_AREA)[:, :, ::-1].transpose(2, 0, 1)
                      for im in images_bgr])
        t = torch.from_numpy(np.ascontiguousarray(x)).float() / 255.0
        return (t - torch.tensor(self.mean).view(1, -1, 1, 1)) / torch.tensor(self.std).view(1, -1, 1, 1)


def load_model(source: str | os.PathLike, task: str, fmt: str, build: Callable[[dict[str, Any]], nn.Module],
               use_ema: bool = True, hint: str = "") -> LoadedModel:
    """A ``task`` run folder (its best.pt, else last.pt) or checkpoint of format ``fmt`` -> :class:`LoadedModel`
    (the EMA weights when the checkpoint has them and ``use_ema``)."""
    from cnnlab.engine.checkpoint import FORMAT_CHECKERS, load_weights
    from cnnlab.io import torch_load_safe

    p = Path(source).expanduser()
    run_dir = p if p.is_dir() else (p.parent.parent if p.parent.name == "weights" else None)
    if p.is_dir():
        found = [p / n for n in ("weights/best.pt", "weights/last.pt") if (p / n).is_file()]
        if not found:
            raise UserError(f"{p}: no weights/best.pt or weights/last.pt (not a finished {task} run?)")
        p = found[0]
    if not p.is_file():
        raise UserError(f"model not found: {p} (expected a {task} run folder or its .pt checkpoint)")
    ckpt = torch_load_safe(p)
    if not isinstance(ckpt, dict) or ckpt.get("format") != fmt:
        what = ckpt.get("format") if isinstance(ckpt, dict) else type(ckpt).__name__
        raise UserError(f"{p}: not a {task} checkpoint (format {str(what)[:40]!r}){hint}")
    FORMAT_CHECKERS[fmt](ckpt, p)
    spec = ckpt["model_spec"]
    model = build(spec)
    state = ckpt["ema"] if use_ema and isinstance(ckpt.get("ema"), dict) else ckpt["model"]
    load_weights(model, state, None, str(p))
    pre = ckpt["preprocess"]
    return LoadedModel(model.eval(), list(ckpt["classes"]), tuple(pre["mean"]), tuple(pre["std"]),
                       int(spec["img_size"]), spec, p, run_dir)


def saved_config(config_class: Any, loaded: LoadedModel) -> Any:
    """The run's config (its config.yaml where the model has a run folder, else the defaults)."""
    from cnnlab.runs import read_run_config

    saved: dict[str, Any] = {}
    if loaded.run_dir is not None and (loaded.run_dir / "config.yaml").is_file():
        saved = read_run_config(loaded.run_dir)
    known = set(config_class.field_names())
    return config_class.from_dict({k: v for k, v in saved.items() if k in known}, source=str(loaded.path))


# ------------------------------------------------------------------------------------------- images
def read_images(images: Sequence[str | os.PathLike | np.ndarray]) -> list[tuple[np.ndarray, str]]:
    """``(BGR image, file name)`` of each path or array (``image{i}.png`` for arrays); a path that is not
    an image is one UserError."""
    import cv2

    out = []
    for i, im in enumerate(images):
        if isinstance(im, np.ndarray):
            out.append((im, f"image{i}.png"))
            continue
        p = Path(im)
        img = cv2.imread(str(p), cv2.IMREAD_COLOR) if p.is_file() else None
        if img is None:
            raise UserError(f"cannot read image {p}")
        out.append((img, p.name))
    if not out:
        raise UserError("no images given")
    return out


# --------------------------------------------------------------------------------------------- ONNX
def export_onnx(module: nn.Module, loaded: LoadedModel, task: str, output: str | os.PathLike,
                output_names: Sequence[str], opset: int = 17) -> dict[str, Any]:
    """Write ``module`` (input ``images`` normalised NCHW, a dynamic batch) as ONNX with the metadata
    inference needs (task, classes, mean, std, img_size), checked against PyTorch with ONNX Runtime."""
    import io
    import json
    import warnings

    import onnx
    import onnxruntime as ort

    from cnnlab.io import atomic_write_bytes

    s = loaded.img_size
    module = module.eval()
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (torch.zeros(1, 3, s, s),), buf, dynamo=False, opset_version=opset,
                          input_names=["images"], output_names=list(output_names),
                          dynamic_axes={n: {0: "batch"} for n in ["images", *output_names]})
    proto = onnx.load_from_string(buf.getvalue())
    onnx.helper.set_model_props(proto, {"cnnlab_task": task, "classes": json.dumps(loaded.classes),
                                        "mean": json.dumps(list(loaded.mean)), "std": json.dumps(list(loaded.std)),
                                        "img_size": str(s)})
    proto.producer_name = "cnnlab"
    onnx.checker.check_model(proto)
    data = proto.SerializeToString()
    x = torch.randn(2, 3, s, s, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref = module(x)
    ref = [t.numpy() for t in (ref if isinstance(ref, (tuple, list)) else (ref,))]
    got = ort.InferenceSession(data, providers=["CPUExecutionProvider"]).run(None, {"images": x.numpy()})
    diff = max(float(np.abs(a - b).max()) for a, b in zip(ref, got, strict=True))
    path = atomic_write_bytes(output, data)
    return {"path": str(path), "max_abs_diff": diff, "classes": loaded.classes, "img_size": s}
