"""Preprocessing metadata stored inside exported models (ONNX ``metadata_props``, TorchScript extra files).

An exported model carries what a runtime needs to feed it: mean/std, input size, channels, channel
order, class names. Models from elsewhere (no cnnlab metadata) get defaults: ImageNet preprocessing
and timm's ImageNet class names for 1000-class models.
"""

from __future__ import annotations

import functools
import json
from dataclasses import asdict, dataclass
from typing import Any

from cnnlab import __version__

METADATA_KEY = "cnnlab"
METADATA_FORMAT = "cnnlab.classify"
TORCHSCRIPT_EXTRA = "cnnlab.json"

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMAGENET_CROP_PCT = 0.875  # resize the short side to 256, centre-crop 224


@dataclass
class Preprocess:
    """How raw RGB uint8 images become the float32 NCHW input of a model.

    Pixels are scaled to [0, 1], resized (short side to ``resize`` then centre-cropped to ``img_size``;
    or straight to ``img_size`` when ``resize`` is None), converted to ``in_chans`` channels in
    ``channel_order`` and normalised with ``(x - mean) / std``.
    """

    mean: tuple[float, ...]
    std: tuple[float, ...]
    img_size: int | None
    in_chans: int
    resize: int | None = None
    channel_order: str = "RGB"
    interpolation: str = "bilinear"
    layout: str = "NCHW"
    scale: float = 1.0 / 255.0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Preprocess:
        in_chans = int(d.get("in_chans") or len(d.get("mean") or ()) or 3)
        mean = tuple(float(v) for v in (d.get("mean") or [0.0] * in_chans))
        std = tuple(float(v) for v in (d.get("std") or [1.0] * in_chans))
        img_size = d.get("img_size")
        if isinstance(img_size, (list, tuple)):
            img_size = img_size[-1]
        return cls(
            mean=mean, std=std, img_size=int(img_size) if img_size else None, in_chans=in_chans,
            resize=int(d["resize"]) if d.get("resize") else None,
            channel_order=str(d.get("channel_order", "RGB")).upper(),
            interpolation=str(d.get("interpolation", "bilinear")),
            layout=str(d.get("layout", "NCHW")).upper(),
            scale=float(d.get("scale", 1.0 / 255.0)),
        )


def imagenet_preprocess() -> Preprocess:
    """The usual ImageNet evaluation transform: short side 256, centre crop 224, ImageNet mean/std."""
    return Preprocess(mean=IMAGENET_MEAN, std=IMAGENET_STD, img_size=224, in_chans=3,
                      resize=round(224 / IMAGENET_CROP_PCT))


def imagenet_classes() -> list[str]:
    """The 1000 ImageNet-1k class names (WordNet descriptions) bundled with timm, in index order."""
    return list(_imagenet_classes())


@functools.lru_cache(maxsize=1)
def _imagenet_classes() -> tuple[str, ...]:
    from timm.data import ImageNetInfo

    info = ImageNetInfo()
    return tuple(info.index_to_description(i) for i in range(info.num_classes()))


def build_metadata(classes: list[str], preprocess: Preprocess, *, precision: str = "fp32",
                   model_spec: dict[str, Any] | None = None, source: str | None = None) -> dict[str, Any]:
    """The JSON document stored under the ``cnnlab`` key of an exported model."""
    meta: dict[str, Any] = {
        "format": METADATA_FORMAT,
        "version": 1,
        "exported_by": f"cnnlab {__version__}",
        "precision": precision,
        "classes": [str(c) for c in classes],
        "num_classes": len(classes),
        "preprocess": preprocess.to_dict(),
        "outputs": "logits",
    }
    if model_spec:
        meta["model_spec"] = model_spec
    if source:
        meta["source"] = source
    return meta


def dumps(meta: dict[str, Any]) -> str:
    """Serialise metadata to compact JSON (plain data only)."""
    return json.dumps(meta, separators=(",", ":"), default=str)


def parse_metadata(text: str | None) -> dict[str, Any] | None:
    """Parse the JSON stored under the ``cnnlab`` key; None when absent or not ours."""
    if not text:
        return None
    try:
        meta = json.loads(text)
    except json.JSONDecodeError:
        return None
    if not isinstance(meta, dict) or meta.get("format") != METADATA_FORMAT:
        return None
    return meta
