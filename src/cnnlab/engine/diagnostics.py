"""Training diagnostics: what the layers of a network do while it trains (``--diagnostics N``).

Every ``N`` training steps (and at step 1) the :class:`Diagnostics` callback records, per layer:

- weight layers (conv, linear): the gradient norm ``||dL/dW||``, the weight norm ``||W||`` and the
  update/weight ratio ``||W_after - W_before|| / ||W_before||`` of that step (about 1e-3 is the
  usual healthy value; 1e-6 means the layer does not learn, 1e-1 that it is thrown around);
- activation layers (ReLU, sigmoid, tanh, ELU, maxout...): the mean and standard deviation of the
  outputs, the **saturated** fraction (outputs where the activation's slope is ~0: ReLU at or below 0,
  sigmoid below 0.02 or above 0.98, tanh beyond +-0.96, ELU/SELU on their flat negative tail, ReLU6
  at 0 or 6) and the **dead** fraction (units, i.e. channels, saturated for every image and position
  of the batch). Activations without a flat region (leaky ReLU, PReLU, maxout, GELU, SiLU) report
  NaN for both.

Files in the run folder: ``diagnostics.csv`` (one row per step and layer), ``diagnostics.json`` (the
same as series by layer) and ``diagnostics.png`` (layers x time heat maps: the vanishing-gradient
picture); with ``tensorboard`` on, the scalars also go to ``<run>/tensorboard`` (``diagnostics/...``).
"""

from __future__ import annotations

import csv
import io
import math
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnlab.engine.callbacks import Callback
from cnnlab.io import atomic_write_text, read_json, write_json

CSV = "diagnostics.csv"
JSON = "diagnostics.json"
PNG = "diagnostics.png"
PARAM_KEYS = ("grad_norm", "weight_norm", "update_ratio")
ACT_KEYS = ("act_mean", "act_std", "saturated", "dead")
WEIGHT_LAYERS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


def _activation_types() -> tuple[type, ...]:
    from cnnlab.models.layers import Maxout, MaxoutUnit

    return (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.SELU, nn.GELU, nn.SiLU, nn.Sigmoid, nn.Tanh,
            nn.Hardswish, nn.Mish, Maxout, MaxoutUnit)


def saturation_mask(module: nn.Module, y: torch.Tensor) -> torch.Tensor | None:
    """Where the activation ``module`` has (nearly) zero slope at output ``y``; None when it has no flat
    region (leaky ReLU, PReLU, maxout, GELU, SiLU...)."""
    if isinstance(module, nn.ReLU6):
        return (y <= 0) | (y >= 6)
    if isinstance(module, nn.ReLU):
        return y <= 0
    if isinstance(module, nn.Sigmoid):
        return (y < 0.02) | (y > 0.98)
    if isinstance(module, nn.Tanh):
        return y.abs() > 0.96
    if isinstance(module, nn.SELU):
        return y < -0.95 * 1.0507 * 1.67326    # slope = y + scale*alpha below 0: under 5 % of it
    if isinstance(module, nn.ELU):
        return y < -0.95 * module.alpha
    return None


def activation_stats(module: nn.Module, y: torch.Tensor) -> dict[str, float]:
    """Mean, std, saturated fraction and dead fraction (channels saturated everywhere) of an output."""
    y = y.detach().float()
    out = {"act_mean": float(y.mean()), "act_std": float(y.std()) if y.numel() > 1 else 0.0,
           "saturated": math.nan, "dead": math.nan}
    mask = saturation_mask(module, y)
    if mask is not None:
        out["saturated"] = float(mask.float().mean())
        if y.ndim >= 2:
            per_unit = mask.transpose(0, 1).reshape(y.shape[1], -1).all(1)
            out["dead"] = float(per_unit.float().mean())
    return out


class Diagnostics(Callback):
    """Per-layer gradient/weight/update norms and activation statistics every ``every`` steps."""

    def __init__(self, run_dir: str | os.PathLike, every: int = 50, tensorboard: bool = False,
                 plots: bool = True) -> None:
        if every < 1:
            raise ValueError("every must be >= 1")
        self.run_dir = Path(run_dir)
        self.every = int(every)
        self.tensorboard = tensorboard
        self.plots = plots
        self.rows: list[dict[str, Any]] = []
        self._writer: Any = None
        self._hooks: list[Any] = []
        self._weights: list[tuple[str, nn.Module]] = []
        self._acts: dict[str, nn.Module] = {}
        self._active = False
        self._step_rows: dict[str, dict[str, Any]] = {}
        self._before: dict[str, torch.Tensor] = {}
        self._order: dict[str, int] = {}

    # -- set-up -------------------------------------------------------------------------------------
    def on_train_begin(self, trainer: Any) -> None:
        model = trainer.model
        act_types = _activation_types()
        self._order = {n: i for i, (n, _) in enumerate(model.named_modules())}
        self._weights = [(n, m) for n, m in model.named_modules() if isinstance(m, WEIGHT_LAYERS)
                         and getattr(m, "weight", None) is not None]   # frozen layers: no gradient (NaN)
        self._acts = {}
        for name, m in model.named_modules():
            if isinstance(m, act_types) and not any(name.startswith(a + ".") for a in self._acts):
                self._acts[name] = m
                self._hooks.append(m.register_forward_hook(self._hook(name)))
        step = int(getattr(trainer, "global_step", 0))
        if step and (self.run_dir / JSON).is_file() and not self.rows:  # resumed: keep what was logged
            try:
                self.rows = [r for r in read_json(self.run_dir / JSON).get("rows", []) if r.get("step", 0) <= step]
            except Exception:
                self.rows = []
        if self.tensorboard and self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(str(self.run_dir / "tensorboard"))

    def _hook(self, name: str) -> Any:
        def hook(module: nn.Module, inputs: Any, output: Any) -> None:
            if self._active and isinstance(output, torch.Tensor):
                self._row(name, type(module).__name__).update(activation_stats(module, output))
        return hook

    def _row(self, layer: str, kind: str) -> dict[str, Any]:
        if layer not in self._step_rows:
            self._step_rows[layer] = {"layer": layer, "type": kind}
        return self._step_rows[layer]

    # -- one sampled step ---------------------------------------------------------------------------
    def sampled(self, step: int) -> bool:
        return step == 1 or step % self.every == 0

    def on_batch_begin(self, trainer: Any, step: int) -> None:
        self._active = self.sampled(step)
        if self._active:
            self._step_rows = {}
            self._before = {n: m.weight.detach().clone() for n, m in self._weights}

    def on_after_backward(self, trainer: Any, step: int) -> None:
        if not self._active:
            return
        scale = float(trainer.scaler.get_scale()) if getattr(trainer, "amp", False) else 1.0
        for name, m in self._weights:
            g = m.weight.grad
            row = self._row(name, type(m).__name__)
            row["grad_norm"] = float(g.detach().float().norm()) / scale if g is not None else math.nan

    def on_batch_end(self, trainer: Any, step: int, loss: float | None) -> None:
        if not self._active:
            return
        self._active = False
        epoch = int(trainer.epoch) + 1
        for name, m in self._weights:
            w = m.weight.detach()
            before = self._before.get(name)
            norm = float(w.float().norm())
            row = self._row(name, type(m).__name__)
            row["weight_norm"] = norm
            if before is not None:
                b = float(before.float().norm())
                row["update_ratio"] = float((w - before).float().norm()) / b if b > 0 else math.nan
        self._before = {}
        order = {n: i for i, n in enumerate(self.layer_order())}
        for layer, row in sorted(self._step_rows.items(), key=lambda kv: order.get(kv[0], 1 << 30)):
            full = {"step": step, "epoch": epoch, **row}
            self.rows.append(full)
            if self._writer is not None:
                for k in (*PARAM_KEYS, *ACT_KEYS):
                    v = full.get(k)
                    if isinstance(v, float) and math.isfinite(v):
                        self._writer.add_scalar(f"diagnostics/{k}/{layer}", v, step)
        self._step_rows = {}

    def layer_order(self) -> list[str]:
        """Weight and activation layers in module order (the input side first)."""
        names = [n for n, _ in self._weights] + list(self._acts)
        return sorted(names, key=lambda n: self._order.get(n, 1 << 30))

    # -- output -------------------------------------------------------------------------------------
    def on_epoch_end(self, trainer: Any, epoch: int, logs: dict[str, Any]) -> None:
        self.write()
        if self._writer is not None:
            self._writer.flush()

    def on_train_end(self, trainer: Any, logs: dict[str, Any]) -> None:
        self.write()
        if self.plots and self.rows:
            title = f"{getattr(trainer.cfg, 'model', '')}".strip()
            plot_diagnostics(self.run_dir / JSON, self.run_dir / PNG, title=title)
        for h in self._hooks:
            h.remove()
        self._hooks = []
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def write(self) -> None:
        """``diagnostics.csv`` and ``diagnostics.json`` from the rows so far (atomic)."""
        if not self.rows:
            return
        columns = ["step", "epoch", "layer", "type", *PARAM_KEYS, *ACT_KEYS]
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n", extrasaction="ignore")
        w.writeheader()
        for r in self.rows:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
        atomic_write_text(self.run_dir / CSV, buf.getvalue())
        write_json(self.run_dir / JSON, {"every": self.every, "layers": self.layer_order(),
                                         "rows": [{k: (None if isinstance(v, float) and not math.isfinite(v)
                                                       else v) for k, v in r.items()} for r in self.rows]})


# -- reading and plotting ---------------------------------------------------------------------------


def load_diagnostics(path: str | os.PathLike) -> dict[str, Any]:
    """``diagnostics.json`` of a run folder (or the file) as ``{"layers", "types", "steps", key: {layer:
    [values by step]}}``; a missing or unreadable file is a UserError."""
    from cnnlab.errors import UserError

    p = Path(path)
    if p.is_dir():
        p = p / JSON
    try:
        data = read_json(p)
    except Exception as e:
        raise UserError(f"no training diagnostics in {path} (train with --diagnostics N): {e}") from None
    rows = data.get("rows") if isinstance(data, dict) else None
    names = data.get("layers") if isinstance(data, dict) else None
    if not isinstance(rows, list) or not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise UserError(f"{p}: not a cnnlab diagnostics file (needs 'layers' and 'rows' lists)")
    for r in rows:
        ok = isinstance(r, dict) and isinstance(r.get("layer"), str) and isinstance(r.get("step"), int) \
            and not isinstance(r.get("step"), bool) and all(
                r.get(k) is None or (isinstance(r.get(k), (int, float)) and not isinstance(r.get(k), bool))
                for k in (*PARAM_KEYS, *ACT_KEYS))
        if not ok:
            raise UserError(f"{p}: malformed diagnostics row {str(r)[:80]}")
    layers = [n for n in dict.fromkeys(names) if any(r.get("layer") == n for r in rows)]
    steps = sorted({int(r["step"]) for r in rows})
    col = {s: i for i, s in enumerate(steps)}
    out: dict[str, Any] = {"layers": layers, "steps": steps, "every": data.get("every"),
                           "types": {r["layer"]: r.get("type") for r in rows}}
    for key in (*PARAM_KEYS, *ACT_KEYS):
        series = {n: [math.nan] * len(steps) for n in layers}
        for r in rows:
            v = r.get(key)
            if r.get("layer") in series and v is not None:
                series[r["layer"]][col[int(r["step"])]] = float(v)
        out[key] = {n: s for n, s in series.items() if any(math.isfinite(x) for x in s)}
    return out


def first_last_grad_ratio(diag: dict[str, Any], last_steps: int = 0) -> float:
    """Mean gradient norm of the first weight layer divided by that of the last (over all sampled steps,
    or the last ``last_steps``): 1e-3 means the gradient is 1000x smaller at the input side."""
    grads = diag["grad_norm"]
    names = [n for n in diag["layers"] if n in grads]
    if len(names) < 2:
        return math.nan

    def mean(values: list[float]) -> float:
        vals = [v for v in (values[-last_steps:] if last_steps else values) if math.isfinite(v)]
        return sum(vals) / len(vals) if vals else math.nan

    first, last = mean(grads[names[0]]), mean(grads[names[-1]])
    return first / last if last and math.isfinite(last) and last > 0 else math.nan


def plot_diagnostics(source: str | os.PathLike, path: str | os.PathLike, title: str = "") -> Path:
    """``diagnostics.png``: four layers x time heat maps (gradient norm, update/weight ratio, activation
    std, saturated fraction) and the gradient norm of the first and last layer over time."""
    import numpy as np

    from cnnlab.plots import pyplot, save_figure

    d = load_diagnostics(source)
    plt = pyplot()
    steps = d["steps"]
    panels = [("grad_norm", "gradient norm per layer (log10)", True, "viridis"),
              ("update_ratio", "update / weight per step (log10; ~-3 is healthy)", True, "magma"),
              ("act_std", "activation std (log10)", True, "cividis"),
              ("saturated", "saturated fraction of activations", False, "Reds")]
    fig = plt.figure(figsize=(15, 9.5))
    grid = fig.add_gridspec(2, 3, width_ratios=[1, 1, 1.05])
    axes = [fig.add_subplot(grid[0, 0]), fig.add_subplot(grid[0, 1]), fig.add_subplot(grid[1, 0]),
            fig.add_subplot(grid[1, 1])]
    for ax, (key, label, log, cmap) in zip(axes, panels, strict=True):
        series = d[key]
        names = [n for n in d["layers"] if n in series]
        if not names:
            ax.set_axis_off()
            ax.set_title(f"{label}: not measured", fontsize=10)
            continue
        m = np.array([series[n] for n in names], dtype=float)
        if log:
            with np.errstate(divide="ignore", invalid="ignore"):
                m = np.log10(np.where(m > 0, m, np.nan))
        finite = m[np.isfinite(m)]
        vmin, vmax = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        if not log:
            vmin, vmax = 0.0, 1.0
        cm = plt.get_cmap(cmap).with_extremes(bad="0.82")   # grey: not measured, or exactly 0 on a log scale
        im = ax.imshow(np.ma.masked_invalid(m), aspect="auto", cmap=cm, vmin=vmin, vmax=vmax,
                       interpolation="nearest")
        ax.set_yticks(range(len(names)))
        ax.set_yticklabels([f"{n} {d['types'].get(n, '')}" for n in names], fontsize=7)
        ticks = np.linspace(0, len(steps) - 1, min(6, len(steps))).round().astype(int)
        ax.set_xticks(ticks)
        ax.set_xticklabels([str(steps[i]) for i in ticks], fontsize=8)
        ax.set_xlabel("training step")
        ax.set_title(label + ("\n(input side at the top)" if key == "grad_norm" else ""), fontsize=10)
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03)
    ax = fig.add_subplot(grid[:, 2])
    grads = d["grad_norm"]
    names = [n for n in d["layers"] if n in grads]
    if names:
        cmap = plt.get_cmap("coolwarm")
        for i, n in enumerate(names):
            ax.semilogy(steps, grads[n], color=cmap(i / max(1, len(names) - 1)),
                        lw=2.2 if i in (0, len(names) - 1) else 0.8,
                        label=n if i in (0, len(names) - 1) else None)
        ratio = first_last_grad_ratio(d)
        ax.set_title(f"gradient norm by layer (blue: input side, red: output)\nfirst / last layer = {ratio:.2g}",
                     fontsize=10)
        ax.set_xlabel("training step")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    fig.suptitle(f"Training diagnostics {title}".strip() + "  (grey: exactly 0 or not measured)", fontsize=13)
    fig.tight_layout()
    return save_figure(fig, path, dpi=110)


def plot_diagnostics_grid(runs: list[tuple[str, str | os.PathLike]], path: str | os.PathLike,
                          title: str = "Training diagnostics side by side (grey: gradient exactly 0)"
                          ) -> Path | None:
    """Several runs' diagnostics side by side (one column per run): the gradient norm per layer (log10,
    one colour scale for all) and the saturated fraction of the activations, layers x time. Runs without
    ``diagnostics.json`` are left out; None when none has any."""
    import numpy as np

    from cnnlab.plots import pyplot, save_figure

    data = []
    for label, run in runs:
        try:
            data.append((label, load_diagnostics(run)))
        except Exception:
            continue
    if not data:
        return None
    plt = pyplot()
    grads = []
    for _, d in data:
        g = [v for n in d["layers"] if n in d["grad_norm"] for v in d["grad_norm"][n] if v > 0 and math.isfinite(v)]
        grads += g
    lo, hi = (float(np.log10(min(grads))), float(np.log10(max(grads)))) if grads else (-8.0, 0.0)
    fig, axes = plt.subplots(2, len(data), figsize=(2.9 * len(data) + 2.2, 8.2), squeeze=False)
    images = [None, None]
    for j, (label, d) in enumerate(data):
        ratio = first_last_grad_ratio(d)
        for i, (key, cmap) in enumerate((("grad_norm", "viridis"), ("saturated", "Reds"))):
            ax = axes[i][j]
            names = [n for n in d["layers"] if n in d[key]]
            if not names:
                ax.set_axis_off()
                ax.set_title(f"{label}\n(no {key.replace('_', ' ')})" if i == 0 else "no saturating activation",
                             fontsize=9)
                continue
            m = np.array([d[key][n] for n in names], dtype=float)
            if key == "grad_norm":
                with np.errstate(divide="ignore", invalid="ignore"):
                    m = np.log10(np.where(m > 0, m, np.nan))
                cm = plt.get_cmap(cmap).with_extremes(bad="0.82")   # grey: a gradient of exactly 0
                im = ax.imshow(np.ma.masked_invalid(m), aspect="auto", cmap=cm, vmin=lo, vmax=hi,
                               interpolation="nearest")
                ax.set_title(f"{label}\nfirst/last layer grad = {ratio:.1e}", fontsize=9)
            else:
                im = ax.imshow(np.ma.masked_invalid(m), aspect="auto", cmap=cmap, vmin=0, vmax=1,
                               interpolation="nearest")
                ax.set_title("saturated fraction", fontsize=9)
            images[i] = im
            ax.set_yticks(range(len(names)))
            ax.set_yticklabels(names if j == 0 else [""] * len(names), fontsize=6)
            steps = d["steps"]
            ticks = np.linspace(0, len(steps) - 1, min(4, len(steps))).round().astype(int)
            ax.set_xticks(ticks)
            ax.set_xticklabels([str(steps[t]) for t in ticks], fontsize=7)
            ax.set_xlabel("step", fontsize=8)
    for i, label in enumerate(("log10 gradient norm (input side at the top)", "saturated fraction")):
        if images[i] is not None:
            fig.colorbar(images[i], ax=list(axes[i]), fraction=0.02, pad=0.01, label=label)
    fig.suptitle(title, fontsize=12)
    return save_figure(fig, path, dpi=100)
