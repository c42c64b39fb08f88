"""Each augmentation does what it says (batched tensor ops), and AugmentConfig round-trips via YAML."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml

from cnnlab.data import AugmentConfig, BatchPipeline, resolve_augment
from cnnlab.data.augment import affine_matrices, cutmix, random_crop, warp
from cnnlab.errors import UserError

ID = ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))  # mean, std that leave [0, 1] values as they are


def _images(n=6, h=12, w=10, seed=0):
    return torch.from_numpy(np.random.default_rng(seed).integers(0, 256, (n, 3, h, w), dtype=np.uint8))


def _run(cfg, x, y=None, seed=0, num_classes=10):
    y = torch.arange(len(x)) % num_classes if y is None else y
    return BatchPipeline(*ID, cfg, num_classes)(x, y, np.random.default_rng(seed))


def test_flips_with_probability_one_are_exact():
    x = _images()
    out, y = _run(AugmentConfig(horizontal_flip=True, flip_prob=1.0), x)
    assert torch.equal(out, x.flip(3).float() / 255) and y.dtype == torch.int64
    out, _ = _run(AugmentConfig(vertical_flip=True, flip_prob=1.0), x)
    assert torch.equal(out, x.flip(2).float() / 255)
    out, _ = _run(AugmentConfig(horizontal_flip=True, flip_prob=0.5), _images(n=200))
    flipped = (out == _images(n=200).flip(3).float() / 255).flatten(1).all(1)
    assert 60 < int(flipped.sum()) < 140  # about half


def test_shift_moves_content_by_whole_pixels():
    x = torch.rand(2, 1, 8, 8)
    theta = affine_matrices(np.zeros(2), np.array([[3.0, 0.0], [0.0, -2.0]]), np.ones((2, 2)), 8, 8)
    out = warp(x, theta, "nearest")
    assert torch.allclose(out[0, :, :, 3:], x[0, :, :, :-3], atol=1e-5)        # 3 px to the right
    assert torch.allclose(out[0, :, :, :3], x[0, :, :, :1].expand(-1, -1, 3), atol=1e-5)  # nearest fill
    assert torch.allclose(out[1, :, :-2, :], x[1, :, 2:, :], atol=1e-5)        # 2 px up


def test_random_shift_range_is_a_fraction_of_the_size():
    x = torch.zeros(64, 1, 20, 20, dtype=torch.uint8)
    x[:, :, 9:11, 9:11] = 255  # a dot in the centre
    out, _ = _run(AugmentConfig(width_shift_range=0.2, fill_mode="constant"), x)
    cols = (out[:, 0].sum(1) * torch.arange(20)).sum(1) / out[:, 0].sum((1, 2))
    rows = (out[:, 0].sum(2) * torch.arange(20)).sum(1) / out[:, 0].sum((1, 2))
    assert (cols - 9.5).abs().max() <= 4.0 + 1e-4 and (cols - 9.5).abs().max() > 1.0  # up to 0.2 * 20 px
    assert torch.allclose(rows, torch.full_like(rows, 9.5), atol=1e-4)  # no vertical movement


def test_rotation_by_90_degrees_is_rot90():
    x = torch.rand(1, 3, 9, 9)
    out = warp(x, affine_matrices(np.array([90.0]), np.zeros((1, 2)), np.ones((1, 2)), 9, 9))
    assert any(torch.allclose(out, torch.rot90(x, k, (2, 3)), atol=1e-5) for k in (1, -1))


def test_zoom_range_follows_keras():
    assert AugmentConfig(zoom_range=0.3).zoom_bounds() == (0.7, 1.3)
    assert AugmentConfig(zoom_range=[0.5, 2.0]).zoom_bounds() == (0.5, 2.0)
    x = torch.zeros(1, 1, 32, 32)
    x[..., 8:24, 8:24] = 1.0
    zoom_out = warp(x, affine_matrices(np.zeros(1), np.zeros((1, 2)), np.full((1, 2), 2.0), 32, 32), "constant")
    zoom_in = warp(x, affine_matrices(np.zeros(1), np.zeros((1, 2)), np.full((1, 2), 0.5), 32, 32), "constant")
    assert float(zoom_out.sum()) == pytest.approx(64, rel=0.05)      # 16x16 square -> 8x8
    assert bool((zoom_in[..., 1:-1, 1:-1] == 1).all())              # 16x16 -> 32x32: fills the image


def test_brightness_multiplies():
    x = _images()
    out, _ = _run(AugmentConfig(brightness_range=[0.5, 0.5]), x)
    assert torch.allclose(out, x.float() / 255 * 0.5)
    out, _ = _run(AugmentConfig(brightness_range=[0.8, 1.0]), x)
    ratio = out.sum((1, 2, 3)) / (x.float() / 255).sum((1, 2, 3))
    assert bool(((ratio >= 0.8 - 1e-5) & (ratio <= 1.0 + 1e-5)).all())


def test_crop_padding_is_a_window_of_the_padded_image():
    x = torch.rand(5, 3, 8, 8)
    offsets = np.array([[0, 0], [4, 4], [8, 8], [2, 7], [6, 1]])
    out = random_crop(x, 4, offsets, "zeros")
    padded = torch.nn.functional.pad(x, (4, 4, 4, 4))
    for i, (dx, dy) in enumerate(offsets):
        assert torch.equal(out[i], padded[i, :, dy:dy + 8, dx:dx + 8])
    assert torch.equal(out[1], x[1])  # offset (p, p) is the identity
    refl = random_crop(x, 2, np.array([[0, 2]] * 5), "reflect")
    assert torch.equal(refl[:, :, :, 2], x[:, :, :, 0]) and torch.equal(refl[:, :, :, 0], x[:, :, :, 2])


def test_cutout_zeroes_a_square():
    x = torch.full((50, 3, 16, 16), 200, dtype=torch.uint8)
    mean = (0.2, 0.3, 0.4)
    out, _ = BatchPipeline(mean, (0.5, 0.5, 0.5), AugmentConfig(cutout=4))(x, torch.zeros(50, dtype=torch.int64),
                                                                          np.random.default_rng(0))
    zero = (out == 0).all(1)  # (N, H, W): all channels zero (the mean colour after normalisation)
    assert bool((out[~zero[:, None].expand_as(out)] != 0).all())
    for m in zero:
        ys, xs = torch.nonzero(m, as_tuple=True)
        assert len(ys) > 0
        h, w = int(ys.max() - ys.min() + 1), int(xs.max() - xs.min() + 1)
        assert h <= 4 and w <= 4 and h * w == len(ys)  # a (possibly clipped) solid square
    assert int(zero.sum((1, 2)).max()) == 16


def test_mixup_targets_sum_to_one_and_mix_the_right_pair():
    n, classes = 10, 10
    x = (torch.arange(n) * 20 + 10).to(torch.uint8).view(n, 1, 1, 1).expand(n, 3, 4, 4).contiguous()
    y = torch.arange(n)  # image i has label i and the constant value (20 i + 10) / 255
    out, soft = _run(AugmentConfig(mixup_alpha=1.0), x, y, seed=3, num_classes=classes)
    assert soft.shape == (n, classes) and soft.dtype == torch.float32
    assert torch.allclose(soft.sum(1), torch.ones(n))
    lam = float(soft[0, 0])
    for i in range(n):
        assert float(soft[i, i]) == pytest.approx(lam, abs=1e-6) or float(soft[i, i]) == pytest.approx(1.0)
        j = int(torch.argmax(soft[i] - torch.eye(n)[i] * 2)) if float(soft[i, i]) < 1 else i
        expected = (lam * (20 * i + 10) + (1 - lam) * (20 * j + 10)) / 255 if j != i else (20 * i + 10) / 255
        assert torch.allclose(out[i], torch.full_like(out[i], expected), atol=1e-5)
    none, labels = _run(AugmentConfig(mixup_alpha=1.0, mix_prob=0.0), x, y)
    assert labels.dtype == torch.int64 and torch.equal(labels, y)


def test_cutmix_pastes_a_box_and_mixes_by_area():
    n = 4
    x = torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, 1, 10, 10).contiguous()
    soft = torch.nn.functional.one_hot(torch.arange(n), n).float()
    perm = torch.tensor([1, 2, 3, 0])
    out, mixed, lam = cutmix(x, soft, (2, 7, 0, 4), perm)
    assert lam == pytest.approx(1 - 20 / 100)
    for i in range(n):
        assert bool((out[i, 0, 2:7, 0:4] == perm[i]).all()) and float(out[i].sum()) == pytest.approx(80 * i + 20 * int(perm[i]))
        assert float(mixed[i, i]) == pytest.approx(0.8) and float(mixed[i, int(perm[i])]) == pytest.approx(0.2)
    out2, soft2 = _run(AugmentConfig(cutmix_alpha=1.0), _images(n=8), num_classes=10)
    assert torch.allclose(soft2.sum(1), torch.ones(8))


def test_config_yaml_roundtrip_presets_and_errors():
    cfg = AugmentConfig.preset("keras_course")
    assert (cfg.rotation_range, cfg.brightness_range, cfg.zoom_range) == (30.0, [0.8, 1.0], 0.3)
    assert cfg.width_shift_range == cfg.height_shift_range == 0.2 and cfg.horizontal_flip
    assert set(cfg.enabled_ops()) == {"horizontal_flip", "rotation", "shift", "zoom", "brightness"}
    text = yaml.safe_dump(cfg.to_dict())
    assert AugmentConfig.from_dict(yaml.safe_load(text)) == cfg
    std = resolve_augment("standard")
    assert std.enabled_ops() == ["horizontal_flip", "crop"] and std.crop_padding == 4
    assert AugmentConfig.from_dict({"preset": "standard", "cutout": 8}).enabled_ops() == ["horizontal_flip", "crop",
                                                                                          "cutout"]
    assert resolve_augment(None) is None and resolve_augment("none") is None
    with pytest.raises(UserError, match="did you mean 'rotation_range'"):
        AugmentConfig.from_dict({"rotation_rang": 10})
    with pytest.raises(UserError, match="zoom_range"):
        AugmentConfig(zoom_range=1.5)
    with pytest.raises(UserError, match="unknown augmentation preset"):
        resolve_augment("fancy")
    with pytest.raises(UserError, match="flip_prob"):
        AugmentConfig(flip_prob=2)


def test_all_ops_on_a_cifar_sized_batch():
    x = _images(n=128, h=32, w=32)
    cfg = AugmentConfig.from_dict({"preset": "keras_course", "crop_padding": 4, "cutout": 8, "mixup_alpha": 0.2,
                                   "cutmix_alpha": 1.0})
    out, y = _run(cfg, x, num_classes=10)
    assert out.shape == (128, 3, 32, 32) and out.dtype == torch.float32 and torch.isfinite(out).all()
    assert y.shape == (128, 10)
    again, y2 = _run(cfg, x, num_classes=10)
    assert torch.equal(out, again) and torch.equal(y, y2)  # a pure function of the generator's seed
