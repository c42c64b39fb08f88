"""The architecture knobs' names and allowed values (torch-free, so configs check them cheaply);
the layers themselves are built by ``cnnlab.models.layers``."""

from __future__ import annotations

from typing import Any

from cnnlab.errors import ModelError

ACTIVATIONS = ("relu", "leaky_relu", "prelu", "elu", "selu", "gelu", "silu", "sigmoid", "tanh", "maxout")
NORMS = ("batch", "layer", "instance", "group", "none")
INITS = ("default", "xavier_uniform", "xavier_normal", "he_uniform", "he_normal", "lecun_normal", "orthogonal")
KNOBS = ("activation", "norm", "norm_groups", "init", "init_gain")
MAXOUT_PIECES = 2
SATURATING = ("sigmoid", "tanh")


def check_knobs(activation: Any = None, norm: Any = None, norm_groups: Any = 32, init: Any = "default",
                init_gain: Any = 1.0) -> None:
    """A one-line ModelError for a knob value that is not allowed."""
    import difflib

    for what, value, allowed in (("activation", activation, ACTIVATIONS), ("norm", norm, NORMS),
                                 ("init", init, INITS)):
        if value is not None and value not in allowed:
            close = difflib.get_close_matches(str(value), allowed, n=2)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise ModelError(f"{what} must be one of {', '.join(allowed)}, got {value!r}{hint}")
    if isinstance(norm_groups, bool) or not isinstance(norm_groups, int) or norm_groups < 1:
        raise ModelError(f"norm_groups must be a positive integer, got {norm_groups!r}")
    if isinstance(init_gain, bool) or not isinstance(init_gain, (int, float)) or not 0 < init_gain < 1e6:
        raise ModelError(f"init_gain must be a positive number, got {init_gain!r}")
