"""Fuzz targets for the Darknet parsers: arbitrary bytes as a ``.cfg`` (parsed and built) or a ``.weights`` file.

    from cnnlab.fuzz.darknet import fuzz_targets
    for name, target in fuzz_targets().items():
        target(b"...")   # returns, or raises cnnlab.errors.UserError (or a subclass); anything else is a bug

Each call is cheap: the cfg is built at an input of at most 32x32 under small parameter/activation
budgets (and run once when it builds), the weights go into one tiny fixed model through one reused
temporary file.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

SMALL_INPUT = 32            # the cfg's [net] width/height are capped at this
FUZZ_MAX_PARAMS = 100_000
FUZZ_MAX_ACTIVATION = 1 << 16

# the model the weights target loads into: a conv with batch norm, a grouped conv with a bias
TINY_CFG = """[net]
width=8
height=8
channels=3

[convolutional]
batch_normalize=1
filters=4
size=1
activation=leaky

[convolutional]
filters=2
size=3
pad=1
groups=2
activation=linear
"""

_state: dict[str, object] = {}


def fuzz_cfg(data: bytes) -> None:
    """``data`` as Darknet cfg text: parse it, build the network at a small input size and run it once."""
    import torch

    from cnnlab.darknet.cfg import parse_cfg_text
    from cnnlab.darknet.model import MAX_DIM, DarknetModel

    sections = parse_cfg_text(data.decode("utf-8", errors="replace"), source="<fuzz.cfg>")
    net = sections[0]
    for key in ("width", "height"):  # invalid values are refused here as in a real build
        net.options[key] = str(min(net.get_int(key, 416, 1, MAX_DIM), SMALL_INPUT))
    model = DarknetModel(sections, source="<fuzz.cfg>", max_params=FUZZ_MAX_PARAMS,
                         max_activation=FUZZ_MAX_ACTIVATION).eval()
    with torch.no_grad():  # a network that builds must also run
        model(torch.zeros(1, model.channels, model.height, model.width))


def _weights_setup() -> tuple[object, Path, int]:
    if "model" not in _state:
        from cnnlab.darknet.cfg import parse_cfg_text
        from cnnlab.darknet.model import DarknetModel

        folder = Path(tempfile.mkdtemp(prefix="cnnlab-fuzz-darknet-"))
        path = folder / "fuzz.weights"
        # one file, kept open and rewritten in place: opening with truncation costs milliseconds on some
        # file systems, pwrite + ftruncate microseconds
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        atexit.register(shutil.rmtree, folder, True)
        atexit.register(os.close, fd)
        _state.update(model=DarknetModel(parse_cfg_text(TINY_CFG, "<tiny.cfg>"), source="<tiny.cfg>"),
                      path=path, fd=fd)
    return _state["model"], _state["path"], _state["fd"]  # type: ignore[return-value]


def tiny_weights_model():
    """The fixed model ``fuzz_weights`` loads into (built once per process)."""
    return _weights_setup()[0]


def fuzz_weights(data: bytes) -> None:
    """``data`` as a Darknet ``.weights`` file, loaded into a tiny fixed model."""
    from cnnlab.darknet.weights import load_darknet_weights

    model, path, fd = _weights_setup()
    os.pwrite(fd, data, 0)
    os.ftruncate(fd, len(data))
    load_darknet_weights(model, path)


# a small cfg with every common section (route, shortcut, upsample, maxpool, yolo): a seed that mutations
# turn into deep, almost-valid networks
SEED_CFG = """[net]
width=32
height=32
channels=3

[convolutional]
batch_normalize=1
filters=4
size=3
stride=1
pad=1
activation=leaky

[maxpool]
size=2
stride=2

[convolutional]
batch_normalize=1
filters=4
size=3
pad=1
activation=mish

[shortcut]
from=-2
activation=linear

[convolutional]
size=1
filters=16
activation=linear

[yolo]
mask=0,1
anchors=4,6, 8,10, 12,14
classes=3
num=3
scale_x_y=1.05

[route]
layers=-3

[upsample]
stride=2

[route]
layers=-1,-8

[convolutional]
size=1
filters=8
activation=linear

[yolo]
mask=2
anchors=4,6, 8,10, 12,14
classes=3
num=3
"""


def fuzz_seeds() -> dict[str, list[bytes]]:
    """Valid inputs the fuzzer mutates: cfgs that build (the tiny model's and one with every common
    section) and a complete ``.weights`` file of the tiny model."""
    from cnnlab.darknet.weights import darknet_weights_bytes

    return {"darknet_cfg": [TINY_CFG.encode(), SEED_CFG.encode()],
            "darknet_weights": [darknet_weights_bytes(tiny_weights_model())]}


def fuzz_targets() -> dict[str, Callable[[bytes], None]]:
    """{target name: callable(bytes)} for the Darknet cfg and weights parsers."""
    return {"darknet_cfg": fuzz_cfg, "darknet_weights": fuzz_weights}
