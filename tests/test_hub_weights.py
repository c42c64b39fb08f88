"""``--pretrained hub`` without surprises: cached weights load with no network at all, missing ones are
one clear line at once (offline, unreachable, or a failed download whose reason is never cut mid-word),
and timm names are checked from a per-version list without importing timm."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cnnlab.errors import UserError

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def hub_cache(monkeypatch, tmp_path):
    """An empty Hugging Face hub cache (and torch hub folder) in tmp_path; no proxy; returns a function
    that caches ``model.safetensors`` for a timm hub repo."""
    import huggingface_hub.constants as hf_constants

    cache = tmp_path / "hf-cache"
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "torch-hub"))
    for var in ("HF_HUB_OFFLINE", "HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)

    def put(repo: str, state: dict[str, torch.Tensor]) -> Path:
        from safetensors.torch import save_file

        folder = cache / ("models--" + repo.replace("/", "--"))
        (folder / "refs").mkdir(parents=True)
        (folder / "refs" / "main").write_text("0123abcd")
        snap = folder / "snapshots" / "0123abcd"
        snap.mkdir(parents=True)
        save_file({k: v.contiguous() for k, v in state.items()}, str(snap / "model.safetensors"))
        return snap / "model.safetensors"

    return put


@pytest.fixture
def no_network(monkeypatch):
    """Any connection attempt fails the test."""
    import socket

    def refuse(*_a, **_k):
        raise AssertionError("the network was used")

    monkeypatch.setattr(socket, "create_connection", refuse)


def test_cached_hub_weights_load_without_touching_the_network(hub_cache, no_network, monkeypatch):
    import timm

    from cnnlab.models.transfer import cached_hub_weights, check_hub_weights, create_transfer_model

    torch.manual_seed(0)
    ref = timm.create_model("test_resnet", pretrained=False)
    for p in ref.parameters():
        p.data.normal_()
    assert cached_hub_weights("test_resnet") is None
    path = hub_cache("timm/test_resnet.r160_in1k", ref.state_dict())
    assert cached_hub_weights("test_resnet") == str(path)
    assert check_hub_weights("timm/test_resnet") == str(path)
    import timm.models._builder as builder

    for name in ("load_state_dict_from_hf", "load_state_dict_from_url", "download_cached_file"):
        monkeypatch.setattr(builder, name, lambda *a, **k: pytest.fail("asked the hub although cached"))
    model = create_transfer_model("timm/test_resnet", num_classes=3, input_size=32, pretrained="hub")
    own = model.backbone.state_dict()
    for k, v in ref.state_dict().items():
        if k in own:
            assert torch.equal(own[k], v), k
    assert model.eval()(torch.rand(1, 3, 32, 32)).shape == (1, 3)


def test_offline_without_cache_is_one_line_before_timm_downloads(hub_cache, no_network, monkeypatch):
    import timm

    from cnnlab.models.transfer import load_hub_weights

    net = create_small()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(timm, "create_model", lambda *a, **k: pytest.fail("tried to download"))
    with pytest.raises(UserError) as info:
        load_hub_weights(net)
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith("pretrained weights for resnet10t are not in the local cache and HF_HUB_OFFLINE is set;")
    assert "`hf download timm/resnet10t." in msg and msg.endswith("or pass a weights file with --pretrained PATH")


def test_a_failed_download_is_one_line_with_the_reason_cut_at_a_word(hub_cache, monkeypatch):
    """The network looks reachable, but the download fails (hub errors, a proxy...): one line whose
    reason is shortened at a word boundary, and none of the hub's log lines."""
    import timm

    import cnnlab.models.transfer as transfer

    net = create_small()
    monkeypatch.setattr(transfer, "hub_offline_reason", lambda *a, **k: None)
    long_reason = ("An error happened while trying to locate the file on the Hub and we cannot find the requested "
                   "files in the local cache. Please check your connection and try again or make sure your "
                   "Internet connection is on.")

    def failing(*_a, **_k):
        raise OSError(long_reason)

    monkeypatch.setattr(timm, "create_model", failing)
    with pytest.raises(UserError) as info:
        transfer.load_hub_weights(net)
    msg = str(info.value)
    assert msg.startswith("pretrained weights for resnet10t are not in the local cache and could not be downloaded (")
    reason = msg.split("downloaded (", 1)[1].split(")", 1)[0]
    assert reason.endswith("...") and long_reason.startswith(reason[:-3])
    assert not long_reason[len(reason) - 3].isalnum()  # cut between two words, never inside one
    assert "--pretrained PATH" in msg


def test_a_connection_error_during_download_says_the_network_is_unreachable(hub_cache, monkeypatch):
    import timm

    import cnnlab.models.transfer as transfer

    net = create_small()
    monkeypatch.setattr(transfer, "hub_offline_reason", lambda *a, **k: None)

    def failing(*_a, **_k):
        try:
            raise ConnectionError("[Errno -2] Name or service not known")
        except ConnectionError as e:
            raise RuntimeError("hub said no") from e

    monkeypatch.setattr(timm, "create_model", failing)
    with pytest.raises(UserError, match="not in the local cache and the network is unreachable; download"):
        transfer.load_hub_weights(net)


def test_the_probe_is_skipped_behind_a_proxy(monkeypatch):
    from cnnlab.models.transfer import hub_offline_reason

    for var in ("HF_HUB_OFFLINE", "HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    import socket

    def unreachable(*_a, **_k):
        raise OSError("no route")

    monkeypatch.setattr(socket, "create_connection", unreachable)
    assert hub_offline_reason("https://huggingface.co") == "the network is unreachable (no connection to huggingface.co)"
    assert hub_offline_reason("https://example.org/w.pth", hf=False).endswith("(no connection to example.org)")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy:3128")
    assert hub_offline_reason("https://huggingface.co") is None  # only a real request can tell
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert hub_offline_reason("https://huggingface.co") == "HF_HUB_OFFLINE is set"
    assert hub_offline_reason("https://example.org/w.pth", hf=False) is None  # not a hub download


def create_small():
    from cnnlab.models.transfer import create_transfer_model

    return create_transfer_model("timm/resnet10t", num_classes=2, input_size=32)


def test_timm_names_come_from_a_per_version_list_without_importing_timm(tmp_path):
    """The first check imports timm once and keeps its names; later processes read them, import nothing."""
    code = ("import sys\n"
            "from cnnlab.errors import ModelError\n"
            "from cnnlab.models.registry import check_timm_name\n"
            "check_timm_name('resnet18.a1_in1k')\n"
            "try:\n"
            "    check_timm_name('resnet18x')\n"
            "except ModelError as e:\n"
            "    print(e)\n"
            "print('timm' in sys.modules, 'torch' in sys.modules)\n")
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path), "PYTHONPATH": str(REPO / "src")}
    first = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    cached = list((tmp_path / "cnnlab").glob("timm-*-models.txt"))
    assert len(cached) == 1 and "resnet18\n" in cached[0].read_text()
    second = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr
    lines = second.stdout.strip().splitlines()
    assert lines[0].startswith("unknown timm model 'resnet18x'; did you mean timm/resnet18")
    assert lines[-1] == "False False"  # answered from the list: neither timm nor torch imported
