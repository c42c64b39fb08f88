"""Compatibility shim: detector sources are found by ``cnnlab.resolve`` now.

Kept only for ``cnnlab.tasks.detect.data._anchor_count`` (the lead's file); delete this module
once it calls ``cnnlab.resolve.resolve(p, task="detect").model`` instead.
"""

from __future__ import annotations

import os
from types import SimpleNamespace

from cnnlab.resolve import identify


def resolve_model_source(cfg: str | os.PathLike | None = None, weights: str | os.PathLike | None = None,
                         model: str | os.PathLike | None = None) -> SimpleNamespace:
    """The located detector; ``checkpoint`` is its checkpoint file (None for Darknet and ONNX sources)."""
    loc = identify(model, task="detect", cfg=cfg, weights=weights)
    return SimpleNamespace(located=loc, checkpoint=loc.path if loc.kind.startswith("detect-") else None)
