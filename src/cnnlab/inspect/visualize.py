"""Look inside a CNN: first-layer kernels, feature maps of any layer, and Grad-CAM heat maps.

Each function takes a model source (an ``nn.Module``, a model name, a run folder or a checkpoint; see
``cnnlab.sources``) and writes a labelled figure (layer, channels, shapes, class and score, colour bars)
as a PNG. An existing file is never replaced silently: the picture goes to ``name-2.png``, ``name-3.png``...
unless ``overwrite=True``. ``kernel_image``/``feature_image`` return the bare pixel grids.
"""

from __future__ import annotations

import contextlib
import difflib
import math
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cnnlab.errors import UserError
from cnnlab.inspect.images import colorize, load_image, make_grid, normalise
from cnnlab.inspect.source import eval_mode, forward_hooks, load_source, tensors, to_input
from cnnlab.plots import fresh_path, pyplot, save_figure

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


def save_kernels(source: Any, out: str | Path, layer: str | None = None, max_kernels: int = 64,
                 overwrite: bool = False) -> Path:
    """Write the kernels of ``source`` (first conv by default) to ``out`` as a titled grid (see
    `kernels_figure`); returns the path written (``out``, or a numbered name beside it)."""
    path = fresh_path(_png_path(out), overwrite)
    return save_figure(kernels_figure(source, layer, max_kernels), path, dpi=110)


def kernels_figure(source: Any, layer: str | None = None, max_kernels: int = 64) -> Any:
    """A matplotlib figure of a conv layer's kernels: one panel per output channel, titled; RGB kernels in
    colour (each scaled to its own range), others as the mean over input channels on one diverging scale
    with a labelled colour bar; the title names the model, layer and kernel shape."""
    import torch.nn as nn

    src = load_source(source)
    if layer is None:
        layer, conv = first_conv(src.model)
    else:
        conv = resolve_layer(src.model, layer)
        if not isinstance(conv, nn.modules.conv._ConvNd) or conv.weight.dim() != 4:
            raise UserError(f"layer {layer!r} is a {type(conv).__name__}, not a 2-D convolution")
    w = conv.weight.detach().float().cpu().numpy()  # (K, C, f, f)
    k, c, fh, fw = w.shape
    shown = w[:max_kernels]
    rgb = c == 3
    plt = pyplot()
    cols = min(8, math.ceil(math.sqrt(len(shown))))
    rows = math.ceil(len(shown) / cols)
    tile = max(0.9, min(1.6, 10.0 / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * tile + (1.2 if not rgb else 0.4), rows * tile + 1.1),
                             squeeze=False, layout="constrained")
    lim = float(np.abs(shown).max()) or 1.0
    im = None
    for i, ax in enumerate(axes.ravel()):
        ax.set_xticks([])
        ax.set_yticks([])
        if i >= len(shown):
            ax.axis("off")
            continue
        if rgb:
            ax.imshow(normalise(shown[i].transpose(1, 2, 0)), interpolation="nearest")
        else:
            im = ax.imshow(shown[i].mean(0), cmap="RdBu_r", vmin=-lim, vmax=lim, interpolation="nearest")
        ax.set_title(f"out {i}", fontsize=7, pad=2)
    what = "RGB, each kernel scaled to its own range" if rgb else (
        "weight" if c == 1 else f"mean over the {c} input channels")
    more = f" (first {len(shown)} shown)" if len(shown) < k else ""
    fig.suptitle(f"{src.name}: layer {layer!r}, {k} kernels of {c}x{fh}x{fw} (in x h x w){more}\n{what}",
                 fontsize=9)
    if im is not None:
        bar = fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.8, aspect=30)
        bar.set_label("weight" if c == 1 else "mean weight", fontsize=8)
    return fig


def _png_path(out: str | Path) -> Path:
    path = Path(out)
    if path.suffix.lower() != ".png":
        raise UserError(f"output must be a .png file, got {path.name}")
    return path


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
                  max_maps: int = 64, overwrite: bool = False) -> Path:
    """Write the feature maps of ``layer`` for ``image`` to ``out`` (see `features_figure`)."""
    path = fresh_path(_png_path(out), overwrite)
    return save_figure(features_figure(source, image, layer, max_maps), path, dpi=100)


def features_figure(source: Any, image: Any = None, layer: str | None = None, max_maps: int = 64) -> Any:
    """A figure of the input beside a grid of ``layer``'s channel maps, each titled with its channel and
    scaled to its own range (default image: one of the run's own held-out images, else china.jpg)."""
    src = load_source(source)
    img, caption = _default_image(src, image)
    fmaps, layer = feature_maps(src, img, layer)
    arr = fmaps.numpy()
    c, h, w = arr.shape
    shown = arr[:max_maps]
    plt = pyplot()
    cols = min(8, math.ceil(math.sqrt(len(shown))))
    rows = math.ceil(len(shown) / cols)
    tile = max(1.0, min(1.8, 11.0 / cols))
    fig = plt.figure(figsize=(cols * tile + 3.2, max(rows * tile + 1.0, 3.6)))
    grid = fig.add_gridspec(rows, cols + 2, width_ratios=[3.0 / tile * 0.9, 0.15] + [1] * cols)
    ax0 = fig.add_subplot(grid[:, 0])
    ax0.imshow(img, interpolation="nearest" if max(img.shape[:2]) < 128 else "antialiased")
    ax0.set_title(f"input\n{caption}", fontsize=8)
    ax0.axis("off")
    for i in range(rows * cols):
        ax = fig.add_subplot(grid[i // cols, 2 + i % cols])
        ax.set_xticks([])
        ax.set_yticks([])
        if i >= len(shown):
            ax.axis("off")
            continue
        ax.imshow(shown[i], cmap="viridis", interpolation="nearest")
        ax.set_title(f"ch {i}", fontsize=7, pad=2)
    more = f", first {len(shown)} shown" if len(shown) < c else ""
    fig.suptitle(f"{src.name}: output of layer {layer!r}, {c} channels of {h}x{w}{more} "
                 "(each map scaled to its own min-max; yellow = high)", fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    return fig


def _default_image(src: Any, image: Any) -> tuple[np.ndarray, str]:
    """The image to explain and a caption: ``image`` when given; else, for a run, one of its own
    held-out images (a digit for an MNIST run); else scikit-learn's china.jpg."""
    if image is not None:
        label = Path(image).name if isinstance(image, (str, Path)) else f"{np.shape(image)[1]}x{np.shape(image)[0]} array"
        return load_image(image), label
    config = getattr(src, "config", None) or {}
    if config.get("dataset"):
        from cnnlab.data.samples import held_out_images

        try:
            images, labels, classes, split = held_out_images(config, 1)
        except UserError as e:
            warnings.warn(f"{src.source}: the run's {config['dataset']} images are not available ({e}); "
                          "using china.jpg", UserWarning, stacklevel=3)
        else:
            true = classes[labels[0]] if labels[0] < len(classes) else str(labels[0])
            return load_image(images[0]), f"{config['dataset']} {split} image, true class {true}"
    return load_image(None), "china.jpg (sample photo)"


@dataclass
class GradCAM:
    """A Grad-CAM result: ``cam`` is (H, W) in [0, 1] at the image's size."""

    cam: np.ndarray
    class_idx: int
    class_name: str | None
    score: float          # the class logit
    layer: str
    image: np.ndarray     # the RGB uint8 image it was computed on
    probability: float = float("nan")   # softmax of the logits at class_idx
    caption: str = ""     # where the image came from

    def __repr__(self) -> str:
        name = f" ({self.class_name})" if self.class_name else ""
        return (f"GradCAM(class {self.class_idx}{name}, p={self.probability:.3f}, logit={self.score:.3f}, "
                f"layer={self.layer!r}, image {self.image.shape[1]}x{self.image.shape[0]})")

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
        prob = float(logits[0].detach().float().softmax(0)[class_idx])
        (grad,) = torch.autograd.grad(score, act)
    weights = grad[0].mean(dim=(1, 2), keepdim=True)          # alpha_k: pooled gradients
    cam = F.relu((weights * act[0].detach()).sum(0))          # ReLU(sum_k alpha_k A^k)
    cam = F.interpolate(cam[None, None], size=img.shape[:2], mode="bilinear", align_corners=False)[0, 0]
    cam_np = cam.clamp(min=0).cpu().numpy().astype(np.float32)
    cam_np = cam_np / cam_np.max() if cam_np.max() > 0 else np.zeros_like(cam_np)
    name = src.classes[class_idx] if src.classes and class_idx < len(src.classes) else None
    return GradCAM(cam_np, int(class_idx), name, float(score.detach()), layer, img, prob)


def save_gradcam(source: Any, out: str | Path, image: Any = None, class_idx: int | None = None,
                 layer: str | None = None, alpha: float = 0.45, overwrite: bool = False
                 ) -> tuple[Path, GradCAM]:
    """Write Grad-CAM as three panels to ``out``: the original | the heat map with a colour bar | the
    overlay, titled with the class, its probability and logit and the layer. Default image: one of the
    run's own held-out images (an MNIST run explains a digit), else china.jpg."""
    src = load_source(source)
    img, caption = _default_image(src, image)
    result = grad_cam(src, img, class_idx=class_idx, layer=layer)
    result.caption = caption
    path = fresh_path(_png_path(out), overwrite)
    return save_figure(gradcam_figure(result, alpha=alpha, model_name=src.name), path, dpi=110), result


def gradcam_figure(result: GradCAM, alpha: float = 0.45, model_name: str = "") -> Any:
    """The three-panel Grad-CAM figure of ``result`` (see `save_gradcam`)."""
    plt = pyplot()
    h, w = result.image.shape[:2]
    panel = 3.6
    fig, axes = plt.subplots(1, 3, figsize=(3 * panel + 0.9, panel * h / w + 1.0), layout="constrained")
    interp = "nearest" if max(h, w) < 128 else "antialiased"
    axes[0].imshow(result.image, interpolation=interp)
    axes[0].set_title("original" + (f"\n{result.caption}" if result.caption else ""), fontsize=8)
    heat = axes[1].imshow(result.cam, cmap="jet", vmin=0, vmax=1, interpolation="bilinear")
    axes[1].set_title(f"Grad-CAM at layer {result.layer!r}", fontsize=8)
    axes[2].imshow(result.overlay(alpha=alpha), interpolation=interp)
    axes[2].set_title(f"overlay (alpha {alpha:g})", fontsize=8)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    name = result.class_name if result.class_name and result.class_name != str(result.class_idx) else ""
    label = f"class {result.class_idx}" + (f" '{name}'" if name else "")
    prob = f"probability {result.probability:.1%}, " if result.probability == result.probability else ""
    fig.suptitle(f"{model_name + ': ' if model_name else ''}why {label}? {prob}logit {result.score:.2f}",
                 fontsize=10)
    bar = fig.colorbar(heat, ax=axes.tolist(), shrink=0.7, aspect=25)
    bar.set_label("relevance (0-1, normalised)", fontsize=8)
    return fig


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
