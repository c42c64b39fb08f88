"""From-scratch architectures: exact parameter counts and layouts (forward, backward and ONNX checks of
every registered model, and the digits/MNIST/CIFAR input sizes, are in test_models_every.py)."""

from __future__ import annotations

import torch

from cnnlab.models import count_params, create_model


def test_lenet5_exact_count_on_mnist():
    # conv 6*(5*5*1)+6 = 156, conv 16*(5*5*6)+16 = 2416, 400*120+120, 120*84+84, 84*10+10
    model = create_model("lenet5", in_chans=1, img_size=28)
    assert count_params(model) == (156 + 2416 + 48120 + 10164 + 850, 0) == (61706, 0)


def test_textbook_cnn_counts():
    # MNIST C-C-P-FC (Keras mnist_cnn example): 1,199,882
    assert count_params(create_model("mnist_cnn", in_chans=1, img_size=28)) == (1_199_882, 0)
    # CIFAR-10 CNN with unpadded convs: the textbook's 0.89 M
    assert count_params(create_model("cifar10_cnn")) == (890_410, 0)
    # the Keras cifar10_cnn example's padding ("same" then "valid"): 1,250,858
    assert count_params(create_model("cifar10_cnn", padding="keras")) == (1_250_858, 0)


def test_course_cifar100_matches_reported_size():
    model = create_model("course_cifar100", num_classes=100)
    trainable, non_trainable = count_params(model)
    assert non_trainable == 2 * (64 + 128 + 256 + 256 + 4 * 512)  # BN moving mean/var
    assert round((trainable + non_trainable) / 1e6, 2) == 9.28
    drops = [m for m in model.modules() if isinstance(m, torch.nn.Dropout) and m.p == 0.2]
    assert len(drops) == 8  # after each conv
    pools = {type(m).__name__ for m in model.modules()}
    assert {"MaxPool2d", "AvgPool2d"} <= pools


def test_wrn28_10_size_and_dropout():
    model = create_model("wrn28_10", drop_rate=0.3)
    assert sum(count_params(model)) == 36_497_146
    assert any(isinstance(m, torch.nn.Dropout) and m.p == 0.3 for m in model.modules())


def test_resnet18_cifar_has_3x3_stem_and_no_maxpool():
    model = create_model("resnet18_cifar")
    assert model.conv1.kernel_size == (3, 3) and model.conv1.stride == (1, 1)
    assert not any(isinstance(m, torch.nn.MaxPool2d) for m in model.modules())
    assert count_params(model)[0] == 11_173_962


def test_plain_cnn_count_and_depth():
    # 160 + 2 * 2320 + 4640 + 2 * 9248 + 18496 + 36928 + linear 650
    m = create_model("plain_cnn", num_classes=10, in_chans=1, img_size=28)
    convs = [x for x in m.modules() if isinstance(x, torch.nn.Conv2d)]
    assert len(convs) == 8 and count_params(m) == (84_010, 0)
    assert [c.out_channels for c in convs] == [16, 16, 16, 32, 32, 32, 64, 64]
    deep = create_model("plain_cnn", num_classes=10, in_chans=1, img_size=28, depth=12, width=8)
    assert len([x for x in deep.modules() if isinstance(x, torch.nn.Conv2d)]) == 12
