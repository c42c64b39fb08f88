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
from cnnlab.errors import DataError, UserError


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


# -- issue 12: every cfg value validated where the cfg is built, before any tensor is allocated -------------
CONV = "[convolutional]\nfilters=2\nsize=3\npad=1\nactivation=linear\n"


@pytest.mark.parametrize("text, key, message", [
    (NET + "[convolutional]\nfilters=inf\nsize=1\n", "filters", "filters='inf' is not an integer"),
    (NET + "[convolutional]\nfilters=1e400\nsize=1\n", "filters", "filters='1e400' is not an integer"),
    (NET + "[convolutional]\nfilters=nan\nsize=1\n", "filters", "is not an integer"),
    (NET + "[convolutional]\nfilters=2.5\nsize=1\n", "filters", "filters='2.5' is not an integer"),
    (NET + "[convolutional]\nfilters=99999999999\nsize=1\n", "filters", "out of range (Darknet integers"),
    (NET + "[maxpool]\nsize=2\nstride=0\n", "stride", "stride='0' is out of range (must be in [1, 65536])"),
    (NET.replace("channels=3", "channels=0") + "[maxpool]\nsize=2\nstride=2\n", "channels", "channels='0' is out"),
    (NET.replace("channels=3", "channels=0") + CONV, "channels", "channels='0' is out of range"),
    (NET + "[maxpool]\nsize=0\nstride=1\n", "size", "size='0' is out of range"),
    (NET + "[maxpool]\nsize=2\nstride=1\npadding=3\n", "padding", "padding=3 is too large for size=2 (at most 2"),
    (NET + CONV + "dilation=0\n", "dilation", "dilation='0' is out of range"),
    (NET + "[dropout]\nprobability=2\n", "probability", "probability='2' is out of range (must be in [0, 1])"),
    (NET + "[dropout]\nprobability=-inf\n", "probability", "probability='-inf' is not a finite number"),
    (NET + "[convolutional]\nfilters=2\nsize=100000\npad=1\n", "size", "size='100000' is out of range"),
    (NET + "[upsample]\nstride=1000000\n", "stride", "stride='1000000' is out of range"),
    (NET + "[upsample]\nstride=-2\n", "stride", "downsampling upsample layers are not supported"),
    (NET + "[upsample]\nscale=1e400\n", "scale", "scale='1e400' is not a finite number"),
    (NET.replace("width=64", "width=1e9") + CONV, "width", "width='1e9' is out of range"),
    (NET + CONV + "[route]\nlayers=-1,1e400\n", "layers", "layers='-1,1e400' is not a list of integers"),
    (NET + CONV + "[route]\nlayers=-1\ngroups=2\ngroup_id=2\n", "group_id", "group_id='2' is out of range"),
    (NET + CONV + "[convolutional]\nfilters=21\nsize=1\n[yolo]\nmask=0,1,2\nanchors=1,2,3,inf,5,6\nclasses=2\n",
     "anchors", "is not a list of finite numbers"),
    (NET + CONV + "[convolutional]\nfilters=21\nsize=1\n[yolo]\nmask=0,1,2\nanchors=1,2,3,0,5,6\nclasses=2\n",
     "anchors", "must be > 0"),
    (NET + CONV + "[convolutional]\nfilters=21\nsize=1\n[yolo]\nmask=0,1,2\nanchors=1,2,3,4,5,6\nclasses=2\n"
             "num=1000000000\n", "num", "num='1000000000' is out of range (must be in [1, 3])"),
    (NET + CONV + "[convolutional]\nfilters=21\nsize=1\n[yolo]\nmask=0,1,2\nanchors=1,2,3,4,5,6\nclasses=2\n"
             "scale_x_y=nan\n", "scale_x_y", "scale_x_y='nan' is not a finite number"),
    (NET + CONV + "batch_normalize=2\n", "batch_normalize", "batch_normalize='2' is out of range (must be in [0, 1])"),
])
def test_hostile_cfg_values_are_one_line_errors_naming_file_line_and_key(tmp_path, text, key, message):
    path = tmp_path / "bad.cfg"
    path.write_text(text)
    line = max(n for n, ln in enumerate(text.splitlines(), 1) if ln.startswith(f"{key}="))
    with pytest.raises(UserError) as e:
        load_darknet(path)
    msg = str(e.value)
    assert "\n" not in msg and message in msg, msg
    assert msg.startswith(f"{path} line {line} ["), msg


@pytest.mark.parametrize("text, message", [
    (NET + "[convolutional]\nfilters=60000\nsize=1\n[convolutional]\nfilters=60000\nsize=1\n",
     "the network would have more than 2,000,000,000 parameters"),
    (NET + "[convolutional]\nfilters=65536\nsize=3\npad=1\n[convolutional]\nfilters=65536\nsize=3\n",
     "parameters"),
    (NET + "[upsample]\nstride=60000\n", "its output would be 3x3840000x3840000 = 44,236,800,000,000 values"),
    (NET + "[upsample]\nstride=64\n[upsample]\nstride=64\n", "its output would be"),
    (NET + "[convolutional]\nfilters=4\nsize=1\nstride=60000\npadding=60000\n", "the padded input would be"),
    (NET + "[maxpool]\nsize=60000\nstride=60000\npadding=60000\n", "the padded input would be"),
    (NET.replace("width=64\nheight=64", "width=65536\nheight=65536") + CONV, "the input 3x65536x65536"),
])
def test_parameter_and_activation_budgets_refuse_before_allocating(text, message):
    """(Before: an attempt to allocate petabytes, a RuntimeError from the allocator.)"""
    with pytest.raises(UserError, match="refusing to build") as e:
        model_from_cfg(parse_cfg_text(text, "big.cfg"))
    assert message in str(e.value) and "\n" not in str(e.value) and str(e.value).startswith("big.cfg line ")


def test_budgets_are_parameters_of_the_builder():
    text = NET + "[convolutional]\nfilters=16\nsize=3\npad=1\n"
    model = DarknetModel(parse_cfg_text(text))
    assert model.num_params == 16 * 3 * 9 + 16
    with pytest.raises(UserError, match="more than 100 parameters"):
        DarknetModel(parse_cfg_text(text), max_params=100)
    with pytest.raises(UserError, match=r"its output would be 16x64x64 = 65,536 values .* \(limit 20,000\)"):
        DarknetModel(parse_cfg_text(text), max_activation=20_000)


def test_official_style_cfgs_still_build():
    """The limits leave real networks alone: YOLOv3 at 608 (62M parameters) builds."""
    model = DarknetModel(yolov3_sections(80, 608))
    assert model.num_params == sum(t.numel() for t in model.state_dict().values())


def test_dilation_zero_is_refused_before_a_run_folder_is_made(cli, tmp_path):
    import cv2

    from cnnlab.detect.synthetic import random_yolo_files, synthetic_scene

    cfg, weights, _ = random_yolo_files(tmp_path / "m", "yolov3-tiny", num_classes=2, img_size=64,
                                        width_mult=0.125)
    bad = tmp_path / "bad.cfg"
    bad.write_text(cfg.read_text().replace("size=3\n", "size=3\ndilation=0\n", 1))
    cv2.imwrite(str(tmp_path / "a.jpg"), synthetic_scene(64, 64))
    code, _, err = cli("detect", tmp_path / "a.jpg", "--cfg", bad, "--weights", weights)
    assert code == 2 and err.strip().count("\n") == 0 and "Traceback" not in err, err
    assert f"{bad} line " in err and "dilation='0' is out of range" in err
    assert not (tmp_path / "runs").exists()


# -- issue 12: weights files with NaN/inf values, truncated or over-long ---------------------------------------
def _tiny_bn_model():
    return model_from_cfg(parse_cfg_text(
        NET + "[convolutional]\nbatch_normalize=1\nfilters=2\nsize=1\nactivation=linear\n\n"
              "[convolutional]\nfilters=1\nsize=1\nactivation=linear\n", "tiny.cfg"))


def _weights(values) -> bytes:
    return np.array([0, 2, 0], "<i4").tobytes() + np.array([0], "<i8").tobytes() + np.asarray(values, "<f4").tobytes()


@pytest.mark.parametrize("index, value, where", [
    (slice(None), np.nan, "layer 0 (tiny.cfg line 5 [convolutional]) batch-norm bias: 2 of 2 values are NaN"),
    (15, np.inf, "layer 1 (tiny.cfg line 11 [convolutional]) conv weights: 1 of 2 values are infinite"),
    (14, -np.inf, "layer 1 (tiny.cfg line 11 [convolutional]) conv bias: 1 of 1 values are infinite"),
    (6, -1.0, "layer 0 (tiny.cfg line 5 [convolutional]) batch-norm running variance: 1 of 2 values are negative"),
])
def test_non_finite_weights_are_refused_naming_file_and_layer(tmp_path, index, value, where):
    model = _tiny_bn_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    values = np.arange(17, dtype="<f4") + 1
    values[index] = value
    (tmp_path / "w.weights").write_bytes(_weights(values))
    with pytest.raises(DataError) as e:
        load_darknet_weights(model, tmp_path / "w.weights")
    assert str(e.value) == f"{tmp_path / 'w.weights'}: {where} (corrupt or diverged weights); nothing loaded"
    for k, v in model.state_dict().items():  # nothing loaded
        assert torch.equal(v, before[k]), k


def test_all_nan_weights_are_an_error_not_zero_detections(cli, tmp_path):
    import cv2

    from cnnlab.detect.synthetic import random_yolo_files, synthetic_scene

    cfg, weights, _ = random_yolo_files(tmp_path / "m", "yolov3-tiny", num_classes=2, img_size=64,
                                        width_mult=0.125)
    data = weights.read_bytes()
    (tmp_path / "nan.weights").write_bytes(data[:20] + np.full((len(data) - 20) // 4, np.nan, "<f4").tobytes())
    cv2.imwrite(str(tmp_path / "a.jpg"), synthetic_scene(64, 64))
    code, _, err = cli("detect", tmp_path / "a.jpg", "--cfg", cfg, "--weights", tmp_path / "nan.weights")
    assert code == 2 and err.strip().count("\n") == 0 and "Traceback" not in err, err
    assert "nan.weights: layer 0 (" in err and "values are NaN" in err


@pytest.mark.parametrize("data, message", [
    (b"", "too short for a Darknet weights file (0 bytes)"),
    (np.array([0, 2, 0, 0], "<i4").tobytes(), "truncated header (16 bytes)"),
    (_weights(np.ones(17))[:-2], "is not a whole number of float32 values"),
    (_weights(np.ones(16)), "truncated weights file: the cfg needs 17 float32 values after the header, the file has 16"),
    (_weights(np.ones(18)), "oversized weights file: the cfg needs 17"),
    (_weights(np.ones(10**6)), "oversized weights file"),
])
def test_short_long_or_ragged_weights_are_one_line_data_errors(tmp_path, data, message):
    (tmp_path / "w.weights").write_bytes(data)
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")) as e:
        load_darknet_weights(_tiny_bn_model(), tmp_path / "w.weights")
    assert "\n" not in str(e.value) and str(e.value).startswith(str(tmp_path / "w.weights"))
