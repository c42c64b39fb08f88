"""Downloads against a local HTTP server: mirrors, strict md5, atomic writes, offline messages, no network."""

from __future__ import annotations

import functools
import hashlib
import http.server
import socket
import threading
import warnings

import numpy as np
import pytest

from _data_files import write_idx
from cnnlab.data import DataChecksumWarning, load_dataset
from cnnlab.data.download import DownloadFailed, download_file
from cnnlab.data.mnist import MNIST_MD5
from cnnlab.errors import DataError


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("CNNLAB_DATA", raising=False)
    monkeypatch.delenv("CNNLAB_DATA_MIRRORS", raising=False)


@pytest.fixture
def net_guard(monkeypatch):
    """Block every connection except to 127.0.0.1; returns the list of refused attempts."""
    refused: list = []
    real_connect = socket.socket.connect
    real_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        if host not in ("127.0.0.1", "localhost"):
            refused.append(host)
            raise socket.gaierror(f"network blocked in tests: {host}")
        return real_getaddrinfo(host, *args, **kwargs)

    def connect(self, address):
        if isinstance(address, tuple) and address[0] != "127.0.0.1":
            refused.append(address)
            raise OSError("network blocked in tests")
        return real_connect(self, address)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket.socket, "connect", connect)
    return refused


@pytest.fixture
def http_root(tmp_path):
    """Serve a folder on 127.0.0.1; yields (folder, base_url)."""
    served = tmp_path / "served"
    served.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(served)))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield served, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _serve_mnist(folder, monkeypatch) -> dict:
    """Write tiny MNIST files into the served folder and make their md5 the 'official' ones."""
    rng = np.random.default_rng(0)
    arrays = {}
    for prefix, n in (("train", 12), ("t10k", 6)):
        arrays[prefix] = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        write_idx(folder / "mnist" / f"{prefix}-images-idx3-ubyte.gz", arrays[prefix])
        write_idx(folder / "mnist" / f"{prefix}-labels-idx1-ubyte.gz", (np.arange(n) % 10).astype(np.uint8))
    for name in MNIST_MD5:
        monkeypatch.setitem(MNIST_MD5, name, hashlib.md5((folder / "mnist" / name).read_bytes()).hexdigest())
    return arrays


def test_download_from_mirror_verifies_and_loads(tmp_path, http_root, monkeypatch, net_guard):
    served, url = http_root
    arrays = _serve_mnist(served, monkeypatch)
    root = tmp_path / "data"
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataChecksumWarning)  # md5 matches: no warning
        ds = load_dataset("mnist", "train", data_dir=root, download=True, mirrors=[url], quiet=True)
    assert np.array_equal(ds.images[:, 0].numpy(), arrays["train"])
    assert sorted(p.name for p in (root / "mnist").iterdir()) == sorted(MNIST_MD5)  # no temp files left
    assert net_guard == []  # the official addresses were never needed


def test_mirror_env_var_and_cli_download(tmp_path, http_root, monkeypatch, net_guard, cli):
    served, url = http_root
    _serve_mnist(served, monkeypatch)
    monkeypatch.setenv("CNNLAB_DATA_MIRRORS", url)
    code, out, err = cli("datasets", "download", "mnist", "--data-dir", tmp_path / "d")
    assert code == 0, err
    assert (tmp_path / "d" / "mnist" / "t10k-labels-idx1-ubyte.gz").is_file()
    assert "ok" in out


def test_checksum_mismatch_on_download_is_refused(tmp_path, http_root, net_guard):
    served, url = http_root
    (served / "f.bin").write_bytes(b"tampered bytes")
    dest = tmp_path / "out" / "f.bin"
    with pytest.raises(DataError, match="checksum mismatch") as e:
        download_file([f"{url}/f.bin"], dest, md5="0" * 32, quiet=True)
    assert "\n" not in str(e.value)
    assert not dest.exists() and list(dest.parent.iterdir()) == []  # nothing half-written


def test_download_tries_next_address(tmp_path, http_root, net_guard):
    served, url = http_root
    payload = b"payload" * 1000
    (served / "good.bin").write_bytes(payload)
    dest = download_file([f"{url}/missing.bin", f"{url}/good.bin"], tmp_path / "g.bin",
                         md5=hashlib.md5(payload).hexdigest(), quiet=True)
    assert dest.read_bytes() == payload
    with pytest.raises(DownloadFailed, match="HTTP 404"):
        download_file([f"{url}/missing.bin"], tmp_path / "h.bin", md5=None, quiet=True)


def test_offline_message_is_one_line(tmp_path, net_guard, cli):
    with pytest.raises(DataError) as e:
        load_dataset("fashion_mnist", data_dir=tmp_path, download=True, quiet=True)
    msg = str(e.value)
    assert "\n" not in msg and "could not be downloaded" in msg
    assert str(tmp_path / "fashion-mnist" / "train-images-idx3-ubyte.gz") in msg
    assert net_guard, "the official address was tried (and blocked)"
    assert not (tmp_path / "fashion-mnist").exists()  # no empty folder left behind
    code, _, err = cli("datasets", "download", "cifar10", "--data-dir", tmp_path)
    assert code == 2 and "cifar-10-python.tar.gz" in err and "Traceback" not in err


def test_local_files_never_touch_the_network(tmp_path, net_guard, monkeypatch):
    for prefix, n in (("train", 10), ("t10k", 10)):
        write_idx(tmp_path / "mnist" / f"{prefix}-images-idx3-ubyte.gz", np.zeros((n, 28, 28), np.uint8))
        write_idx(tmp_path / "mnist" / f"{prefix}-labels-idx1-ubyte.gz", np.zeros(n, np.uint8))
    monkeypatch.setenv("CNNLAB_DATA_MIRRORS", "http://example.invalid")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataChecksumWarning)
        load_dataset("mnist", "test", data_dir=tmp_path, download=True)
        load_dataset("digits", download=True)
    assert net_guard == []


def test_read_only_data_root_is_not_written(tmp_path, net_guard):
    root = tmp_path / "shared"
    root.mkdir()
    root.chmod(0o555)
    try:
        with pytest.raises(DataError, match="not writable"):
            load_dataset("cifar100", data_dir=root, download=True, quiet=True)
        assert list(root.iterdir()) == [] and net_guard == []
    finally:
        root.chmod(0o755)
