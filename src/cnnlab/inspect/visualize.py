"""Look inside a CNN: first-layer kernels, feature maps of any layer, and Grad-CAM heat maps.

Each function takes a model source (an ``nn.Module``, a model name, a run folder or a checkpoint; see
``cnnlab.sources``) and writes a PNG whose pixel size follows from the data (no figure padding).
"""

from __future__ import annotations

import contextlib
import difflib
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cnnlab.errors import UserError
from cnnlab.inspect.images import colorize, load_image, make_grid, normalise, save_png
from cnnlab.inspect.source import eval_mode, forward_hooks, load_source, tensors, to_input

MIN_TILE = 64  # feature maps are enlarged (nearest) to at least this many pixels per side


def resolve_layer(model: Any, name: str) -> Any:
    """The submodule called ``name`` (a name from ``named_modules()``); a bad name lists real ones."""
    modules = dict(model.named_modules())
    modules.pop("", None)
    if name in modules:
        return modules[name]
    names = list(modules)
    close = difflib.get_close_matches(name, names, n=5, cutoff=0.5)
    convs = [n for n, m in modules.items() if type(m).__name__.startswith("Conv")]
    shown = close or convs[:8] or names[:8]
    more = len(names) - len(shown)
    extra = f" (and {more} more; see `cnnlab summary`)" if more > 0 else ""
    raise UserError(f"no layer named {name!r}; layers include: {', '.join(shown)}{extra}")


def first_conv(model: Any) -> tuple[str, Any]:
    """Name and module of the first convolution (in definition order)."""
    import torch.nn as nn

    for name, m in model.named_modules():
        if isinstance(m, nn.modules.conv._ConvNd):
            return name, m
    raise UserError("the model has no convolution layer")


def kernel_image(model: Any, layer: str | None = None, scale: int = 8) -> tuple[np.ndarray, str]:
    """A grid of the kernels of ``layer`` (default: the first conv) and the layer's name.

    Kernels with 3 input channels are drawn in colour (each kernel scaled to [0, 1]); others as grey
    maps of the mean over input channels.
    """
    import torch.nn as nn

    if layer is None:
        layer, conv = first_conv(model)
    else:
        conv = resolve_layer(model, layer)
        if not isinstance(conv, nn.modules.conv._ConvNd) or conv.weight.dim() != 4:
            raise UserError(f"layer {layer!r} is a {type(conv).__name__}, not a 2-D convolution")
    w = conv.weight.detach().float().cpu().numpy()  # (K, C, f, f)
    tiles = [normalise(k.transpose(1, 2, 0)) if k.shape[0] == 3 else colorize(normalise(k.mean(0)), "gray")
             for k in w]
    return make_grid(tiles, scale=scale), layer


def save_kernels(source: Any, out: str | Path, layer: str | None = None, scale: int = 8) -> Path:
    """Write the kernel grid of ``source`` (first conv by default) to ``out`` (PNG)."""
    src = load_source(source)
    grid, _ = kernel_image(src.model, layer, scale=scale)
    return save_png(out, grid)


def feature_maps(source: Any, image: Any = None, layer: str | None = None) -> tuple[Any, str]:
    """Output of ``layer`` (default: the first conv) for ``image``: a (C, h, w) tensor, and the name."""
    import torch

    src = load_source(source)
    model = src.model
    if layer is None:
        layer, module = first_conv(model)
    else:
        module = resolve_layer(model, layer)
    x = to_input(src, load_image(image))
    captured: list[Any] = []
    hooks = [(module, lambda m, i, o: captured.append(_first_tensor(o).detach().clone()))]
    with forward_hooks(hooks), torch.no_grad(), eval_mode(model):
        model(x)
    if not captured:
        raise UserError(f"layer {layer!r} was not used in the forward pass")
    fmap = captured[0]
    if fmap.dim() != 4:
        raise UserError(f"layer {layer!r} outputs shape {list(fmap.shape)}, not feature maps; "
                        "choose a convolutional layer")
    return fmap[0].float().cpu(), layer


def feature_image(fmaps: Any, max_maps: int = 64, cmap: str = "viridis") -> np.ndarray:
    """A grid of up to ``max_maps`` feature maps, each scaled to [0, 1] and enlarged to >= MIN_TILE px."""
    arr = fmaps.numpy()[:max_maps]
    h, w = arr.shape[1:]
    scale = max(1, math.ceil(MIN_TILE / max(h, w)))
    return make_grid([colorize(normalise(m), cmap) for m in arr], scale=scale)


def save_features(source: Any, out: str | Path, image: Any = None, layer: str | None = None,
                  max_maps: int = 64) -> Path:
    """Write the feature maps of ``layer`` for ``image`` (default china.jpg) to ``out`` (PNG)."""
    fmaps, _ = feature_maps(source, image, layer)
    return save_png(out, feature_image(fmaps, max_maps=max_maps))


@dataclass
class GradCAM:
    """A Grad-CAM result: ``cam`` is (H, W) in [0, 1] at the image's size."""

    cam: np.ndarray
    class_idx: int
    class_name: str | None
    score: float          # the class logit
    layer: str
    image: np.ndarray     # the RGB uint8 image it was computed on

    def overlay(self, alpha: float = 0.45, cmap: str = "jet") -> np.ndarray:
        """The heat map blended over the image, RGB float in [0, 1]."""
        heat = colorize(self.cam, cmap)
        return (1 - alpha) * (self.image.astype(np.float32) / 255.0) + alpha * heat


def grad_cam(source: Any, image: Any = None, class_idx: int | None = None,
             layer: str | None = None) -> GradCAM:
    """Grad-CAM (Selvaraju et al. 2017) of ``class_idx`` (default: the top class) at ``layer``
    (default: the last layer with spatial maps of at least 2x2), using a forward hook and autograd."""
    import torch
    import torch.nn.functional as F

    src = load_source(source)
    model = src.model
    img = load_image(image)
    x = to_input(src, img)
    if layer is None:
        layer = _last_spatial_layer(model, x)
    module = resolve_layer(model, layer)
    acts: list[Any] = []
    hooks = [(module, lambda m, i, o: acts.append(_first_tensor(o)))]
    with forward_hooks(hooks), _no_inplace(model), eval_mode(model), torch.enable_grad():
        logits = _first_tensor(model(x.clone().requires_grad_(True)))
        if not acts:
            raise UserError(f"layer {layer!r} was not used in the forward pass")
        act = acts[-1]
        if act.dim() != 4:
            raise UserError(f"layer {layer!r} outputs shape {list(act.shape)}; Grad-CAM needs a layer "
                            "with spatial feature maps")
        n_classes = logits.shape[-1]
        if class_idx is None:
            class_idx = int(logits[0].argmax())
        elif not 0 <= class_idx < n_classes:
            raise UserError(f"class index {class_idx} is out of range: the model has {n_classes} classes")
        score = logits[0, class_idx]
        (grad,) = torch.autograd.grad(score, act)
    weights = grad[0].mean(dim=(1, 2), keepdim=True)          # alpha_k: pooled gradients
    cam = F.relu((weights * act[0].detach()).sum(0))          # ReLU(sum_k alpha_k A^k)
    cam = F.interpolate(cam[None, None], size=img.shape[:2], mode="bilinear", align_corners=False)[0, 0]
    cam_np = cam.clamp(min=0).cpu().numpy().astype(np.float32)
    cam_np = cam_np / cam_np.max() if cam_np.max() > 0 else np.zeros_like(cam_np)
    name = src.classes[class_idx] if src.classes and class_idx < len(src.classes) else None
    return GradCAM(cam_np, int(class_idx), name, float(score.detach()), layer, img)


def save_gradcam(source: Any, out: str | Path, image: Any = None, class_idx: int | None = None,
                 layer: str | None = None, alpha: float = 0.45) -> tuple[Path, GradCAM]:
    """Write the Grad-CAM heat map over ``image`` (default china.jpg) to ``out`` (PNG, image size)."""
    result = grad_cam(source, image, class_idx=class_idx, layer=layer)
    return save_png(out, result.overlay(alpha=alpha)), result


def _last_spatial_layer(model: Any, x: Any) -> str:
    """Name of the last module (in execution order) whose output has maps of at least 2x2."""
    import torch

    order: list[str] = []

    def hook(name: str) -> Any:
        def record(mod: Any, inp: Any, out: Any) -> None:
            t = _first_tensor(out)
            if t is not None and t.dim() == 4 and min(t.shape[-2:]) >= 2:
                order.append(name)

        return record

    hooks = [(m, hook(n)) for n, m in model.named_modules() if n and not isinstance(m, torch.nn.Identity)]
    with forward_hooks(hooks), torch.no_grad(), eval_mode(model):
        model(x)
    if not order:
        raise UserError("the model has no layer with spatial feature maps; pass --layer")
    return order[-1]


@contextlib.contextmanager
def _no_inplace(model: Any) -> Iterator[None]:
    """Turn off ``inplace`` on activations for the duration, so hooked tensors keep their values."""
    changed = []
    for m in model.modules():
        if getattr(m, "inplace", False) is True:
            m.inplace = False
            changed.append(m)
    try:
        yield
    finally:
        for m in changed:
            m.inplace = True


def _first_tensor(obj: Any) -> Any:
    return next(iter(tensors(obj)), None)
