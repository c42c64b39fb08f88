"""ONNX classifiers in the classification API: ``load_onnx_classifier(path) -> OnnxClassifier``.

cnnlab exports carry their preprocessing and class names as JSON in the model's metadata. Models from
elsewhere have none: a 1000-class model gets ImageNet preprocessing (short side 256, centre crop 224,
ImageNet mean/std) and timm's ImageNet class names; other models get [0, 1] pixels and index names.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cnnlab.deploy.metadata import (
    METADATA_KEY,
    Preprocess,
    imagenet_classes,
    imagenet_preprocess,
    parse_metadata,
)
from cnnlab.deploy.preprocess import preprocess_batch
from cnnlab.deploy.providers import create_session
from cnnlab.errors import UserError, first_line

log = logging.getLogger(__name__)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64 for stability, returned as float32."""
    z = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def top_k(probs: np.ndarray, classes: Sequence[str], k: int) -> list[list[tuple[str, float]]]:
    """The ``k`` most probable ``(class name, probability)`` of each row of ``probs``."""
    idx = np.argsort(-probs, axis=1, kind="stable")[:, :min(k, probs.shape[1])]
    return [[(classes[j] if j < len(classes) else str(j), float(p[j])) for j in row]
            for row, p in zip(idx, probs, strict=True)]


def _looks_like_probs(out: np.ndarray) -> bool:
    return bool(out.size and out.min() >= 0 and np.allclose(out.sum(axis=1), 1.0, atol=1e-3))


class OnnxClassifier:
    """An image classifier backed by an ONNX Runtime session.

    ``clf(x)`` takes float32 NCHW already normalised (what ``cnnlab.data.make_loader`` yields) and returns
    logits; ``clf.preprocess(images)`` turns RGB uint8 arrays or file paths into that input;
    ``clf.predict(images, topk)`` gives ``[(class, probability), ...]`` per image.
    """

    def __init__(self, session: Any, path: str | None = None) -> None:
        self.session = session
        self.path = path
        inp = session.get_inputs()
        if len(inp) != 1:
            raise UserError(f"{path or 'model'}: expected one image input, the model has {len(inp)}")
        self.input_name: str = inp[0].name
        self.output_name: str = session.get_outputs()[0].name
        self.input_shape: list[Any] = list(inp[0].shape)
        self.input_type: str = inp[0].type
        meta_map = session.get_modelmeta().custom_metadata_map or {}
        self.metadata: dict[str, Any] | None = parse_metadata(meta_map.get(METADATA_KEY))
        if self.metadata is not None:
            self._init_from_metadata(self.metadata)
        else:
            self._init_defaults()

    # ----------------------------------------------------------------- setup
    def _init_from_metadata(self, meta: dict[str, Any]) -> None:
        self.preprocess_spec = Preprocess.from_dict(meta.get("preprocess") or {})
        self.classes = [str(c) for c in meta.get("classes") or range(self._num_outputs() or 0)]
        self.precision = str(meta.get("precision", "fp32"))
        self.spec = meta.get("model_spec")
        self.defaults_assumed = False

    def _init_defaults(self) -> None:
        from cnnlab.deploy.quantize import is_quantized

        shape = self.input_shape
        if len(shape) != 4:
            raise UserError(f"{self.path or 'model'}: expected a 4-D image input, got shape {shape}")
        nhwc = shape[3] in (1, 3) and shape[1] not in (1, 3)
        chans = shape[3] if nhwc else shape[1]
        in_chans = chans if isinstance(chans, int) else 3
        hw = shape[1:3] if nhwc else shape[2:4]
        img_size = hw[0] if all(isinstance(d, int) for d in hw) and hw[0] == hw[1] else None
        n = self._num_outputs()
        if n == 1000 and in_chans == 3:
            pre = imagenet_preprocess()
            if img_size and img_size != pre.img_size:
                pre.img_size, pre.resize = img_size, round(img_size / 0.875)
            self.classes = imagenet_classes()
        else:
            pre = Preprocess(mean=(0.0,) * in_chans, std=(1.0,) * in_chans, img_size=img_size,
                             in_chans=in_chans)
            self.classes = [str(i) for i in range(n or 0)]
        pre.layout = "NHWC" if nhwc else "NCHW"
        self.preprocess_spec = pre
        self.precision = "int8" if self.path and is_quantized(self.path) else "unknown"
        self.spec = None
        self.defaults_assumed = True
        log.info("%s has no cnnlab metadata: assuming %s preprocessing", self.path,
                 "ImageNet" if n == 1000 else "[0, 1] pixel")

    def _num_outputs(self) -> int | None:
        dim = self.session.get_outputs()[0].shape[-1]
        if isinstance(dim, int):
            return dim
        shape = [1 if not isinstance(d, int) else d for d in self.input_shape]
        if len(shape) == 4:
            out = self.session.run(None, {self.input_name: np.zeros(shape, np.float32)})[0]
            return int(out.shape[-1])
        return None

    # ---------------------------------------------------------- attributes
    @property
    def mean(self) -> tuple[float, ...]:
        return self.preprocess_spec.mean

    @property
    def std(self) -> tuple[float, ...]:
        return self.preprocess_spec.std

    @property
    def img_size(self) -> int | None:
        return self.preprocess_spec.img_size

    @property
    def in_chans(self) -> int:
        return self.preprocess_spec.in_chans

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def providers(self) -> list[str]:
        return list(self.session.get_providers())

    def __repr__(self) -> str:
        return (f"OnnxClassifier({self.path!r}, classes={self.num_classes}, img_size={self.img_size}, "
                f"in_chans={self.in_chans}, precision={self.precision!r}, providers={self.providers})")

    # ------------------------------------------------------------- running
    def __call__(self, x: Any) -> np.ndarray:
        """Logits for a float32 batch (NCHW, normalised); a torch tensor is accepted too."""
        if hasattr(x, "detach"):
            x = x.detach().cpu().numpy()
        x = np.ascontiguousarray(x, dtype=np.float16 if "float16" in self.input_type else np.float32)
        if self.preprocess_spec.layout == "NHWC" and x.ndim == 4 and x.shape[1] == self.in_chans \
                and x.shape[3] != self.in_chans:
            x = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
        try:
            out = self.session.run([self.output_name], {self.input_name: x})[0]
        except Exception as e:  # shape/type mismatches surface as onnxruntime exceptions
            raise UserError(f"ONNX Runtime rejected input of shape {tuple(x.shape)}: "
                            f"{first_line(e)[:300]}") from None
        return out.astype(np.float32, copy=False)

    def preprocess(self, images: Sequence[np.ndarray | str | os.PathLike]) -> np.ndarray:
        """RGB uint8 arrays (HxWxC) or image paths -> the normalised float32 batch the model expects."""
        return preprocess_batch(images, self.preprocess_spec)

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities (softmax of the logits, unless the model already outputs probabilities)."""
        out = self(x)
        return out if _looks_like_probs(out) else softmax(out)

    def predict(self, images: Sequence[np.ndarray | str | os.PathLike], topk: int = 5,
                batch: int = 32) -> list[list[tuple[str, float]]]:
        """Top-k ``(class name, probability)`` for each image."""
        results: list[list[tuple[str, float]]] = []
        for i in range(0, len(images), batch):
            results += top_k(self.probabilities(self.preprocess(images[i:i + batch])), self.classes, topk)
        return results


def load_onnx_classifier(path: str | os.PathLike, providers: str | Sequence[str] | None = None,
                         threads: int | None = None, **provider_kw: Any) -> OnnxClassifier:
    """Open an ``.onnx`` classifier with ONNX Runtime (CPU unless ``providers`` says otherwise).

    ``providers``: None (CPU), ``"auto"``, or names/aliases such as ``"tensorrt,cuda"``; see
    :func:`cnnlab.deploy.providers.resolve_providers` for the TensorRT options in ``provider_kw``.
    """
    return OnnxClassifier(create_session(path, providers, threads=threads, **provider_kw), str(Path(path)))
