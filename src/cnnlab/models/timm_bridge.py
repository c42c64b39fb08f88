"""Build any timm architecture by name, randomly initialised (pretrained weights come later)."""

from __future__ import annotations

import difflib
from functools import lru_cache
from typing import Any

from cnnlab.errors import ModelError


@lru_cache(maxsize=1)
def timm_model_names() -> tuple[str, ...]:
    """All architecture names timm knows (without pretrained tags)."""
    import timm

    return tuple(timm.list_models())


def create_timm_model(name: str, num_classes: int = 10, in_chans: int = 3, img_size: int | None = None,
                      **kwargs: Any) -> tuple[Any, int | None]:
    """``timm.create_model(name, pretrained=False, ...)``; returns the model and its input size.

    ``img_size`` is passed to architectures that take it (ViTs and the like); convolutional nets that
    do not are built without it, since they adapt to any input size anyway.
    """
    import timm

    if kwargs.get("pretrained"):
        raise ModelError("pretrained weights are not available through create_model here; "
                         "build with random init (pretrained=False)")
    kwargs.pop("pretrained", None)
    base = name.split(".", 1)[0]
    if not timm.is_model(base):
        close = difflib.get_close_matches(base, timm_model_names(), n=5, cutoff=0.6)
        hint = f"; did you mean {', '.join('timm/' + c for c in close)}?" if close else ""
        raise ModelError(f"unknown timm model {name!r}{hint}")
    args = dict(pretrained=False, num_classes=num_classes, in_chans=in_chans, **kwargs)
    try:
        model = timm.create_model(name, **args, **({} if img_size is None else {"img_size": img_size}))
    except TypeError as e:
        if img_size is None or "img_size" not in str(e):
            raise ModelError(f"timm/{name}: {e}") from None
        model = timm.create_model(name, **args)
    if img_size is None:
        cfg = getattr(model, "pretrained_cfg", None) or {}
        size = cfg.get("input_size")
        img_size = int(size[-1]) if size else None
    return model, img_size
