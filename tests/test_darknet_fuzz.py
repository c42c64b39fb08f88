"""Property-based tests (hypothesis) of the Darknet parsers: any cfg text or weights bytes either loads
or raises cnnlab's own error class (a one-line ``UserError``), never another exception; and a network
that builds also runs. The same callables are the fuzz targets of ``cnnlab.fuzz.darknet``."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cnnlab.errors import DataError, UserError
from cnnlab.fuzz.darknet import fuzz_cfg, fuzz_targets, fuzz_weights, tiny_weights_model

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# a small valid detector using every supported layer type and option (32x32 input)
TEMPLATE = [
    ("net", {"width": "32", "height": "32", "channels": "3"}),
    ("convolutional", {"batch_normalize": "1", "filters": "8", "size": "3", "stride": "1", "pad": "1",
                       "dilation": "1", "groups": "1", "activation": "leaky"}),
    ("maxpool", {"size": "2", "stride": "2"}),
    ("convolutional", {"filters": "8", "size": "1", "stride": "1", "padding": "0", "groups": "2",
                       "activation": "mish"}),
    ("shortcut", {"from": "-2", "activation": "linear"}),
    ("route", {"layers": "-1,-3", "groups": "1", "group_id": "0"}),
    ("upsample", {"stride": "2", "scale": "1"}),
    ("dropout", {"probability": "0.1"}),
    ("convolutional", {"filters": "21", "size": "1", "stride_x": "1", "stride_y": "1", "activation": "linear"}),
    ("yolo", {"mask": "0,1,2", "anchors": "10,14, 23,27, 37,58", "classes": "2", "num": "3",
              "scale_x_y": "1.05", "new_coords": "0"}),
]
CLASSIFIER = [
    ("net", {"width": "16", "height": "16", "channels": "1"}),
    ("convolutional", {"filters": "4", "size": "3", "stride": "2", "pad": "1", "activation": "relu"}),
    ("maxpool", {"size": "3", "stride": "1", "padding": "2"}),
    ("avgpool", {}),
    ("softmax", {}),
    ("cost", {}),
]
# YOLOv2-style: reorg passthrough and a [region] head
V2 = [
    ("net", {"width": "32", "height": "32", "channels": "3"}),
    ("convolutional", {"batch_normalize": "1", "filters": "4", "size": "3", "stride": "2", "pad": "1",
                       "activation": "leaky"}),
    ("reorg", {"stride": "2"}),
    ("route", {"layers": "-1"}),
    ("convolutional", {"filters": "14", "size": "1", "activation": "linear"}),
    ("region", {"anchors": "0.5,0.7, 1.8,2.0", "classes": "2", "num": "2", "softmax": "1", "coords": "4"}),
]
# EfficientNet-style: squeeze-excitation (scale_channels), sam, a strided shortcut, a [yolo] head
SE = [
    ("net", {"width": "32", "height": "32", "channels": "3"}),
    ("convolutional", {"batch_normalize": "1", "filters": "8", "size": "3", "stride": "1", "pad": "1",
                       "activation": "swish"}),
    ("avgpool", {}),
    ("convolutional", {"filters": "8", "size": "1", "activation": "logistic"}),
    ("scale_channels", {"from": "-3"}),
    ("convolutional", {"filters": "8", "size": "1", "activation": "logistic"}),
    ("sam", {"from": "-2"}),
    ("convolutional", {"filters": "8", "size": "3", "stride": "2", "pad": "1", "activation": "leaky"}),
    ("shortcut", {"from": "-3", "activation": "linear"}),
    ("convolutional", {"filters": "21", "size": "1", "activation": "linear"}),
    ("yolo", {"mask": "0,1,2", "anchors": "10,14, 23,27, 37,58", "classes": "2", "num": "3"}),
]
EXTRA_KEYS = ["softmax", "coords", "share_index", "scale_wh", "reverse", "tree", "anchors", "stride",
              "stride_x", "stride_y", "padding", "dilation", "xnor", "binary", "maxpool_depth", "weights_type",
              "num", "mask", "classes", "width", "height", "channels", "groups", "group_id", "from", "layers"]

HOSTILE = st.one_of(
    st.sampled_from(["inf", "-inf", "nan", "1e400", "-1e400", "1e-400", "0", "-0", "-1", "1", "2", "3", "0.5",
                     "2.5", "1e9", "2147483647", "2147483648", "-2147483649", "99999999999", "", " ", "abc",
                     "1,2", "0x10", "1_0", "65536", "65537", "-3", "-1,-2", "0,1,2,3", "1e5", "linear", "none"]),
    st.integers(-(2**40), 2**40).map(str),
    st.integers(-4, 70).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.lists(st.integers(-10, 10), min_size=0, max_size=8).map(lambda v: ",".join(map(str, v))),
    st.text(max_size=12),
)


def _text(sections) -> str:
    return "\n".join(f"[{t}]\n" + "".join(f"{k}={v}\n" for k, v in opts.items()) for t, opts in sections)


@st.composite
def near_valid_cfgs(draw) -> str:
    base = draw(st.sampled_from([TEMPLATE, CLASSIFIER, V2, SE]))
    sections = [(t, dict(o)) for t, o in base]
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(sections) - 1))
        keys = sorted(sections[i][1]) + EXTRA_KEYS
        sections[i][1][draw(st.sampled_from(keys))] = draw(HOSTILE)
    if draw(st.booleans()):  # now and then drop or duplicate a section
        j = draw(st.integers(1, len(sections) - 1))
        sections = sections[:j] + sections[j + 1:] if draw(st.booleans()) else sections[:j + 1] + sections[j:]
    return _text(sections)


def _loads_or_user_error(target, data: bytes) -> None:
    try:
        target(data)
    except UserError as e:
        assert "\n" not in str(e).strip(), str(e)


def test_the_templates_are_valid():
    fuzz_cfg(_text(TEMPLATE).encode())
    fuzz_cfg(_text(CLASSIFIER).encode())
    fuzz_cfg(_text(V2).encode())
    fuzz_cfg(_text(SE).encode())
    assert set(fuzz_targets()) == {"darknet_cfg", "darknet_weights"}


@SETTINGS
@given(st.binary(max_size=600))
def test_cfg_random_bytes(data):
    _loads_or_user_error(fuzz_cfg, data)


@SETTINGS
@given(st.lists(st.sampled_from(list("[]=#;,.-+ \n\n\n\t0123456789eE") + [
    "net", "convolutional", "maxpool", "route", "shortcut", "upsample", "yolo", "avgpool", "dropout", "filters",
    "size", "stride", "pad", "padding", "groups", "group_id", "layers", "from", "mask", "anchors", "classes",
    "inf", "nan", "probability"]), max_size=120).map("".join))
def test_cfg_random_cfg_like_text(text):
    _loads_or_user_error(fuzz_cfg, ("[net]\n" + text).encode())


@SETTINGS
@given(near_valid_cfgs())
def test_cfg_near_valid_with_hostile_values(text):
    """Each key of each layer type set to a hostile value: builds and runs, or one UserError naming the file."""
    try:
        fuzz_cfg(text.encode())
    except UserError as e:
        msg = str(e)
        assert "\n" not in msg and msg.startswith("<fuzz.cfg>"), msg


# -- weights -----------------------------------------------------------------------------------------------------
def _layout() -> tuple[int, list[int]]:
    """Values the tiny model's file holds, and the positions of its batch-norm running variances."""
    from cnnlab.darknet.weights import _named_file_tensors

    pos, variances = 0, []
    for _, what, t in _named_file_tensors(tiny_weights_model()):
        if what == "batch-norm running variance":
            variances += range(pos, pos + t.numel())
        pos += t.numel()
    return pos, variances


NEED, VARIANCES = _layout()
FLOATS = st.floats(width=32, allow_nan=True, allow_infinity=True)


@st.composite
def weights_files(draw) -> tuple[bytes, bool]:
    """(file bytes, whether it is valid): a random header, a body of about the right length, NaN/inf/negative."""
    major, minor, revision = (draw(st.integers(-(2**31), 2**31 - 1)) for _ in range(3))
    if draw(st.booleans()):
        major, minor = draw(st.sampled_from([(0, 1), (0, 2), (1, 0), (0, 0)]))
    int64 = major * 10 + minor >= 2 and major < 1000 and minor < 1000
    head = np.array([major, minor, revision], "<i4").tobytes()
    head += np.array([draw(st.integers(0, 2**31 - 1))], "<i8" if int64 else "<i4").tobytes()
    n = NEED + draw(st.sampled_from([0, 0, 0, -1, 1, -NEED, 5]))
    values = np.array(draw(st.lists(FLOATS, min_size=n, max_size=n)), "<f4")
    body = values.tobytes() + draw(st.sampled_from([b"", b"", b"\0", b"\0\0\0"]))
    data = head + body
    if draw(st.integers(0, 9)) == 0:
        data = data[:draw(st.integers(0, len(data)))]
    variances = values[VARIANCES] if len(values) == NEED else np.zeros(0)
    valid = (len(data) == len(head) + 4 * NEED and bool(np.isfinite(values).all()) and not (variances < 0).any())
    return data, valid


@SETTINGS
@given(st.binary(max_size=400))
def test_weights_random_bytes(data):
    _loads_or_user_error(fuzz_weights, data)


@SETTINGS
@given(weights_files())
def test_weights_header_length_and_nan(case):
    """A valid file loads exactly; anything else is a one-line DataError and nothing is loaded."""
    import torch

    data, valid = case
    model = tiny_weights_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    try:
        fuzz_weights(data)
    except DataError as e:
        assert not valid, f"a valid file was refused: {e}"
        assert "\n" not in str(e)
        for k, v in model.state_dict().items():
            assert torch.equal(v, before[k]), k
        return
    assert valid, "an invalid weights file was loaded"
    assert all(torch.isfinite(t).all() for t in model.state_dict().values())


@pytest.mark.parametrize("name", ["darknet_cfg", "darknet_weights"])
def test_fuzz_targets_are_cheap(name):
    import time

    target = fuzz_targets()[name]
    rng = np.random.default_rng(0)
    inputs = [rng.bytes(int(rng.integers(0, 300))) for _ in range(200)]
    start = time.perf_counter()
    for data in inputs:
        _loads_or_user_error(target, data)
    assert (time.perf_counter() - start) / len(inputs) < 0.01  # milliseconds at most (generous on a busy machine)


def test_fuzz_seeds_of_every_module_are_valid_inputs():
    """The fuzz benchmark mutates these seeds: each must load (not be refused), so mutations start from
    inputs that reach the parsers' deep checks."""
    import importlib
    import pkgutil

    import cnnlab.fuzz as pkg

    for info in pkgutil.iter_modules(pkg.__path__):
        mod = importlib.import_module(f"cnnlab.fuzz.{info.name}")
        targets = mod.fuzz_targets()
        for name, seeds in getattr(mod, "fuzz_seeds", dict)().items():
            assert name in targets, f"{info.name}: seeds for unknown target {name}"
            assert seeds, f"{info.name}.{name}: no seeds"
            for seed in seeds:
                targets[name](seed)   # raises UserError if refused
