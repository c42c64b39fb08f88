"""Architecture knobs (activation / norm / init), ZCA whitening inside the model: parameter counts,
spec round trips, initialisation statistics, one-line errors, ONNX export with the whitening baked in."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from cnnlab.config import TrainConfig
from cnnlab.config.knobs import ACTIVATIONS, NORMS
from cnnlab.errors import ModelError, UserError
from cnnlab.models import count_params, create_model, knob_models, model_from_spec
from cnnlab.models.layers import LayerNorm2d, Maxout, _group_count
from cnnlab.models.zca import Whitened, fit_zca

SMALL = {"num_classes": 10, "in_chans": 1, "img_size": 8}


def _params(**kw) -> int:
    return sum(count_params(create_model("plain_cnn", depth=3, width=4, **SMALL, **kw)))


def test_default_models_are_unchanged():
    # the knobs off: the published parameter counts of the builders stay as they were
    assert sum(count_params(create_model("cifar10_cnn"))) == 890_410
    assert sum(count_params(create_model("lenet5", in_chans=1, img_size=28))) == 61_706
    assert sum(count_params(create_model("resnet18_cifar"))) == 11_183_562


def test_parameter_counts_follow_the_knobs():
    base = _params()
    # PReLU: one slope per channel of every activation (widths 4, 8, 16: one conv each)
    assert _params(activation="prelu") == base + 4 + 8 + 16
    # maxout: every conv produces 2x the channels (the next conv still sees the original width)
    convs = [(1, 4), (4, 8), (8, 16)]
    assert _params(activation="maxout") == base + sum(cout * (cin * 9 + 1) for cin, cout in convs)
    # batch norm: a scale and shift per channel (+ running mean and variance, counted as non-trainable
    # as Keras does), and the convs lose their (now redundant) bias
    trainable = count_params(create_model("plain_cnn", depth=3, width=4, norm="batch", **SMALL))
    assert trainable == (base + sum(2 * cout - cout for _, cout in convs), sum(2 * cout for _, cout in convs))
    for act in ("relu", "sigmoid", "tanh", "elu", "selu", "gelu", "silu", "leaky_relu"):
        assert _params(activation=act) == base


@pytest.mark.parametrize("name", ["lenet5", "mnist_cnn", "cifar10_cnn", "vgg11_bn_cifar", "resnet18_cifar",
                                  "preact_resnet18", "wrn_d_k", "plain_cnn"])
def test_every_knob_model_builds_with_each_setting(name):
    assert name in knob_models()
    x = torch.randn(2, 3, 16, 16)
    for kw in ({"activation": "maxout", "norm": "group", "norm_groups": 4}, {"activation": "prelu", "norm": "layer"},
               {"activation": "tanh", "norm": "instance" if name != "vgg11_bn_cifar" else "batch"},
               {"activation": "selu", "norm": "none"}):  # (instance norm needs maps over 1 px; VGG ends at 1)
        model = create_model(name, num_classes=5, in_chans=3, img_size=16, padding="same", **kw) \
            if name == "cifar10_cnn" else create_model(name, num_classes=5, in_chans=3, img_size=16, **kw)
        assert model(x).shape == (2, 5)
        again = model_from_spec(model.cnnlab_spec)   # what checkpoints, evaluate, export rebuild
        again.load_state_dict(model.state_dict())
        assert model.cnnlab_spec["kwargs"]["activation"] == kw["activation"]


def test_layers_are_what_was_asked():
    m = create_model("plain_cnn", depth=3, width=4, activation="elu", norm="group", norm_groups=3, **SMALL)
    kinds = [type(x) for x in m.features]
    assert nn.ELU in kinds and nn.ReLU not in kinds
    groups = [x.num_groups for x in m.features if isinstance(x, nn.GroupNorm)]
    assert groups == [_group_count(4, 3), _group_count(8, 3), _group_count(16, 3)] == [2, 2, 2]
    m = create_model("plain_cnn", depth=3, width=4, norm="layer", activation="maxout", **SMALL)
    assert any(isinstance(x, LayerNorm2d) for x in m.features) and any(isinstance(x, Maxout) for x in m.features)


def test_init_schemes_set_the_weight_scale():
    torch.manual_seed(0)
    m = create_model("plain_cnn", depth=6, width=32, init="he_normal", **SMALL)
    conv = m.features[2]
    fan_in = conv.weight[0].numel()
    assert conv.weight.std().item() == pytest.approx(math.sqrt(2 / fan_in), rel=0.1)
    assert float(conv.bias.detach().abs().max()) == 0.0
    small = create_model("plain_cnn", depth=6, width=32, init="he_normal", init_gain=0.1, **SMALL)
    assert small.features[2].weight.std().item() == pytest.approx(0.1 * math.sqrt(2 / fan_in), rel=0.1)
    lecun = create_model("plain_cnn", depth=6, width=32, init="lecun_normal", **SMALL)
    assert lecun.features[2].weight.std().item() == pytest.approx(math.sqrt(1 / fan_in), rel=0.1)
    ortho = create_model("plain_cnn", depth=3, width=4, init="orthogonal", **SMALL)
    w = ortho.fc.weight  # (10, 16): orthonormal rows
    assert torch.allclose(w @ w.t(), torch.eye(10), atol=1e-5)


def test_bad_knobs_are_one_line_errors():
    with pytest.raises(ModelError, match="did you mean relu"):
        create_model("plain_cnn", activation="rellu", **SMALL)
    with pytest.raises(ModelError, match="norm must be one of"):
        create_model("plain_cnn", norm="batchnorm2", **SMALL)
    with pytest.raises(ModelError, match="fixed layers"):
        create_model("mobilenet_v1", activation="elu", img_size=32)
    with pytest.raises(UserError, match="init must be one of"):
        TrainConfig(init="kaiming").validate()
    with pytest.raises(UserError, match="given twice"):
        TrainConfig(activation="elu", model_kwargs={"activation": "tanh"}).model_options()
    assert set(ACTIVATIONS) >= {"maxout", "prelu", "sigmoid"} and "group" in NORMS


def test_train_config_records_only_changed_knobs():
    assert TrainConfig().model_options() == {}
    opts = TrainConfig(activation="prelu", norm="batch", init="he_uniform", whiten="zca").model_options()
    assert opts == {"activation": "prelu", "norm": "batch", "init": "he_uniform", "whiten": "zca"}


def test_zca_whitens_correlated_data():
    g = torch.Generator().manual_seed(0)
    mix = torch.randn(12, 12, generator=g)
    x = (torch.randn(4000, 12, generator=g) @ mix).view(4000, 3, 2, 2) + 5.0
    mean, w = fit_zca([x[:2000], x[2000:]], epsilon=1e-6)
    y = (x.view(4000, -1) - mean) @ w.t()
    cov = torch.cov(y.t().double())
    assert torch.allclose(cov, torch.eye(12, dtype=torch.float64), atol=0.05)
    assert torch.allclose(w, w.t(), atol=1e-4)   # ZCA: symmetric, the whitening closest to the data
    with pytest.raises(ModelError):
        fit_zca([x[:1]], 0.1)


def test_zca_model_round_trip_and_onnx(tmp_path):
    pytest.importorskip("onnxruntime")
    from cnnlab.deploy.export import export
    from cnnlab.deploy.runtime import load_onnx_classifier

    torch.manual_seed(0)
    m = create_model("plain_cnn", depth=3, width=4, whiten="zca", **SMALL)
    assert isinstance(m, Whitened) and m.cnnlab_spec["kwargs"]["whiten"] == "zca"
    x = torch.randn(300, 1, 8, 8)
    mean, w = fit_zca([x], 0.1)
    m.zca.set(mean, w)
    # the whitening is fixed: counted as non-trainable (mean 64 + matrix 64x64), nothing trains
    assert count_params(m) == (_params(), 64 + 64 * 64)
    again = model_from_spec(m.cnnlab_spec)
    again.load_state_dict(m.state_dict())
    m.eval()
    again.eval()
    assert torch.allclose(again(x[:4]), m(x[:4]))
    result = export(m, "onnx", tmp_path / "zca.onnx", classes=[str(i) for i in range(10)], mean=[0.5], std=[0.5],
                    img_size=8, in_chans=1)
    clf = load_onnx_classifier(result.path)
    got = clf(x[:4].numpy())
    np.testing.assert_allclose(got, m(x[:4]).detach().numpy(), rtol=1e-4, atol=1e-4)
    with pytest.raises(ModelError, match="limited"):
        create_model("plain_cnn", whiten="zca", num_classes=10, in_chans=3, img_size=64)
