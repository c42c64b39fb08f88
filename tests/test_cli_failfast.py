"""Trivial mistakes fail fast: a bad name, option, device, file or display is one line and exit 2 before
any data is loaded or any model is built, and no run folder is left behind.

Each test replaces the data loaders and model builders by functions that fail the test when called, so
"fast" is checked as "before the heavy work", not against a wall clock.
"""

from __future__ import annotations

import pytest

HEAVY = "heavy work started before the check"


def _forbid(*_a, **_k):
    raise AssertionError(HEAVY)


@pytest.fixture
def no_heavy_work(monkeypatch):
    """Loading data or building a model fails the test."""
    import timm

    import cnnlab.data.registry as data_registry
    import cnnlab.detect.data as detect_data
    import cnnlab.models.registry as model_registry
    import cnnlab.tasks.classify.data as classify_data
    import cnnlab.tasks.detect.data as detect_task_data

    monkeypatch.setattr(classify_data, "build_data", _forbid)
    monkeypatch.setattr(data_registry, "load_dataset", _forbid)
    monkeypatch.setattr(model_registry, "create_model", _forbid)
    monkeypatch.setattr(timm, "create_model", _forbid)
    monkeypatch.setattr(detect_data, "load_detection_data", _forbid)
    monkeypatch.setattr(detect_task_data, "load_train_val", _forbid)


@pytest.fixture
def empty_hub_cache(monkeypatch, tmp_path):
    """No pretrained weights cached, no proxy in the way."""
    import huggingface_hub.constants as hf_constants
    import torch

    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "torch-hub"))
    for var in ("HF_HUB_OFFLINE", "HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)


def _one_line_error(code: int, out: str, err: str, message: str) -> None:
    assert code == 2, (out, err)
    assert err.strip().count("\n") == 0, err
    assert "Traceback" not in err and HEAVY not in err
    assert message in err, err


TRAIN_MISTAKES = [
    (["--model", "nosuch_net"], "unknown model 'nosuch_net'"),
    (["--model", "resnet18"], "did you mean"),
    (["--model", "timm/nosuch_net"], "unknown timm model 'nosuch_net'"),
    (["--model", "yolov3-tiny"], "is a detector"),
    (["--model", "transfer", "--model-kwargs", "{backbone: nosuch_backbone}"], "unknown backbone"),
    (["--model", "timm/resnet18", "--pretrained", "hub", "--model-kwargs", "{backbone: VGG17}"],
     "unknown backbone"),
    (["--device", "cuda:99"], "cuda:99"),
    (["--optimizer", "adamx"], "unknown optimizer 'adamx'"),
    (["--schedule", "cosin"], "unknown schedule 'cosin'"),
    (["--dataset", "cifar11"], "unknown dataset 'cifar11'"),
    (["--dataset", "no/such/folder"], "dataset folder not found"),
    (["--dataset", "digits", "--dataset-options", "{label_mode: coarse}"], "unknown option(s) label_mode"),
    (["--weights", "missing.pt"], "checkpoint not found: missing.pt"),
    (["--pretrained", "missing.safetensors"], "pretrained weights not found: missing.safetensors"),
    (["--model", "lenet5", "--pretrained", "hub"], "transfer backbone"),
    (["--model", "mobilenet_025", "--pretrained", "hub"], "no hub weights for mobilenet_v1_025"),
    (["--model", "timm/test_coatnet", "--pretrained", "hub"], "timm has no pretrained weights for test_coatnet"),
    (["--max-params", "3Q"], "invalid count '3Q'"),
    (["--config", "missing.yaml"], "missing.yaml"),
]


@pytest.mark.parametrize(("args", "message"), TRAIN_MISTAKES, ids=[" ".join(a) for a, _ in TRAIN_MISTAKES])
def test_train_mistakes_fail_before_any_data_or_model(cli, tmp_path, no_heavy_work, empty_hub_cache, args, message):
    code, out, err = cli("train", "--epochs", "1", "--project", tmp_path / "runs", *args)
    _one_line_error(code, out, err, message)
    assert not (tmp_path / "runs").exists()  # no run folder for a run that never started


def test_a_resumed_run_is_checked_too(no_heavy_work):
    from cnnlab.config import TrainConfig
    from cnnlab.errors import UserError
    from cnnlab.tasks.classify.run import check_run

    check_run(TrainConfig(weights="gone.pt"), resuming=True)  # the run's own weights replace weights
    with pytest.raises(UserError, match="cuda:99"):
        check_run(TrainConfig(device="cuda:99"), resuming=True)


def test_pretrained_hub_offline_is_one_clear_line_at_once(cli, tmp_path, monkeypatch, no_heavy_work, empty_hub_cache):
    """HF_HUB_OFFLINE without cached weights: the line names the weights, why, and what to do."""
    import socket

    def no_probe(*_a, **_k):
        raise AssertionError("HF_HUB_OFFLINE is enough: no connection is tried")

    monkeypatch.setattr(socket, "create_connection", no_probe)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code, out, err = cli("train", "--model", "ResNet50V2", "--pretrained", "hub", "--project", tmp_path / "runs")
    _one_line_error(code, out, err, "pretrained weights for resnetv2_50 are not in the local cache and "
                                    "HF_HUB_OFFLINE is set")
    assert "hf download timm/resnetv2_50." in err and "--pretrained PATH" in err
    assert not (tmp_path / "runs").exists()


def test_pretrained_hub_unreachable_network_is_one_clear_line_at_once(cli, tmp_path, monkeypatch, no_heavy_work,
                                                                     empty_hub_cache):
    """No network (the connection probe fails): one line, no hub log lines, not cut mid-word."""
    import socket

    probes = []

    def unreachable(address, *_a, **_k):
        probes.append(address)
        raise socket.gaierror(-2, "Name or service not known")

    monkeypatch.setattr(socket, "create_connection", unreachable)
    code, out, err = cli("train", "--model", "timm/resnet18", "--pretrained", "hub", "--project", tmp_path / "runs")
    _one_line_error(code, out, err, "pretrained weights for resnet18 are not in the local cache and the network "
                                    "is unreachable")
    assert probes and probes[0][0] == "huggingface.co"
    assert err.rstrip().endswith("--pretrained PATH")  # whole, not cut
    assert "Retrying" not in err and "thrown while requesting" not in err


# -- detect-train -----------------------------------------------------------------------------------------

DETECT_MISTAKES = [
    (["--model", "nosuch"], "model 'nosuch' not found"),
    (["--model", "lenet5"], "is a classifier"),
    (["--model", "missing.cfg"], "cfg file not found"),
    (["--model", "BAD_CFG"], "expected key=value"),
    (["--model", "no_such_run/"], "not found"),
    (["--weights", "missing.weights"], "weights file not found: missing.weights"),
    (["--device", "cuda:99"], "cuda:99"),
    (["--optimizer", "adamx"], "unknown optimizer 'adamx'"),
    (["--imgsz", "100"], "multiple of 32"),
    (["--config", "missing.yaml"], "missing.yaml"),
]


@pytest.mark.parametrize(("args", "message"), DETECT_MISTAKES, ids=[" ".join(a) for a, _ in DETECT_MISTAKES])
def test_detect_train_mistakes_fail_before_reading_labels(cli, tmp_path, no_heavy_work, args, message):
    data = tmp_path / "data.yaml"
    data.write_text("train: images\nnames: [a]\n")  # never read: the checks come first
    bad = tmp_path / "bad.cfg"
    bad.write_text("[net]\nwidth=64\nthis is not a cfg line\n")
    args = [str(bad) if a == "BAD_CFG" else a for a in args]
    code, out, err = cli("detect-train", data, "--epochs", "1", "--project", tmp_path / "runs", *args)
    _one_line_error(code, out, err, message)
    assert not (tmp_path / "runs").exists()


def test_detect_train_missing_data_is_one_line(cli, tmp_path, no_heavy_work):
    code, out, err = cli("detect-train", tmp_path / "nope.yaml", "--project", tmp_path / "runs")
    _one_line_error(code, out, err, "dataset not found")
    assert not (tmp_path / "runs").exists()


# -- stream --show ----------------------------------------------------------------------------------------


@pytest.fixture
def no_detector(monkeypatch):
    import cnnlab.cli.detect_options as opt

    monkeypatch.setattr(opt, "make_detector", _forbid)


def test_stream_show_on_headless_opencv_fails_before_the_model_loads(cli, tmp_path, monkeypatch, no_detector):
    import cnnlab.detect.pipeline.sinks as sinks

    monkeypatch.setattr(sinks, "gui_available", lambda: False)
    code, out, err = cli("stream", "0", "--model", tmp_path / "missing.onnx", "--show")
    _one_line_error(code, out, err, "headless")
    assert "--web" in err


def test_stream_show_without_a_display_fails_before_the_model_loads(cli, tmp_path, monkeypatch, no_detector):
    import sys

    import cnnlab.detect.pipeline.sinks as sinks

    if not sys.platform.startswith("linux"):
        pytest.skip("$DISPLAY is how Linux says there is a screen")
    monkeypatch.setattr(sinks, "gui_available", lambda: True)
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    code, out, err = cli("stream", "0", "--model", tmp_path / "missing.onnx", "--show")
    _one_line_error(code, out, err, "--show needs a display")
    assert "--web" in err
