"""Transfer learning: alias table, backbone + head, local pretrained weights, freezing and BN."""

from __future__ import annotations

import pytest
import torch

from cnnlab.errors import ModelError, UserError
from cnnlab.models.transfer import (
    ALIASES,
    create_transfer_model,
    freeze,
    load_backbone_weights,
    param_groups,
    resolve_backbone,
)

SMALL = "timm/resnet10t"  # a small timm backbone with stages, fast on CPU


def test_alias_table_covers_the_course_backbones():
    import timm

    course = ["VGG16", "VGG19", "ResNet50", "ResNet50V2", "ResNet152V2", "InceptionV3", "InceptionResNetV2",
              "Xception", "DenseNet121", "DenseNet169", "DenseNet201", "MobileNetV2", "MobileNetV3-Large",
              "EfficientNet-B0", "EfficientNet-B1"]
    for name in course:
        target = resolve_backbone(name)
        assert target.startswith("timm/") and timm.is_model(target[5:]), name
    assert resolve_backbone("ResNet50V2") == "timm/resnetv2_50"
    assert resolve_backbone("mobilenet") == ALIASES["mobilenet"] == "mobilenet_v1"
    assert resolve_backbone("mobilenet_025") == "mobilenet_v1_025"  # Keras' alpha=0.25 weights
    assert resolve_backbone("resnet18") == "timm/resnet18"  # any timm name works as is
    with pytest.raises(ModelError, match="did you mean resnet50v2"):
        resolve_backbone("resnet50v3")


def test_small_images_are_resized_and_normalised_inside():
    model = create_transfer_model(SMALL, num_classes=7, input_size=64).eval()
    seen = {}
    model.backbone.register_forward_pre_hook(lambda m, a: seen.update(shape=a[0].shape))
    out = model(torch.rand(2, 3, 32, 32))
    assert out.shape == (2, 7) and seen["shape"] == (2, 3, 64, 64)
    assert model.cnnlab_spec["kwargs"]["backbone"] == SMALL


def test_freezing_controls_gradients_and_keeps_bn_statistics():
    model = create_transfer_model(SMALL, num_classes=3, input_size=32, freeze_spec="all")
    bn = next(m for m in model.backbone.modules() if isinstance(m, torch.nn.BatchNorm2d))
    before = bn.running_mean.clone()
    model.train()
    assert not bn.training, "frozen BatchNorm must stay in eval mode"
    loss = model(torch.rand(4, 3, 32, 32)).sum()
    loss.backward()
    assert all(p.grad is None for p in model.backbone.parameters())
    assert all(p.grad is not None for p in model.head.parameters())
    assert torch.equal(bn.running_mean, before)

    info = freeze(model, "last")  # all but the last stage
    last = model.stages[-1]
    for name, p in model.backbone.named_parameters():
        assert p.requires_grad == name.startswith(last + "."), name
    assert info["trainable"] + info["frozen"] == sum(p.numel() for p in model.parameters())
    half = freeze(model, 0.5)
    assert half["frozen_layers"] == round(half["layers"] * 0.5)
    assert freeze(model, 3)["frozen_layers"] == 3
    assert freeze(model, "none")["frozen"] == 0
    with pytest.raises(UserError, match="no stage .stage9."):
        freeze(model, "stage9")


def test_param_groups_split_backbone_and_head():
    model = create_transfer_model(SMALL, num_classes=3, input_size=32)
    groups = param_groups(model, lr=1e-3, backbone_lr=1e-4)
    assert [g["name"] for g in groups] == ["head", "backbone"]
    assert groups[1]["lr"] == 1e-4
    n = sum(p.numel() for g in groups for p in g["params"])
    assert n == sum(p.numel() for p in model.parameters())


def test_local_pretrained_file(tmp_path):
    from safetensors.torch import save_file

    source = create_transfer_model(SMALL, num_classes=5, input_size=32)
    with torch.no_grad():
        for p in source.backbone.parameters():
            p.normal_()
    state = {k: v.contiguous() for k, v in source.backbone.state_dict().items()}
    save_file(state, tmp_path / "w.safetensors")
    torch.save({"state_dict": state}, tmp_path / "w.pt")
    for f in ("w.safetensors", "w.pt"):
        target = create_transfer_model(SMALL, num_classes=2, input_size=32, pretrained=str(tmp_path / f))
        for k, v in target.backbone.state_dict().items():
            assert torch.equal(v, state[k]), k
    grey = create_transfer_model(SMALL, num_classes=2, in_chans=1, input_size=32,
                                 pretrained=str(tmp_path / "w.safetensors"))
    assert grey.eval()(torch.rand(1, 1, 32, 32)).shape == (1, 2)  # first conv adapted to 1 channel
    wrong = create_transfer_model("timm/resnet14t", num_classes=2, input_size=32)
    with pytest.raises(UserError, match="missing|do not fit"):
        load_backbone_weights(wrong, tmp_path / "w.safetensors")
    with pytest.raises(UserError, match="not found"):
        load_backbone_weights(wrong, tmp_path / "nope.pt")


def test_offline_hub_request_is_one_clear_line(monkeypatch):
    import timm

    import cnnlab.models.transfer as transfer

    def no_network(*a, **k):
        raise OSError("We couldn't connect to 'https://huggingface.co' to load this file")

    net = create_transfer_model(SMALL, num_classes=2, input_size=32)
    monkeypatch.setattr(transfer, "cached_hub_weights", lambda name: None)
    monkeypatch.setattr(transfer, "hub_offline_reason", lambda *a, **k: None)  # (tests/test_hub_weights.py: offline)
    monkeypatch.setattr(timm, "create_model", no_network)
    with pytest.raises(UserError, match="not in the local cache and could not be downloaded.*--pretrained PATH"):
        transfer.load_hub_weights(net)


@pytest.mark.realdata
def test_keras_imagenet_mobilenet_as_backbone(shared_data):
    h5 = shared_data("weights/mobilenet_2_5_224_tf_no_top.h5")
    model = create_transfer_model("mobilenet_025", num_classes=10, input_size=96, pretrained=str(h5),
                                  freeze_spec="all")
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == 256 * 10 + 10
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, 10)
