"""Checkpoints: plain data (weights_only), RNG round trip, one-line errors for bad files."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from cnnlab.engine.checkpoint import (
    load_checkpoint,
    load_weights,
    model_from_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from cnnlab.errors import ModelError, UserError
from cnnlab.models import create_model


def ckpt_of(net, **extra):
    return {"model_spec": net.cnnlab_spec, "model": net.state_dict(), "ema": None, "epoch": 1,
            "rng": rng_state(), "classes": [str(i) for i in range(10)], **extra}


def test_rng_state_round_trip_through_weights_only(tmp_path):
    save_checkpoint(tmp_path / "c.pt", {"model_spec": {"name": "x"}, "model": {}, "rng": rng_state()})
    expected = (random.random(), np.random.rand(), torch.rand(3))
    set_rng_state(load_checkpoint(tmp_path / "c.pt")["rng"])  # restored via torch.load(weights_only=True)
    got = (random.random(), np.random.rand(), torch.rand(3))
    assert got[0] == expected[0] and got[1] == expected[1] and torch.equal(got[2], expected[2])


def test_model_round_trip(tmp_path):
    m = create_model("lenet5", num_classes=10, in_chans=1, img_size=8)
    save_checkpoint(tmp_path / "best.pt", ckpt_of(m))
    back = model_from_checkpoint(load_checkpoint(tmp_path / "best.pt"))
    x = torch.randn(2, 1, 8, 8)
    m.eval()
    assert torch.equal(back(x), m(x)) and not back.training


def test_other_architecture_is_one_line_model_error(tmp_path):
    lenet = create_model("lenet5", num_classes=10, in_chans=1, img_size=8)
    other = create_model("mnist_cnn", num_classes=10, in_chans=1, img_size=28)
    with pytest.raises(ModelError, match=r"checkpoint is for lenet5 \(10 classes, 1 channels, 8 px\)"):
        load_weights(other, lenet.state_dict(), lenet.cnnlab_spec)
    # spec says lenet5 but the weights are from something else (e.g. a hand-edited file)
    save_checkpoint(tmp_path / "x.pt", ckpt_of(lenet, model=other.state_dict()))
    with pytest.raises(ModelError) as e:
        model_from_checkpoint(load_checkpoint(tmp_path / "x.pt"), "x.pt")
    assert "\n" not in str(e.value) and "x.pt is for lenet5" in str(e.value)


def test_corrupt_and_foreign_files(tmp_path):
    m = create_model("lenet5", num_classes=10, in_chans=1, img_size=8)
    good = save_checkpoint(tmp_path / "good.pt", ckpt_of(m))
    cut = tmp_path / "cut.pt"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(UserError, match="not a readable checkpoint"):
        load_checkpoint(cut)
    torch.save({"weights": torch.ones(1)}, tmp_path / "foreign.pt")
    with pytest.raises(UserError, match="not a cnnlab classification checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt")
    with pytest.raises(UserError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")
