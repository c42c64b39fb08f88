"""Model registry: names, the one door, budgets, parameter counting, specs, timm bridge."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnlab.errors import ModelError, UserError
from cnnlab.models import (
    count_params,
    create_model,
    format_count,
    list_models,
    model_entries,
    model_from_spec,
    parse_count,
    register_model,
)

EXPECTED = {"lenet5", "mnist_cnn", "cifar10_cnn", "vgg11_bn_cifar", "vgg16_bn_cifar", "course_cifar100",
            "resnet18_cifar", "resnet34_cifar", "preact_resnet18", "wrn16_8", "wrn28_10", "wrn_d_k"}


def test_registry_lists_the_scratch_models():
    names = list_models()
    assert set(names) >= EXPECTED
    assert names == sorted(names)
    assert list_models("resnet*") == ["resnet18_cifar", "resnet34_cifar"]
    assert set(list_models("wrn*")) == {"wrn16_8", "wrn28_10", "wrn_d_k"}
    assert list_models("nothing*") == []


def test_entries_carry_default_input_and_description():
    entries = model_entries()
    assert entries["lenet5"].input_size == (1, 28, 28)
    assert entries["cifar10_cnn"].input_size == (3, 32, 32)
    assert entries["resnet18_cifar"].family == "resnet"
    assert all(e.description for n, e in entries.items() if n in EXPECTED)


def test_unknown_name_suggests_close_matches():
    with pytest.raises(ModelError) as e:
        create_model("resnet18_cifr")
    msg = str(e.value)
    assert "unknown model 'resnet18_cifr'" in msg and "resnet18_cifar" in msg
    assert "\n" not in msg
    with pytest.raises(ModelError, match="timm/resnet18"):
        create_model("resnet18")  # a timm name without the prefix


def test_budget_refuses_with_both_numbers():
    with pytest.raises(ModelError) as e:
        create_model("resnet18_cifar", max_params="10M")
    msg = str(e.value)
    assert "11,183,562" in msg and "10,000,000" in msg
    model = create_model("resnet18_cifar", max_params=20_000_000)
    assert sum(count_params(model)) == 11_183_562


def test_bad_options_are_user_errors():
    with pytest.raises(ModelError, match="does not accept the option 'foo'"):
        create_model("lenet5", foo=1)
    with pytest.raises(ModelError, match="num_classes"):
        create_model("lenet5", num_classes=0)
    with pytest.raises(ModelError, match="6n \\+ 4"):
        create_model("wrn_d_k", depth=15)
    with pytest.raises(ModelError, match="too small"):
        create_model("mnist_cnn", img_size=4, in_chans=1)


@pytest.mark.parametrize("text,value", [("30M", 30_000_000), ("1.5m", 1_500_000), ("500K", 500_000),
                                        ("2G", 2_000_000_000), ("30_000_000", 30_000_000),
                                        ("1,000", 1000), (42, 42)])
def test_parse_count(text, value):
    assert parse_count(text) == value


def test_parse_count_rejects_garbage():
    for bad in ("thirty", "30X", "", "-5", True):
        with pytest.raises(UserError):
            parse_count(bad)
    assert format_count(890_410) == "890.4K" and format_count(11_173_962) == "11.17M"


def test_count_params_matches_keras_convention():
    # BN: gamma/beta trainable; running mean/var non-trainable (Keras' moving stats); counter not counted
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.Flatten(), nn.LazyLinear(2))
    model(torch.zeros(1, 3, 5, 5))
    assert count_params(model) == (3 * 3 * 3 * 8 + 8 + 16 + 8 * 9 * 2 + 2, 16)
    model[0].weight.requires_grad_(False)
    assert count_params(model) == (8 + 16 + 146, 216 + 16)


def test_spec_round_trip():
    model = create_model("wrn_d_k", num_classes=7, in_chans=1, img_size=28, depth=10, widen_factor=2,
                         drop_rate=0.3)
    spec = model.cnnlab_spec
    assert spec == {"name": "wrn_d_k", "num_classes": 7, "in_chans": 1, "img_size": 28,
                    "kwargs": {"depth": 10, "widen_factor": 2, "drop_rate": 0.3}}
    rebuilt = model_from_spec(spec)
    a, b = model.state_dict(), rebuilt.state_dict()
    assert list(a) == list(b)
    assert all(a[k].shape == b[k].shape for k in a)
    assert rebuilt.cnnlab_spec == spec
    with pytest.raises(ModelError):
        model_from_spec({"num_classes": 3})


def test_default_img_size_recorded():
    assert create_model("lenet5", in_chans=1).cnnlab_spec["img_size"] == 28
    assert create_model("cifar10_cnn").cnnlab_spec["img_size"] == 32


def test_new_module_registers_itself():
    @register_model
    def tiny_test_net(num_classes=10, in_chans=3, img_size=32, **kw):
        """A throwaway net for this test."""
        return nn.Sequential(nn.Flatten(), nn.Linear(in_chans * img_size * img_size, num_classes))

    try:
        model = create_model("tiny_test_net", num_classes=4, in_chans=1, img_size=8)
        assert model(torch.zeros(2, 1, 8, 8)).shape == (2, 4)
        assert "tiny_test_net" in list_models("tiny_*")
    finally:
        from cnnlab.models import registry

        registry._REGISTRY.pop("tiny_test_net", None)


def test_timm_bridge():
    model = create_model("timm/mobilenetv3_small_050", num_classes=5, in_chans=1, img_size=32)
    assert model(torch.zeros(2, 1, 32, 32)).shape == (2, 5)
    assert model.cnnlab_spec["name"] == "timm/mobilenetv3_small_050"
    rebuilt = model_from_spec(model.cnnlab_spec)
    assert list(rebuilt.state_dict()) == list(model.state_dict())
    assert "timm/mobilenetv3_small_050" in list_models("timm/mobilenetv3_small*")
    with pytest.raises(ModelError, match="unknown timm model"):
        create_model("timm/not_a_real_net")
    with pytest.raises(ModelError, match="pretrained"):
        create_model("timm/mobilenetv3_small_050", pretrained=True)
