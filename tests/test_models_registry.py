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
    get_entry,
    input_norm,
    is_model_name,
    list_models,
    model_entries,
    model_from_spec,
    parse_count,
    register_model,
    resolve_model,
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


# ---------------------------------------------------------------------------- aliases: the one door


def test_familiar_name_builds_transfer_offline(monkeypatch):
    import timm.models._builder as builder

    def no_download(*a, **k):
        raise AssertionError("create_model must not fetch pretrained weights")

    monkeypatch.setattr(builder, "load_pretrained", no_download)
    monkeypatch.setattr(builder, "load_state_dict_from_hf", no_download, raising=False)
    from cnnlab.models.transfer import TransferNet

    model = create_model("ResNet50V2", num_classes=10)
    assert isinstance(model, TransferNet) and model.backbone_name == "timm/resnetv2_50"
    assert model.cnnlab_spec == {"name": "transfer", "num_classes": 10, "in_chans": 3, "img_size": 224,
                                 "kwargs": {"backbone": "ResNet50V2"}}
    with torch.no_grad():
        assert model.eval()(torch.rand(1, 3, 32, 32)).shape == (1, 10)
    rebuilt = model_from_spec(model.cnnlab_spec)  # an alias-made model reloads from its spec
    assert isinstance(rebuilt, TransferNet) and rebuilt.cnnlab_spec == model.cnnlab_spec
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == \
        {k: v.shape for k, v in model.state_dict().items()}


def test_resolve_model_is_what_train_builds():
    assert resolve_model("lenet5", model_kwargs={"act": "tanh"}) == ("lenet5", {"act": "tanh"})
    assert resolve_model("ResNet50V2") == ("transfer", {"backbone": "ResNet50V2"})
    assert resolve_model("EfficientNet-B0", model_kwargs={"head_dropout": 0.2}) == \
        ("transfer", {"backbone": "EfficientNet-B0", "head_dropout": 0.2})
    assert resolve_model("mobilenet") == ("transfer", {"backbone": "mobilenet"})
    assert resolve_model("mobilenet_v1") == ("mobilenet_v1", {})  # a registered name wins over aliases
    assert resolve_model("timm/resnet18") == ("timm/resnet18", {})
    assert resolve_model("timm/resnet18", pretrained="hub") == ("transfer", {"backbone": "timm/resnet18"})
    assert resolve_model("lenet5", pretrained="runs/x") == ("lenet5", {})
    assert resolve_model("yolov3_tiny") == resolve_model("YOLOv3-Tiny") == ("yolov3-tiny", {})
    assert get_entry("ResNet50V2").name == "transfer" and is_model_name("densenet121")
    with pytest.raises(ModelError, match="non-empty"):
        resolve_model("")


def test_input_norm_is_an_entry_field():
    assert input_norm("transfer") == input_norm("VGG16") == {"mean": 0.0, "std": 1.0}
    assert input_norm("timm/resnet18", pretrained="hub") == {"mean": 0.0, "std": 1.0}
    assert input_norm("timm/resnet18") is None and input_norm("lenet5") is None
    assert get_entry("transfer").input_norm == {"mean": 0.0, "std": 1.0}
    assert not hasattr(get_entry("transfer").fn, "cnnlab_input")


def test_unknown_alias_suggests_close_matches():
    with pytest.raises(ModelError, match="unknown model 'ResNet50V3'; did you mean .*resnet50v2"):
        create_model("ResNet50V3")
    with pytest.raises(ModelError, match="did you mean .*yolov3"):
        resolve_model("yolov4")
    with pytest.raises(ModelError, match="unknown model"):
        input_norm("no_such_net")


def test_alias_clash_is_refused():
    def clash(num_classes=10, in_chans=3, img_size=32):
        """Throwaway."""

    with pytest.raises(ValueError, match="already an alias of 'transfer'"):
        register_model(aliases=("Resnet-50",))(clash)
    assert "clash" not in model_entries()


# ---------------------------------------------------------------------------- tasks: detectors too


def test_detectors_are_registered_with_their_task():
    from cnnlab.darknet.model import DarknetModel

    assert list_models(task="detect") == ["cnnlab-nano", "yolov3", "yolov3-tiny"]
    classifiers = list_models(task="classify")
    assert "lenet5" in classifiers and "yolov3" not in classifiers
    assert set(classifiers) | set(list_models(task="detect")) == set(list_models())
    assert list_models("yolo*", task="classify") == []
    with pytest.raises(ModelError, match="unknown task"):
        list_models(task="segment")
    entry = get_entry("yolov3-tiny")
    assert (entry.task, entry.input_size, entry.family) == ("detect", (3, 416, 416), "yolo")
    model = create_model("yolov3-tiny", num_classes=3, img_size=320)
    assert isinstance(model, DarknetModel) and model.num_classes == 3 and model.width == 320
    assert model.cnnlab_spec["name"] == "yolov3-tiny"
    rebuilt = model_from_spec(model.cnnlab_spec)
    assert rebuilt.to_cfg() == model.to_cfg()
    anchored = create_model("yolov3-tiny", num_classes=3, img_size=64, width_mult=0.25,
                            anchors=[[5, 6], [7, 8], [9, 10], [11, 12], [13, 14], [15, 16]])
    assert "anchors=5,6,7,8,9,10,11,12,13,14,15,16" in anchored.to_cfg()
    assert model_from_spec(anchored.cnnlab_spec).to_cfg() == anchored.to_cfg()


def test_detect_training_takes_native_names_from_the_registry():
    from cnnlab.detect.train.model import is_native, native_name, native_sections

    assert native_name("yolov3_tiny") == native_name("YOLOv3-Tiny") == "yolov3-tiny"
    assert native_name("YOLOv3") == "yolov3"
    assert not is_native("lenet5") and not is_native("my.cfg") and not is_native("runs/detect/exp")
    secs = native_sections("yolov3_tiny", num_classes=2, imgsz=64, width_mult=0.25)
    assert sum(s.type == "yolo" for s in secs) == 2


def test_models_cli_shows_the_task(cli):
    code, out, _ = cli("models", "--task", "detect")
    assert code == 0 and "yolov3-tiny" in out and "detect" in out and "lenet5" not in out
    code, out, _ = cli("models", "lenet*")
    assert code == 0 and "classify" in out
    code, _, err = cli("models", "--task", "segment")
    assert code == 2 and "unknown task" in err
