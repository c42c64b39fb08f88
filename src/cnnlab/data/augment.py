"""Augmentation as batched tensor ops on the training device (airbench style: no per-image Python).

Names and semantics follow Keras' ImageDataGenerator (``rotation_range`` in degrees, shifts as a
fraction of the size, ``zoom_range`` z -> [1 - z, 1 + z], ``brightness_range`` multipliers, flips,
``fill_mode="nearest"``), plus random crop with padding, cutout, mixup and cutmix. All random numbers
of a batch come from one numpy Generator, so a batch is a pure function of its seed.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from cnnlab.errors import UserError

FILL_MODES = {"nearest": "border", "reflect": "reflection", "constant": "zeros", "wrap": "border"}
OPS = ("horizontal_flip", "vertical_flip", "rotation", "shift", "zoom", "crop", "brightness", "cutout",
       "mixup", "cutmix")


@dataclass
class AugmentConfig:
    """What augmentation a training batch gets (all off by default). YAML-friendly via to_dict/from_dict."""

    rotation_range: float = 0.0          # degrees: angle ~ U(-r, r)
    width_shift_range: float = 0.0       # < 1: fraction of the width; >= 1: pixels
    height_shift_range: float = 0.0
    zoom_range: float | list[float] = 0.0  # z -> [1 - z, 1 + z], or [lo, hi]; > 1 zooms out (as Keras)
    brightness_range: list[float] | None = None  # [lo, hi] multiplier
    horizontal_flip: bool = False
    vertical_flip: bool = False
    flip_prob: float = 0.5               # probability of each enabled flip (Keras: 0.5)
    fill_mode: str = "nearest"           # nearest | reflect | constant | wrap (pixels outside the image)
    cval: float = 0.0                    # fill value for fill_mode="constant", on the [0, 1] scale
    crop_padding: int = 0                # random crop of the original size after padding by this many px
    crop_padding_mode: str = "reflect"   # reflect | zeros
    cutout: int = 0                      # side of the square cut out (normalised value 0), 0 = off
    cutout_prob: float = 1.0
    mixup_alpha: float = 0.0             # lambda ~ Beta(alpha, alpha) per batch, 0 = off
    cutmix_alpha: float = 0.0
    mix_prob: float = 1.0                # probability that a batch is mixed (mixup or cutmix)
    mix_switch_prob: float = 0.5         # with both on: probability of cutmix instead of mixup

    def __post_init__(self) -> None:
        self.validate()

    # --- construction -------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> AugmentConfig:
        """Build from a dict (e.g. YAML); ``preset: name`` starts from a preset; unknown keys are errors."""
        d = dict(d or {})
        base = dict(PRESETS[_preset_name(d.pop("preset"))]) if "preset" in d else {}
        names = [f.name for f in dataclasses.fields(cls) if f.init]
        for key in d:
            if key not in names:
                close = difflib.get_close_matches(key, names, n=1)
                raise UserError(f"unknown augmentation option {key!r}"
                                + (f"; did you mean {close[0]!r}?" if close else f" (known: {', '.join(names)})"))
        return cls(**{**base, **d})

    @classmethod
    def preset(cls, name: str) -> AugmentConfig:
        """A named preset: none, standard, keras_course, textbook, mixup, cutmix."""
        return cls(**PRESETS[_preset_name(name)])

    def to_dict(self) -> dict[str, Any]:
        """Plain data (lists, numbers, strings, booleans) for YAML and run configs."""
        return dataclasses.asdict(self)  # validate() made ranges lists

    # --- queries --------------------------------------------------------------------------------
    def zoom_bounds(self) -> tuple[float, float]:
        z = self.zoom_range
        if isinstance(z, list | tuple):
            return float(z[0]), float(z[1])
        return 1.0 - float(z), 1.0 + float(z)

    def enabled_ops(self) -> list[str]:
        """The active operations, in the order they are applied."""
        on = {
            "horizontal_flip": self.horizontal_flip and self.flip_prob > 0,
            "vertical_flip": self.vertical_flip and self.flip_prob > 0,
            "rotation": self.rotation_range > 0,
            "shift": self.width_shift_range > 0 or self.height_shift_range > 0,
            "zoom": self.zoom_bounds() != (1.0, 1.0),
            "crop": self.crop_padding > 0,
            "brightness": self.brightness_range is not None and tuple(self.brightness_range) != (1.0, 1.0),
            "cutout": self.cutout > 0 and self.cutout_prob > 0,
            "mixup": self.mixup_alpha > 0 and self.mix_prob > 0,
            "cutmix": self.cutmix_alpha > 0 and self.mix_prob > 0,
        }
        return [op for op in OPS if on[op]]

    @property
    def mixes(self) -> bool:
        """True when batches may get soft targets."""
        return bool({"mixup", "cutmix"} & set(self.enabled_ops()))

    def only(self, op: str) -> AugmentConfig:
        """A copy with only ``op`` enabled (its own settings kept); used by the preview."""
        keep = {
            "horizontal_flip": ("horizontal_flip", "flip_prob"), "vertical_flip": ("vertical_flip", "flip_prob"),
            "rotation": ("rotation_range", "fill_mode", "cval"),
            "shift": ("width_shift_range", "height_shift_range", "fill_mode", "cval"),
            "zoom": ("zoom_range", "fill_mode", "cval"), "crop": ("crop_padding", "crop_padding_mode"),
            "brightness": ("brightness_range",), "cutout": ("cutout", "cutout_prob"),
            "mixup": ("mixup_alpha", "mix_prob"), "cutmix": ("cutmix_alpha", "mix_prob"),
        }[op]
        return AugmentConfig(**{k: getattr(self, k) for k in keep})

    def validate(self) -> None:
        def bad(msg: str) -> UserError:
            return UserError(f"augmentation: {msg}")

        for name in ("rotation_range", "width_shift_range", "height_shift_range", "mixup_alpha", "cutmix_alpha",
                     "crop_padding", "cutout"):
            if float(getattr(self, name)) < 0:
                raise bad(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("flip_prob", "cutout_prob", "mix_prob", "mix_switch_prob"):
            if not 0.0 <= float(getattr(self, name)) <= 1.0:
                raise bad(f"{name} must be a probability in [0, 1], got {getattr(self, name)}")
        z = self.zoom_range
        if isinstance(z, list | tuple):
            if len(z) != 2 or not 0 < float(z[0]) <= float(z[1]):
                raise bad(f"zoom_range must be a float or [lo, hi] with 0 < lo <= hi, got {z}")
            self.zoom_range = [float(z[0]), float(z[1])]
        elif not 0 <= float(z) < 1:
            raise bad(f"zoom_range as a float must be in [0, 1), got {z}")
        if self.brightness_range is not None:
            b = self.brightness_range
            if not isinstance(b, list | tuple) or len(b) != 2 or not 0 <= float(b[0]) <= float(b[1]):
                raise bad(f"brightness_range must be [lo, hi] with 0 <= lo <= hi, got {b}")
            self.brightness_range = [float(b[0]), float(b[1])]
        if self.fill_mode not in FILL_MODES:
            raise bad(f"fill_mode must be one of {', '.join(FILL_MODES)}, got {self.fill_mode!r}")
        if self.crop_padding_mode not in ("reflect", "zeros"):
            raise bad(f"crop_padding_mode must be reflect or zeros, got {self.crop_padding_mode!r}")
        self.crop_padding, self.cutout = int(self.crop_padding), int(self.cutout)


PRESETS: dict[str, dict[str, Any]] = {
    "none": {},
    "standard": {"crop_padding": 4, "horizontal_flip": True},
    "keras_course": {"rotation_range": 30.0, "brightness_range": [0.8, 1.0], "zoom_range": 0.3,
                     "width_shift_range": 0.2, "height_shift_range": 0.2, "horizontal_flip": True},
    "textbook": {"width_shift_range": 0.1, "height_shift_range": 0.1, "horizontal_flip": True},
    "mixup": {"crop_padding": 4, "horizontal_flip": True, "mixup_alpha": 0.2},
    "cutmix": {"crop_padding": 4, "horizontal_flip": True, "cutmix_alpha": 1.0},
}


def _preset_name(name: str) -> str:
    key = str(name).lower().replace("-", "_")
    if key not in PRESETS:
        raise UserError(f"unknown augmentation preset {name!r} (known: {', '.join(PRESETS)})")
    return key


def resolve_augment(spec: AugmentConfig | dict | str | None) -> AugmentConfig | None:
    """Accept a config, a dict (YAML), a preset name or None; None when nothing is enabled."""
    if spec is None or spec is False:
        return None
    if isinstance(spec, str):
        cfg = AugmentConfig.preset(spec)
    elif isinstance(spec, dict):
        cfg = AugmentConfig.from_dict(spec)
    elif isinstance(spec, AugmentConfig):
        cfg = spec
    else:
        raise UserError(f"augment must be a preset name, a dict or an AugmentConfig, not {type(spec).__name__}")
    return cfg if cfg.enabled_ops() else None


# --- batched operations (x: float (N, C, H, W)) ------------------------------------------------------

def _dev(a: np.ndarray, x: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(a, dtype=x.dtype).to(x.device, non_blocking=True)


def flip(x: torch.Tensor, mask: np.ndarray, dim: int) -> torch.Tensor:
    """Flip the images where ``mask`` (N,) is true along ``dim`` (3 horizontal, 2 vertical); exact."""
    if not mask.any():
        return x
    m = torch.as_tensor(mask, device=x.device).view(-1, 1, 1, 1)
    return torch.where(m, x.flip(dim), x)


def affine_matrices(angles_deg: np.ndarray, shifts_px: np.ndarray, zooms: np.ndarray, h: int, w: int) -> np.ndarray:
    """Per-image (N, 2, 3) matrices for ``affine_grid`` mapping output to input coordinates (Keras order:
    rotate, shift, zoom about the centre). ``shifts_px`` (N, 2) is (dx, dy) in pixels, ``zooms`` (N, 2)."""
    t = np.deg2rad(angles_deg)
    cos, sin = np.cos(t), np.sin(t)
    zx, zy = zooms[:, 0], zooms[:, 1]
    # matrix in pixel units (x right, y down), then scaled to normalised coordinates [-1, 1]
    a = np.stack([np.stack([cos * zx, -sin * zy], 1), np.stack([sin * zx, cos * zy], 1)], 1)
    scale = np.array([2.0 / w, 2.0 / h])
    a_norm = a * scale[None, :, None] / scale[None, None, :]
    b_norm = -shifts_px * scale[None, :]
    return np.concatenate([a_norm, b_norm[:, :, None]], axis=2).astype(np.float32)


def warp(x: torch.Tensor, theta: np.ndarray, fill_mode: str = "nearest", cval: float = 0.0) -> torch.Tensor:
    """Apply per-image affine matrices with bilinear sampling; outside pixels follow ``fill_mode``."""
    th = torch.as_tensor(theta, dtype=x.dtype, device=x.device)
    grid = F.affine_grid(th, list(x.shape), align_corners=False)
    if fill_mode == "wrap":
        grid = torch.remainder(grid + 1.0, 2.0) - 1.0
    if fill_mode == "constant" and cval:
        return F.grid_sample(x - cval, grid, mode="bilinear", padding_mode="zeros", align_corners=False) + cval
    return F.grid_sample(x, grid, mode="bilinear", padding_mode=FILL_MODES[fill_mode], align_corners=False)


def random_crop(x: torch.Tensor, padding: int, offsets: np.ndarray, mode: str = "reflect") -> torch.Tensor:
    """Pad by ``padding`` and crop the original size at per-image ``offsets`` (N, 2) = (dx, dy) in [0, 2p]."""
    n, c, h, w = x.shape
    p = int(padding)
    xp = F.pad(x, (p, p, p, p), mode="reflect" if mode == "reflect" and p < min(h, w) else "constant")
    ox = torch.as_tensor(offsets[:, 0], device=x.device)
    oy = torch.as_tensor(offsets[:, 1], device=x.device)
    rows = (oy[:, None] + torch.arange(h, device=x.device)).view(n, 1, h, 1).expand(n, c, h, w + 2 * p)
    out = xp.gather(2, rows)
    cols = (ox[:, None] + torch.arange(w, device=x.device)).view(n, 1, 1, w).expand(n, c, h, w)
    return out.gather(3, cols)


def cutout(x: torch.Tensor, size: int, centres: np.ndarray, apply: np.ndarray, value: float = 0.0) -> torch.Tensor:
    """Set a ``size`` x ``size`` square (clipped at the border) around ``centres`` (N, 2) = (cx, cy) to ``value``."""
    n, _, h, w = x.shape
    dev = x.device
    lo = torch.as_tensor(centres - size // 2, device=dev)
    ys = torch.arange(h, device=dev).view(1, h, 1)
    xs = torch.arange(w, device=dev).view(1, 1, w)
    inside = ((ys >= lo[:, 1].view(n, 1, 1)) & (ys < lo[:, 1].view(n, 1, 1) + size)
              & (xs >= lo[:, 0].view(n, 1, 1)) & (xs < lo[:, 0].view(n, 1, 1) + size))
    inside &= torch.as_tensor(apply, device=dev).view(n, 1, 1)
    return x.masked_fill(inside[:, None], value)


def one_hot(y: torch.Tensor, num_classes: int) -> torch.Tensor:
    return F.one_hot(y, num_classes).to(torch.float32)


def mixup(x: torch.Tensor, y_soft: torch.Tensor, lam: float, perm: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``lam * x + (1 - lam) * x[perm]`` with the same mix of the (soft) targets."""
    return lam * x + (1.0 - lam) * x[perm], lam * y_soft + (1.0 - lam) * y_soft[perm]


def cutmix(x: torch.Tensor, y_soft: torch.Tensor, box: tuple[int, int, int, int],
           perm: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Paste ``box`` = (y0, y1, x0, x1) from ``x[perm]``; targets mixed by the pasted area. Returns lam."""
    y0, y1, x0, x1 = box
    h, w = x.shape[-2:]
    out = x.clone()
    out[:, :, y0:y1, x0:x1] = x[perm][:, :, y0:y1, x0:x1]
    lam = 1.0 - (y1 - y0) * (x1 - x0) / float(h * w)
    return out, lam * y_soft + (1.0 - lam) * y_soft[perm], lam


def cutmix_box(lam: float, h: int, w: int, rng: np.random.Generator) -> tuple[int, int, int, int]:
    """A box of area about ``(1 - lam) * h * w`` at a uniform centre, clipped to the image."""
    r = math.sqrt(max(0.0, 1.0 - lam))
    ch, cw = int(h * r), int(w * r)
    cy, cx = int(rng.integers(h)), int(rng.integers(w))
    return (max(cy - ch // 2, 0), min(cy + ch - ch // 2, h), max(cx - cw // 2, 0), min(cx + cw - cw // 2, w))


class BatchPipeline:
    """uint8 batch on the device -> normalised float batch, augmented when a config is given.

    Order: flips, one affine warp (rotation/shift/zoom), padded crop, brightness (all on the [0, 1]
    scale), normalisation, cutout (normalised value 0, i.e. the mean colour), mixup/cutmix (soft targets).
    """

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...], augment: AugmentConfig | None = None,
                 num_classes: int | None = None) -> None:
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        self.augment = augment if augment is not None and augment.enabled_ops() else None
        self.num_classes = num_classes
        if self.augment is not None and self.augment.mixes and not num_classes:
            raise UserError("mixup/cutmix need num_classes")
        self._norm: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        """Float [0, 1] (N, C, H, W) -> (x - mean) / std."""
        key = (x.device, x.dtype, x.shape[1])
        if key not in self._norm:
            c = x.shape[1]
            mean, std = (torch.tensor(per_channel(v, c), dtype=x.dtype, device=x.device).view(1, c, 1, 1)
                         for v in (self.mean, self.std))
            self._norm[key] = (mean, 1.0 / std)
        mean, inv = self._norm[key]
        return (x - mean) * inv

    def __call__(self, images: torch.Tensor, labels: torch.Tensor,
                 rng: np.random.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        x = images.to(torch.float32).div_(255.0)
        cfg = self.augment
        if cfg is None or rng is None:
            return self.normalise(x), labels
        x = self.pixel_ops(x, cfg, rng)
        x = self.normalise(x)
        return self.tensor_ops(x, labels, cfg, rng)

    @staticmethod
    def pixel_ops(x: torch.Tensor, cfg: AugmentConfig, rng: np.random.Generator) -> torch.Tensor:
        """Flips, affine warp, padded crop and brightness on the [0, 1] scale."""
        n, _, h, w = x.shape
        ops = set(cfg.enabled_ops())
        if "horizontal_flip" in ops:
            x = flip(x, rng.random(n) < cfg.flip_prob, 3)
        if "vertical_flip" in ops:
            x = flip(x, rng.random(n) < cfg.flip_prob, 2)
        if ops & {"rotation", "shift", "zoom"}:
            angles = rng.uniform(-cfg.rotation_range, cfg.rotation_range, n) if "rotation" in ops else np.zeros(n)
            wr = cfg.width_shift_range * (w if cfg.width_shift_range < 1 else 1)
            hr = cfg.height_shift_range * (h if cfg.height_shift_range < 1 else 1)
            shifts = np.stack([rng.uniform(-wr, wr, n), rng.uniform(-hr, hr, n)], 1) if "shift" in ops \
                else np.zeros((n, 2))
            lo, hi = cfg.zoom_bounds()
            zooms = rng.uniform(lo, hi, (n, 2)) if "zoom" in ops else np.ones((n, 2))
            x = warp(x, affine_matrices(angles, shifts, zooms, h, w), cfg.fill_mode, cfg.cval)
        if "crop" in ops:
            x = random_crop(x, cfg.crop_padding, rng.integers(0, 2 * cfg.crop_padding + 1, (n, 2)),
                            cfg.crop_padding_mode)
        if "brightness" in ops:
            lo, hi = cfg.brightness_range  # type: ignore[misc]
            x = (x * _dev(rng.uniform(lo, hi, n), x).view(n, 1, 1, 1)).clamp_(0.0, 1.0)
        return x

    def tensor_ops(self, x: torch.Tensor, y: torch.Tensor, cfg: AugmentConfig,
                   rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Cutout and mixup/cutmix on the normalised batch."""
        n, _, h, w = x.shape
        ops = set(cfg.enabled_ops())
        if "cutout" in ops:
            centres = np.stack([rng.integers(0, w, n), rng.integers(0, h, n)], 1)
            x = cutout(x, cfg.cutout, centres, rng.random(n) < cfg.cutout_prob, 0.0)
        use = [op for op in ("mixup", "cutmix") if op in ops]
        if not use or rng.random() >= cfg.mix_prob:
            return x, y
        op = use[0] if len(use) == 1 else ("cutmix" if rng.random() < cfg.mix_switch_prob else "mixup")
        alpha = cfg.mixup_alpha if op == "mixup" else cfg.cutmix_alpha
        lam = float(rng.beta(alpha, alpha))
        perm = torch.as_tensor(rng.permutation(n), device=x.device)
        soft = one_hot(y, int(self.num_classes)) if y.ndim == 1 else y  # type: ignore[arg-type]
        if op == "mixup":
            return mixup(x, soft, lam, perm)
        return cutmix(x, soft, cutmix_box(lam, h, w, rng), perm)[:2]


def per_channel(values: tuple[float, ...], c: int) -> list[float]:
    """Per-channel statistics for ``c`` channels (one value repeated; RGB averaged for grey)."""
    if len(values) == c:
        return list(values)
    if len(values) == 1:
        return list(values) * c
    if c == 1:
        return [float(np.mean(values))]
    raise UserError(f"normalisation has {len(values)} values for {c} channels")
