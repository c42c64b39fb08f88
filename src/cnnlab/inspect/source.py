"""What the inspect commands look at: a PyTorch model from ``cnnlab.sources`` (a module, a model name
with random weights, a run folder or a checkpoint, of either task), its input size and how to feed it."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np

from cnnlab.errors import UserError
from cnnlab.sources import Resolved, resolve


@contextlib.contextmanager
def eval_mode(model: Any) -> Iterator[Any]:
    """Put ``model`` in eval mode for the duration and restore its previous mode afterwards."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


@contextlib.contextmanager
def forward_hooks(hooks: Iterable[tuple[Any, Callable[..., Any]]]) -> Iterator[None]:
    """Register ``(module, hook)`` forward hooks for the duration."""
    handles = [module.register_forward_hook(hook) for module, hook in hooks]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def tensors(obj: Any) -> list[Any]:
    """The tensors in a module's output (a tensor, or lists, tuples and dicts of them), in order."""
    import torch

    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, (list, tuple, dict)):
        return [t for o in (obj.values() if isinstance(obj, dict) else obj) for t in tensors(o)]
    return []


def load_source(source: Any, num_classes: int = 10, in_chans: int | None = None,
                img_size: int | None = None, seed: int = 0) -> Resolved:
    """Resolve ``source`` to a PyTorch model; ``num_classes``/``in_chans``/``img_size`` build a model
    name (random weights, seeded by ``seed``) or describe a bare module."""
    r = resolve(source, num_classes=num_classes, in_chans=in_chans, img_size=img_size, seed=seed)
    if r.runtime != "torch":
        raise UserError(f"{r.source}: inspecting layers needs a PyTorch model (a run folder or .pt checkpoint), "
                        f"not a {r.runtime} model")
    if r.task == "classify" and not r.preprocessing.img_size:
        r.preprocessing.img_size = 32 if r.kind == "module" else 224
    return r


def input_size(src: Resolved) -> tuple[int, int, int]:
    """(C, H, W) of one input: the classifier's preprocessing, or the detector's network input."""
    if src.task == "detect":
        return (int(src.model.channels), src.imgsz.height, src.imgsz.width)
    return src.input_shape


def to_input(src: Resolved, image: np.ndarray) -> Any:
    """A (1, C, H, W) tensor on the model's device from an RGB uint8 image, preprocessed as the model expects."""
    import torch

    if src.task == "detect":
        from cnnlab.detect.processing import preprocess_image

        x = preprocess_image(np.ascontiguousarray(image[..., ::-1]), src.imgsz, src.letterbox is not False)[0]
    else:
        from cnnlab.deploy.preprocess import preprocess_batch

        x = preprocess_batch([image], src.preprocessing)
    device = next((p.device for p in src.model.parameters()), None)
    t = torch.from_numpy(x)
    return t.to(device) if device is not None else t
