"""Summary: parameters, FLOPs, activation memory, against the textbook exercise and LeNet-5."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from cnnlab.errors import UserError
from cnnlab.inspect import parse_input_size, summary


def _textbook_net():
    # three 3x3 stride-2 'same' convolutions with 100, 200, 400 maps on a 200x300 RGB image
    return nn.Sequential(nn.Conv2d(3, 100, 3, 2, 1), nn.Conv2d(100, 200, 3, 2, 1), nn.Conv2d(200, 400, 3, 2, 1))


def test_textbook_memory_exercise():
    res = summary(_textbook_net(), input_size=(3, 200, 300), batch=50)
    assert res.total_params == 903_400 == (3 * 3 * 3 + 1) * 100 + (3 * 3 * 100 + 1) * 200 + (3 * 3 * 200 + 1) * 400
    shapes = [[100, 100, 150], [200, 50, 75], [400, 25, 38]]  # ceil(n / 2) per conv
    assert [r.output_shape for r in res.rows] == shapes
    per_sample = sum(c * h * w for c, h, w in shapes)
    assert res.activations == per_sample == 2_630_000
    mem = res.memory()
    assert mem["fp32"]["activations_sample"] == per_sample * 4
    assert mem["fp32"]["activations_batch"] == per_sample * 4 * 50 == 526_000_000
    assert mem["fp16"]["activations_batch"] == per_sample * 2 * 50
    assert mem["fp32"]["params"] == 903_400 * 4
    inputs = 3 * 200 * 300 * 50 * 4
    assert mem["fp32"]["forward_total_batch"] == 903_400 * 4 + inputs + 526_000_000
    # FLOPs from torch's counter: 2 * MACs, MACs = output elements * F*F*C
    macs = 100 * 150 * 100 * 27 + 50 * 75 * 200 * 900 + 25 * 38 * 400 * 1800
    assert res.flops == 2 * macs and res.macs == macs
    assert [r.macs for r in res.rows] == [100 * 150 * 100 * 27, 50 * 75 * 200 * 900, 25 * 38 * 400 * 1800]


def test_lenet5_by_name():
    res = summary("lenet5")
    assert res.input_size == (1, 28, 28)
    assert (res.trainable, res.non_trainable) == (61_706, 0)
    assert sum(r.params for r in res.rows) == 61_706
    assert res.output_shape == [10]
    conv = [r for r in res.rows if r.type == "Conv2d"]
    assert conv[0].output_shape == [6, 28, 28] and conv[1].output_shape == [16, 10, 10]


def test_views_and_inplace_layers_add_no_memory():
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(inplace=True), nn.Flatten(), nn.Dropout(0.5),
                          nn.Linear(4 * 6 * 6, 3))
    res = summary(model, input_size=(1, 8, 8))
    by_type = {r.type: r.activations for r in res.rows}
    assert by_type == {"Conv2d": 4 * 6 * 6, "ReLU": 0, "Flatten": 0, "Dropout": 0, "Linear": 3}
    assert res.activations == 4 * 36 + 3


def test_residual_add_is_counted_and_bn_stats_are_non_trainable():
    res = summary("resnet18_cifar", input_size="3x32x32")
    assert (res.trainable, res.non_trainable) == (11_173_962, 9_600)
    own = [r for r in res.rows if r.name.endswith("(own)")]
    assert own and all(r.type == "BasicBlock" for r in own)  # out + shortcut(x) is a new tensor
    assert own[0].activations == 64 * 32 * 32
    collapsed = summary("resnet18_cifar", max_depth=1)
    assert collapsed.activations == res.activations and collapsed.flops == res.flops
    assert [r.name for r in collapsed.rows][:4] == ["conv1", "bn1", "relu", "layer1"]
    assert sum(r.params for r in collapsed.rows) == res.total_params


def test_renderings(tmp_path):
    res = summary("cifar10_cnn", batch=4)
    md = res.to_markdown()
    assert "| `features.0` | Conv2d | [4, 32, 30, 30] |" in md and "890,410" in md
    data = json.loads(res.save_json(tmp_path / "s.json").read_text())
    assert data["params"]["total"] == 890_410 and data["batch"] == 4
    assert data["memory_bytes"]["fp16"]["activations_batch"] == res.activations * 2 * 4
    from rich.console import Console

    console = Console(record=True, width=140)
    console.print(res.to_rich_table())
    assert "features.0" in console.export_text()


def test_parse_input_size_and_errors():
    assert parse_input_size("3x32x32") == (3, 32, 32)
    assert parse_input_size("1x28x28") == (1, 28, 28)
    assert parse_input_size("64") == (3, 64, 64)
    with pytest.raises(UserError):
        parse_input_size("axb")
    with pytest.raises(UserError, match="does not accept input"):
        summary(nn.Linear(4, 2), input_size=(3, 8, 8))
    with pytest.raises(UserError, match="batch"):
        summary("lenet5", batch=0)


def test_summary_restores_training_mode():
    model = nn.Sequential(nn.Conv2d(3, 2, 3), nn.BatchNorm2d(2)).train()
    before = model[1].running_mean.clone()
    summary(model, input_size=(3, 8, 8))
    assert model.training and torch.equal(model[1].running_mean, before)
