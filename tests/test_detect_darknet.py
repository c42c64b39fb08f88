"""Darknet cfg interpreter, weights reader/writer, layer semantics and the native YOLO builders."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from _cfgs import NET, v4_tiny_cfg
from cnnlab.darknet.cfg import format_cfg, parse_cfg_text, read_cfg
from cnnlab.darknet.layers import MaxPoolLayer
from cnnlab.darknet.model import DarknetModel, load_darknet, model_from_cfg
from cnnlab.darknet.weights import (
    WeightsHeader,
    expected_count,
    load_darknet_weights,
    read_header,
    save_darknet_weights,
)
from cnnlab.darknet.yolo import yolov3_sections, yolov3_tiny, yolov3_tiny_sections
from cnnlab.errors import UserError


def test_parse_cfg_comments_and_options():
    secs = parse_cfg_text(NET + "# comment\n[convolutional]\nfilters = 8 ; trailing\nsize=3\n\n[maxpool]\nsize=2\n")
    assert [s.type for s in secs] == ["net", "convolutional", "maxpool"]
    assert secs[1].get_int("filters") == 8 and secs[1].get_int("size") == 3
    assert secs[1].line == 6
    again = parse_cfg_text(format_cfg(secs))
    assert [(s.type, s.options) for s in again] == [(s.type, s.options) for s in secs]


@pytest.mark.parametrize("text, message", [
    ("[convolutional]\nfilters=8\n", "first section must be [net]"),
    (NET + "[transformer]\nheads=8\n", "unknown layer type [transformer]"),
    (NET + "[convolutional]\nfilters=eight\n", "is not an integer"),
    (NET + "[convolutional]\nfilters=8\nactivation=gelu2\n", "unsupported activation 'gelu2'"),
    (NET + "[route]\nlayers=-3\n", "not an earlier layer"),
    (NET + "just text\n", "expected key=value"),
])
def test_broken_cfg_is_a_one_line_user_error(text, message):
    with pytest.raises(UserError, match=message.replace("[", r"\[").replace("]", r"\]")) as e:
        model_from_cfg(parse_cfg_text(text))
    assert "\n" not in str(e.value)


def test_wrong_filters_before_yolo_names_the_expected_count():
    text = NET + "[convolutional]\nfilters=20\nsize=1\nactivation=linear\n\n[yolo]\nmask=0,1,2\n" \
                 "anchors=1,2,3,4,5,6\nclasses=2\nnum=3\n"
    with pytest.raises(UserError, match=r"filters=20; expected filters = len\(mask\)\*\(classes\+5\) = "
                                        r"3\*\(2\+5\) = 21"):
        model_from_cfg(parse_cfg_text(text))


def test_yolov4_tiny_style_snippet_builds_and_decodes():
    model = model_from_cfg(parse_cfg_text(v4_tiny_cfg())).eval()
    assert model.shapes[2].c == 16                      # route groups=2 keeps half of 32 channels
    assert model.shapes[4].c == 32                      # concat of 16 + 16
    yolo = model.yolo_layers[0]
    assert yolo.scale_x_y == pytest.approx(1.05) and yolo.new_coords
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        (out,) = model(x)
        (raw,) = model.forward_raw(x)
    assert out.shape == (1, 16 * 16 * 3, 7) and raw.shape == (1, 21, 16, 16)
    # new_coords: inputs are already logistic; xy = (t*s - (s-1)/2 + cell)/grid, wh = (2t)^2 * anchor / img
    p = raw.view(1, 3, 7, 16, 16)
    a, cy, cx = 1, 5, 9
    row = out[0, (cy * 16 + cx) * 3 + a]
    s = 1.05
    assert row[0].item() == pytest.approx(((p[0, a, 0, cy, cx] * s - 0.5 * (s - 1)) + cx).item() / 16, abs=1e-6)
    assert row[3].item() == pytest.approx(((2 * p[0, a, 3, cy, cx]) ** 2 * 27).item() / 64, abs=1e-6)
    assert row[5].item() == pytest.approx((p[0, a, 4, cy, cx] * p[0, a, 5, cy, cx]).item(), abs=1e-6)


def test_yolov3_decode_matches_the_formula():
    model = yolov3_tiny(num_classes=2, img_size=64, width_mult=0.125).eval()
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        out = model(x)
        raw = model.forward_raw(x)
    r = raw[0].view(1, 3, 7, 2, 2)
    a, cy, cx = 2, 1, 0
    row = out[0][0, (cy * 2 + cx) * 3 + a]
    assert row[1].item() == pytest.approx((torch.sigmoid(r[0, a, 1, cy, cx]) + cy).item() / 2, abs=1e-6)
    assert row[2].item() == pytest.approx((torch.exp(r[0, a, 2, cy, cx]) * 344).item() / 64, rel=1e-5)
    obj = torch.sigmoid(r[0, a, 4, cy, cx])
    assert row[4].item() == pytest.approx(obj.item(), abs=1e-6)
    assert row[6].item() == pytest.approx((obj * torch.sigmoid(r[0, a, 6, cy, cx])).item(), abs=1e-6)


def _darknet_maxpool_reference(x: np.ndarray, size: int, stride: int, padding: int) -> np.ndarray:
    """Darknet's forward_maxpool_layer, literally: offset -padding/2, out of range = -inf."""
    c, h, w = x.shape
    oh, ow = (h + padding - size) // stride + 1, (w + padding - size) // stride + 1
    out = np.full((c, oh, ow), -np.inf, np.float32)
    off = -(padding // 2)
    for i in range(oh):
        for j in range(ow):
            for n in range(size):
                for m in range(size):
                    y, xx = off + i * stride + n, off + j * stride + m
                    if 0 <= y < h and 0 <= xx < w:
                        out[:, i, j] = np.maximum(out[:, i, j], x[:, y, xx])
    return out


@pytest.mark.parametrize("size, stride", [(2, 1), (2, 2), (3, 1), (3, 2), (5, 1)])
def test_maxpool_follows_darknet_padding(size, stride):
    x = torch.randn(2, 7, 7)
    layer = MaxPoolLayer(size, (stride, stride), size - 1)
    got = layer(x[None])[0].numpy()
    ref = _darknet_maxpool_reference(x.numpy(), size, stride, size - 1)
    assert got.shape == ref.shape
    np.testing.assert_array_equal(got, ref)


def test_shortcut_with_activation_and_channel_mismatch():
    text = NET + """
[convolutional]
filters=8
size=1
activation=linear

[convolutional]
filters=4
size=1
activation=linear

[convolutional]
filters=8
size=1
activation=linear

[shortcut]
from=-2
activation=relu
"""
    model = model_from_cfg(parse_cfg_text(text)).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        a = model.layers[0](x)
        b = model.layers[1](a)
        c = model.layers[2](b)
        out = model(x)
    expected = torch.cat([c[:, :4] + b, c[:, 4:]], dim=1).relu()
    torch.testing.assert_close(out, expected)


def test_weights_round_trip_and_header_versions(tmp_path):
    model = yolov3_tiny(num_classes=3, img_size=64, width_mult=0.125)
    for bn in (m.bn for m in model.conv_layers() if m.bn is not None):
        bn.running_mean.normal_()
        bn.running_var.uniform_(0.5, 2.0)
    path = save_darknet_weights(model, tmp_path / "m.weights", WeightsHeader(0, 2, 5, 123456789012))
    data = path.read_bytes()
    assert len(data) == 20 + 4 * expected_count(model)
    head = read_header(data, path)
    assert (head.major, head.minor, head.revision, head.seen) == (0, 2, 5, 123456789012)
    other = yolov3_tiny(num_classes=3, img_size=64, width_mult=0.125)
    load_darknet_weights(other, path)
    for (k, v), (_, w) in zip(model.state_dict().items(), other.state_dict().items(), strict=True):
        torch.testing.assert_close(v, w, msg=k)
    # an old (0.1) header has a 32-bit `seen`
    old = save_darknet_weights(model, tmp_path / "old.weights", WeightsHeader(0, 1, 0, 77))
    assert len(old.read_bytes()) == 16 + 4 * expected_count(model)
    assert load_darknet_weights(other, old).seen == 77


def test_bn_and_bias_order_in_the_file(tmp_path):
    model = model_from_cfg(parse_cfg_text(
        NET + "[convolutional]\nbatch_normalize=1\nfilters=2\nsize=1\nactivation=linear\n\n"
              "[convolutional]\nfilters=1\nsize=1\nactivation=linear\n"))
    values = np.arange(8 + 6 + 1 + 2, dtype="<f4") + 1  # beta, gamma, mean, var, w(2x3) | bias, w(1x2)
    head = np.array([0, 2, 0], "<i4").tobytes() + np.array([0], "<i8").tobytes()
    (tmp_path / "w.weights").write_bytes(head + values.tobytes())
    load_darknet_weights(model, tmp_path / "w.weights")
    conv0, conv1 = model.conv_layers()
    assert conv0.bn.bias.tolist() == [1, 2] and conv0.bn.weight.tolist() == [3, 4]
    assert conv0.bn.running_mean.tolist() == [5, 6] and conv0.bn.running_var.tolist() == [7, 8]
    assert conv0.conv.weight.flatten().tolist() == [9, 10, 11, 12, 13, 14]
    assert conv1.conv.bias.tolist() == [15] and conv1.conv.weight.flatten().tolist() == [16, 17]


@pytest.mark.parametrize("delta, word", [(-10, "truncated"), (3, "oversized")])
def test_truncated_or_oversized_weights_name_both_counts(tmp_path, delta, word):
    model = yolov3_tiny(num_classes=3, img_size=64, width_mult=0.125)
    data = save_darknet_weights(model, tmp_path / "m.weights").read_bytes()
    need = expected_count(model)
    data = data[:len(data) + 4 * delta] if delta < 0 else data + b"\0" * (4 * delta)
    (tmp_path / "bad.weights").write_bytes(data)
    with pytest.raises(UserError, match=rf"{word} weights file: the cfg needs {need} .* the file has {need + delta}"):
        load_darknet_weights(model, tmp_path / "bad.weights")


def test_yolov3_tiny_builder_round_trips_through_its_cfg(tmp_path):
    built = yolov3_tiny(num_classes=4, img_size=96, width_mult=0.25)
    (tmp_path / "t.cfg").write_text(built.to_cfg())
    parsed = load_darknet(tmp_path / "t.cfg")
    assert parsed.types == built.types
    assert [(s.c, s.h, s.w) for s in parsed.shapes] == [(s.c, s.h, s.w) for s in built.shapes]
    assert {k: v.shape for k, v in parsed.state_dict().items()} == {k: v.shape for k, v in built.state_dict().items()}
    parsed.load_state_dict(built.state_dict())
    x = torch.rand(1, 3, 96, 96)
    with torch.no_grad():
        for a, b in zip(parsed(x), built.eval()(x), strict=True):
            torch.testing.assert_close(a, b)


def test_yolov3_builder_structure_matches_the_official_layout():
    secs = yolov3_sections(num_classes=80, img_size=416)
    model = DarknetModel(secs)
    assert len(model.layers) == 107 and model.yolo_indices == [82, 94, 106]
    assert [(s.c, s.h) for s in (model.shapes[36], model.shapes[61], model.shapes[74])] == \
        [(256, 52), (512, 26), (1024, 13)]
    assert sum(p.numel() for p in model.parameters()) == 61_949_149      # the published YOLOv3 size
    assert expected_count(model) == 62_001_757                          # yolov3.weights: 248,007,048 bytes
    again = DarknetModel(parse_cfg_text(model.to_cfg()))
    assert {k: v.shape for k, v in again.state_dict().items()} == {k: v.shape for k, v in model.state_dict().items()}


def test_darknet53_classifier_is_registered():
    from cnnlab.models import create_model, list_models

    assert "darknet53" in list_models()
    full = create_model("darknet53", num_classes=1000, img_size=256)
    assert sum(p.numel() for p in full.parameters()) == 41_609_928    # Darknet-53 classifier, 1000 classes
    small = create_model("darknet53", num_classes=10, in_chans=1, img_size=28, width_mult=0.125).eval()
    with torch.no_grad():
        assert small(torch.rand(2, 1, 28, 28)).shape == (2, 10)
    assert "[shortcut]" in small.to_cfg() and small.to_cfg().count("[convolutional]") == 53


@pytest.mark.realdata
def test_official_yolov3_tiny_cfg_equals_the_builder(shared_data):
    official = load_darknet(shared_data("yolo/yolov3-tiny.cfg"))
    built = DarknetModel(yolov3_tiny_sections(80, 416))
    assert official.types == built.types
    assert [(s.c, s.h, s.w) for s in official.shapes] == [(s.c, s.h, s.w) for s in built.shapes]
    assert expected_count(official) == expected_count(built) == 8_858_734


@pytest.mark.realdata
@pytest.mark.parametrize("name", ["yolo-fastest-1.1", "yolo-fastest-1.1-xl"])
def test_yolo_fastest_weights_load_exactly(shared_data, name):
    cfg = shared_data(f"yolo/{name}.cfg")
    weights = shared_data(f"yolo/{name}.weights")
    model = load_darknet(cfg, weights)
    header = read_header(weights.read_bytes()[:20], weights)
    assert weights.stat().st_size == header.nbytes + 4 * expected_count(model)
    assert len(read_cfg(cfg)) - 1 == len(model.layers) and len(model.yolo_layers) == 2
    with torch.no_grad():
        outs = model(torch.rand(1, 3, 320, 320))
    assert [o.shape for o in outs] == [(1, 300, 85), (1, 1200, 85)]
    assert all(torch.isfinite(o).all() for o in outs)


def test_partial_backbone_weights_with_cutoff(tmp_path):
    backbone = NET + "[convolutional]\nbatch_normalize=1\nfilters=4\nsize=3\npad=1\nactivation=leaky\n\n" \
                     "[convolutional]\nbatch_normalize=1\nfilters=8\nsize=3\nstride=2\npad=1\nactivation=leaky\n"
    full = backbone + "\n[convolutional]\nfilters=5\nsize=1\nactivation=linear\n"
    part = model_from_cfg(parse_cfg_text(backbone))
    save_darknet_weights(part, tmp_path / "backbone.conv.2")
    model = model_from_cfg(parse_cfg_text(full))
    with pytest.raises(UserError, match="truncated"):
        load_darknet_weights(model, tmp_path / "backbone.conv.2")
    load_darknet_weights(model, tmp_path / "backbone.conv.2", cutoff=2)
    torch.testing.assert_close(model.layers[1].conv.weight, part.layers[1].conv.weight)
