"""Architecture knobs for every from-scratch model: activation, normalisation, initialisation.

One mechanism, not one per model: :func:`cnnlab.models.create_model` takes the options
``activation``, ``norm``, ``norm_groups``, ``init`` and ``init_gain``, makes a :class:`Layers`
factory current while the model's builder runs, then initialises the weights. Builders ask the
current factory for their activations and normalisation layers::

    L = current_layers()
    layers = L.conv_block(cin, cout, 3, padding=1, norm="batch")   # conv [+ norm] + activation
    act = L.act(channels)                                            # an activation on its own

With no options the factory builds exactly what the builder names (its own defaults), so default
models are unchanged. The options are recorded in ``model.cnnlab_spec["kwargs"]``, so a checkpoint,
``evaluate``, ``predict`` and ``export`` rebuild the same network.

Maxout (Goodfellow et al. 2013) is the maximum of ``MAXOUT_PIECES`` affine maps: in a conv block the
conv produces ``pieces x`` channels and the maximum is taken over each group; where an activation
stands alone (after a residual sum) it is a 1x1 affine map to ``pieces x`` channels then the maximum.
Both add parameters, as PReLU does (one slope per channel).
"""

from __future__ import annotations

import contextlib
import contextvars
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from cnnlab.config.knobs import ACTIVATIONS, INITS, KNOBS, MAXOUT_PIECES, NORMS, check_knobs
from cnnlab.errors import ModelError


class Maxout(nn.Module):
    """The maximum over ``pieces`` consecutive channel groups: (N, k*C, ...) -> (N, C, ...)."""

    def __init__(self, pieces: int = MAXOUT_PIECES) -> None:
        super().__init__()
        self.pieces = int(pieces)

    def forward(self, x):
        n, c = x.shape[0], x.shape[1]
        return x.reshape(n, c // self.pieces, self.pieces, *x.shape[2:]).amax(2)

    def extra_repr(self) -> str:
        return f"pieces={self.pieces}"


class MaxoutUnit(nn.Module):
    """A stand-alone maxout activation of ``channels`` units: a 1x1 affine map to ``pieces x channels``
    (conv for maps, linear for vectors) and the maximum over each group of ``pieces``."""

    def __init__(self, channels: int, pieces: int = MAXOUT_PIECES, dims: int = 2) -> None:
        super().__init__()
        self.affine = nn.Conv2d(channels, channels * pieces, 1) if dims == 2 else nn.Linear(channels,
                                                                                         channels * pieces)
        self.max = Maxout(pieces)

    def forward(self, x):
        return self.max(self.affine(x))


class LayerNorm2d(nn.GroupNorm):
    """Layer normalisation of conv maps: one group over (C, H, W), a scale and shift per channel."""

    def __init__(self, channels: int) -> None:
        super().__init__(1, channels)


def _group_count(channels: int, wanted: int) -> int:
    """The largest divisor of ``channels`` not above ``wanted`` (GroupNorm needs groups | channels)."""
    for g in range(min(wanted, channels), 0, -1):
        if channels % g == 0:
            return g
    return 1


@dataclass
class Layers:
    """What a builder's layers become. None: the builder's own choice (its default)."""

    activation: str | None = None
    norm: str | None = None
    norm_groups: int = 32
    init: str = "default"
    init_gain: float = 1.0
    used: set[str] = field(default_factory=set)   # which knobs the builder consulted

    def __post_init__(self) -> None:
        check_knobs(activation=self.activation, norm=self.norm, norm_groups=self.norm_groups, init=self.init,
                    init_gain=self.init_gain)

    # -- single layers ------------------------------------------------------------------------------
    def act_name(self, default: str = "relu") -> str:
        self.used.add("activation")
        return self.activation or default

    def norm_name(self, default: str = "none") -> str:
        self.used.add("norm")
        return self.norm or default

    def act(self, channels: int, default: str = "relu", dims: int = 2, inplace: bool = False) -> nn.Module:
        """An activation of ``channels`` units (``dims`` 2: conv maps, 1: vectors); ``inplace`` (ReLU and
        leaky ReLU only) where the builder's input to it is a fresh tensor nobody else reads."""
        name = self.act_name(default)
        if name == "maxout":
            return MaxoutUnit(channels, MAXOUT_PIECES, dims)
        return make_activation(name, channels, inplace)

    def norm_layer(self, channels: int, default: str = "none") -> nn.Module | None:
        """A normalisation layer for conv maps of ``channels`` channels, or None for ``none``."""
        name = self.norm_name(default)
        if name == "none":
            return None
        if name == "batch":
            return nn.BatchNorm2d(channels)
        if name == "layer":
            return LayerNorm2d(channels)
        if name == "instance":
            return nn.InstanceNorm2d(channels, affine=True)
        return nn.GroupNorm(_group_count(channels, self.norm_groups), channels)

    # -- blocks -------------------------------------------------------------------------------------
    def conv_block(self, cin: int, cout: int, kernel: int, stride: int = 1, padding: int = 0, *,
                   bias: bool = True, norm: str = "none", act: str = "relu", groups: int = 1,
                   inplace: bool = False) -> list[nn.Module]:
        """conv -> [norm] -> activation, the builder's ``norm``/``act`` unless the knobs say otherwise.

        The conv keeps the builder's ``bias`` while its normalisation is the builder's own; with another
        normalisation it has a bias exactly when there is no normalisation. Maxout widens the conv (and
        its norm) to ``MAXOUT_PIECES x cout`` channels and takes the maximum of each group.
        """
        norm_name, act_name = self.norm_name(norm), self.act_name(act)
        if norm_name != norm:
            bias = norm_name == "none"
        width = cout * MAXOUT_PIECES if act_name == "maxout" and groups == 1 else cout
        layers: list[nn.Module] = [nn.Conv2d(cin, width, kernel, stride, padding, bias=bias, groups=groups)]
        n = self.norm_layer(width, norm)
        if n is not None:
            layers.append(n)
        if act_name == "maxout" and groups == 1:
            layers.append(Maxout(MAXOUT_PIECES))
        else:
            layers.append(self.act(width, act, inplace=inplace))
        return layers

    def linear_block(self, fin: int, fout: int, act: str = "relu", inplace: bool = False) -> list[nn.Module]:
        """linear -> activation (no normalisation in dense layers); maxout widens the linear layer."""
        name = self.act_name(act)
        if name == "maxout":
            return [nn.Linear(fin, fout * MAXOUT_PIECES), Maxout(MAXOUT_PIECES)]
        return [nn.Linear(fin, fout), make_activation(name, fout, inplace)]

    # -- initialisation -----------------------------------------------------------------------------
    def initialise(self, model: nn.Module) -> None:
        """Apply ``init`` (and ``init_gain``) to every conv and linear weight; biases become 0.
        ``default`` with gain 1 leaves the builder's own initialisation."""
        if self.init == "default" and self.init_gain == 1.0:
            return
        nonlinearity = "relu" if (self.activation or "relu") in ("relu", "prelu", "maxout") else "leaky_relu"
        for m in model.modules():
            if not isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)):
                continue
            w = m.weight
            if self.init != "default":
                init_tensor(w, self.init, nonlinearity)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            if self.init_gain != 1.0:
                w.data.mul_(self.init_gain)


def init_tensor(w: Any, how: str, nonlinearity: str = "relu") -> None:
    """Initialise one weight tensor in place with scheme ``how`` (see :data:`INITS`)."""
    if how == "xavier_uniform":
        nn.init.xavier_uniform_(w)
    elif how == "xavier_normal":
        nn.init.xavier_normal_(w)
    elif how == "he_uniform":
        nn.init.kaiming_uniform_(w, nonlinearity=nonlinearity)
    elif how == "he_normal":
        nn.init.kaiming_normal_(w, nonlinearity=nonlinearity)
    elif how == "lecun_normal":
        fan_in = w[0].numel()
        nn.init.normal_(w, 0.0, 1.0 / math.sqrt(fan_in))
    elif how == "orthogonal":
        nn.init.orthogonal_(w)
    else:  # pragma: no cover - checked before
        raise ModelError(f"unknown init {how!r}")


def make_activation(name: str, channels: int, inplace: bool = False) -> nn.Module:
    """An activation module by name (``prelu``: one learned slope per channel; ``inplace`` for ReLU and
    leaky ReLU)."""
    if name == "relu":
        return nn.ReLU(inplace=inplace)
    if name == "leaky_relu":
        return nn.LeakyReLU(0.01, inplace=inplace)
    if name == "prelu":
        return nn.PReLU(channels)
    if name == "elu":
        return nn.ELU()
    if name == "selu":
        return nn.SELU()
    if name == "gelu":
        return nn.GELU()
    if name == "silu":
        return nn.SiLU()
    if name == "sigmoid":
        return nn.Sigmoid()
    if name == "tanh":
        return nn.Tanh()
    if name == "relu6":
        return nn.ReLU6()
    raise ModelError(f"activation {name!r} needs a conv or linear layer before it (use conv_block)")


_CURRENT: contextvars.ContextVar[Layers | None] = contextvars.ContextVar("cnnlab_layers", default=None)


def current_layers() -> Layers:
    """The factory of the model being built (a plain one outside :func:`create_model`)."""
    layers = _CURRENT.get()
    if layers is None:
        layers = Layers()
    return layers


@contextlib.contextmanager
def using_layers(layers: Layers) -> Iterator[Layers]:
    """Make ``layers`` the current factory while a builder runs."""
    token = _CURRENT.set(layers)
    try:
        yield layers
    finally:
        _CURRENT.reset(token)


def pop_knobs(kwargs: dict[str, Any]) -> Layers:
    """Take the knob options out of a model's keyword options and make their factory."""
    values = {k: kwargs.pop(k) for k in KNOBS if k in kwargs}
    if values.get("activation") == "default":
        values["activation"] = None
    if values.get("norm") == "default":
        values["norm"] = None
    if values.get("init") is None:
        values.pop("init", None)
    if values.get("init_gain") is None:
        values.pop("init_gain", None)
    if values.get("norm_groups") is None:
        values.pop("norm_groups", None)
    return Layers(**values)


__all__ = ["ACTIVATIONS", "INITS", "KNOBS", "Layers", "LayerNorm2d", "MAXOUT_PIECES", "Maxout", "MaxoutUnit",
           "NORMS", "check_knobs", "current_layers", "init_tensor", "make_activation", "pop_knobs",
           "using_layers"]
