"""``cnnlab weights get NAME``: opt-in downloads of known weights against a local HTTP server: sha256
verified, atomic (a checksum mismatch or a truncated body leaves no file), trust-on-first-use only with
--trust-new, one line when offline."""

from __future__ import annotations

import hashlib
import http.server
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from cnnlab.data import weights as zoo
from cnnlab.data.download import DownloadFailed
from cnnlab.errors import DataError, UserError

CFG, WEIGHTS = b"[net]\nwidth=64\nheight=64\n", bytes(range(256)) * 64


class _Handler(http.server.BaseHTTPRequestHandler):
    files: dict[str, bytes] = {}
    hits: list[str] = []

    def do_GET(self):  # noqa: N802 - http.server's name
        self.hits.append(self.path)
        body = self.files.get(self.path.split("?")[0])
        if body is None:
            self.send_error(404)
            return
        truncated = self.path.startswith("/trunc/")
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: len(body) // 2] if truncated else body)
        if truncated:
            self.close_connection = True

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    _Handler.files, _Handler.hits = {}, []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", _Handler
    httpd.shutdown()
    httpd.server_close()


def _sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def _entry(monkeypatch, base: str, cfg_sha: str | None, weights_sha: str | None, prefix: str = "") -> None:
    entry = zoo.KnownWeights("toy-yolo", "a test model", (
        zoo.KnownFile("toy.cfg", f"{base}/{prefix}toy.cfg", cfg_sha),
        zoo.KnownFile("toy.weights", f"{base}/{prefix}toy.weights", weights_sha)))
    monkeypatch.setitem(zoo.KNOWN, "toy-yolo", entry)
    monkeypatch.delenv("CNNLAB_DATA_MIRRORS", raising=False)


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def test_get_downloads_verifies_and_skips_present_files(server, monkeypatch, tmp_path):
    base, handler = server
    handler.files = {"/toy.cfg": CFG, "/toy.weights": WEIGHTS}
    _entry(monkeypatch, base, _sha(CFG), _sha(WEIGHTS))
    paths = zoo.get_weights("toy-yolo", tmp_path, quiet=True)
    assert [p.read_bytes() for p in paths] == [CFG, WEIGHTS]
    assert paths[0] == tmp_path / "yolo" / "toy.cfg"
    assert len(handler.hits) == 2
    zoo.get_weights("toy.weights", tmp_path, quiet=True)  # a file name finds its model; present: no download
    assert len(handler.hits) == 2
    (tmp_path / "yolo" / "toy.weights").write_bytes(b"tampered")
    with pytest.raises(DataError, match="sha256 differs"):
        zoo.get_weights("toy-yolo", tmp_path, quiet=True)


def test_checksum_mismatch_leaves_nothing(server, monkeypatch, tmp_path):
    base, handler = server
    handler.files = {"/toy.cfg": CFG, "/toy.weights": WEIGHTS}
    _entry(monkeypatch, base, _sha(CFG), _sha(b"something else"))
    with pytest.raises(DataError, match="checksum mismatch .*discarded"):
        zoo.get_weights("toy-yolo", tmp_path, quiet=True)
    assert _leftovers(tmp_path / "yolo") == ["toy.cfg"]  # no toy.weights, no temporary file


def test_truncated_download_leaves_nothing(server, monkeypatch, tmp_path):
    base, handler = server
    handler.files = {"/trunc/toy.cfg": CFG, "/trunc/toy.weights": WEIGHTS}
    _entry(monkeypatch, base, None, None, prefix="trunc/")
    with pytest.raises(DownloadFailed) as e:
        zoo.get_weights("toy-yolo", tmp_path, trust_new=True, quiet=True)
    msg = str(e.value)
    assert "\n" not in msg and "truncated download" in msg and "put the file at" in msg
    assert _leftovers(tmp_path / "yolo") == []


def test_unknown_checksum_needs_trust_new_then_is_recorded(server, monkeypatch, tmp_path):
    base, handler = server
    handler.files = {"/toy.cfg": CFG, "/toy.weights": WEIGHTS}
    _entry(monkeypatch, base, _sha(CFG), None)
    with pytest.raises(UserError, match="no pinned checksum.*--trust-new"):
        zoo.get_weights("toy-yolo", tmp_path, quiet=True)
    assert handler.hits == []  # refused before any download
    zoo.get_weights("toy-yolo", tmp_path, trust_new=True, quiet=True)
    sums = (tmp_path / "yolo" / zoo.SUMS).read_text()
    assert sums == f"{_sha(WEIGHTS)}  toy.weights\n"
    status = {r["file"]: r for r in zoo.weights_status("toy-yolo", tmp_path)}
    assert status["toy.weights"]["checksum"] == "recorded on first download"
    handler.files["/toy.weights"] = WEIGHTS[::-1]  # the server's file changed since
    with pytest.raises(DataError, match="checksum mismatch"):
        zoo.get_weights("toy-yolo", tmp_path, force=True, quiet=True)
    assert (tmp_path / "yolo" / "toy.weights").read_bytes() == WEIGHTS  # the verified file is kept


def test_offline_is_one_line_saying_where_to_put_the_file(monkeypatch, tmp_path):
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there
    _entry(monkeypatch, f"http://127.0.0.1:{port}", _sha(CFG), _sha(WEIGHTS))
    with pytest.raises(DownloadFailed) as e:
        zoo.get_weights("toy-yolo", tmp_path, quiet=True)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("cannot download toy.cfg")
    assert f"put the file at {tmp_path / 'yolo' / 'toy.cfg'}" in msg


def test_cli_weights_list_get_and_mirror(server, monkeypatch, tmp_path, cli):
    base, handler = server
    handler.files = {"/yolo/toy.cfg": CFG, "/yolo/toy.weights": WEIGHTS}
    _entry(monkeypatch, "http://127.0.0.1:9/none", _sha(CFG), _sha(WEIGHTS))
    monkeypatch.setenv("CNNLAB_DATA_MIRRORS", base)  # laid out like the data root: <base>/yolo/<file>
    code, out, err = cli("weights", "get", "toy-yolo", "--data-dir", tmp_path, "-q")
    assert code == 0, err
    assert (tmp_path / "yolo" / "toy.weights").read_bytes() == WEIGHTS and "ok" in out
    code, out, err = cli("weights", "--data-dir", tmp_path)
    assert code == 0 and "toy-yolo" in out and "yolo-fastest-1.1-xl" in out
    code, out, err = cli("weights", "get", "yolo-fastest-1.2")
    assert code == 2 and err.count("\n") == 1 and "did you mean yolo-fastest-1.1" in err


def test_missing_known_file_names_the_command(monkeypatch, tmp_path, cli):
    monkeypatch.setenv("CNNLAB_DATA", str(tmp_path))
    code, _, err = cli("detect", "x.jpg", "--cfg", "yolov4-tiny.cfg", "--weights", "yolov4-tiny.weights")
    assert code == 2 and err.count("\n") == 1
    assert "cnnlab weights get yolov4-tiny" in err and str(tmp_path / "yolo") in err


@pytest.mark.realdata
def test_pinned_checksums_match_the_real_files(shared_data):
    for name in ("yolo-fastest-1.1", "yolo-fastest-1.1-xl"):
        for f in zoo.KNOWN[name].files:
            path = shared_data(f"yolo/{f.name}")
            assert zoo.sha256_of(path) == f.sha256, f.name
    cfg = next(f for f in zoo.KNOWN["yolov3-tiny"].files if f.name == "yolov3-tiny.cfg")
    assert zoo.sha256_of(shared_data("yolo/yolov3-tiny.cfg")) == cfg.sha256


def test_pack_get_and_use_a_recipe_by_name(server, monkeypatch, tmp_path, cli):
    """A run packed with ``weights pack`` (EMA weights, no optimizer state), published on a (local)
    server, downloaded by recipe name with its pinned sha256, then used as ``mnist-fast`` by name."""
    import cnnlab
    from cnnlab.io import torch_load_safe

    run = cnnlab.train(dataset="digits", model="lenet5", epochs=1, batch=64, ema=0.9, verbose=0, threads=1,
                       project=tmp_path / "runs", name="r", plots=False)
    code, out, err = cli("weights", "pack", str(run.run_dir), "--name", "mnist-fast", "-o", tmp_path / "pub")
    assert code == 0, err
    packed = tmp_path / "pub" / "mnist-fast.pt"
    digest = _sha(packed.read_bytes())
    assert f"sha256 {digest}" in out
    code, out2, _ = cli("weights", "pack", str(run.run_dir), "--name", "mnist-fast", "-o", tmp_path / "again")
    assert code == 0 and f"sha256 {digest}" in out2  # packing is reproducible: the pinned sha256 can be re-made
    slim = torch_load_safe(packed)
    full = torch_load_safe(run.run_dir / "weights" / "best.pt")
    assert "optimizer" not in slim and slim["ema"] is None and slim["classes"] == full["classes"]
    assert all(torch.equal(slim["model"][k], full["ema"][k]) for k in full["ema"])  # the EMA weights
    assert packed.stat().st_size < (run.run_dir / "weights" / "best.pt").stat().st_size

    base, handler = server
    handler.files = {"/mnist-fast.pt": packed.read_bytes()}
    monkeypatch.setitem(zoo.KNOWN, "mnist-fast", zoo.KnownWeights(
        "mnist-fast", "test", (zoo.KnownFile("mnist-fast.pt", f"{base}/mnist-fast.pt", digest),), folder="weights"))
    monkeypatch.delenv("CNNLAB_DATA_MIRRORS", raising=False)
    monkeypatch.setenv("CNNLAB_DATA", str(tmp_path / "root"))
    code, _, err = cli("predict", "mnist-fast", "x.png")  # not downloaded yet: one line naming the command
    assert code == 2 and err.count("\n") == 1 and "cnnlab weights get mnist-fast" in err
    [path] = zoo.get_weights("mnist-fast", quiet=True)
    assert path == tmp_path / "root" / "weights" / "mnist-fast.pt" and zoo.sha256_of(path) == digest
    images = list(np.random.default_rng(0).integers(0, 256, (3, 8, 8, 1), dtype=np.uint8))
    got, expected = cnnlab.load("mnist-fast").predict(images), cnnlab.load(run.run_dir).predict(images)
    assert [[c for c, _ in top] for top in got] == [[c for c, _ in top] for top in expected]
    assert np.allclose([[p for _, p in top] for top in got], [[p for _, p in top] for top in expected])


def test_pack_refuses_what_is_not_a_run(tmp_path, cli):
    code, _, err = cli("weights", "pack", "lenet5")
    assert code == 2 and err.count("\n") == 1 and "not a cnnlab run folder or checkpoint" in err
    code, _, err = cli("weights", "pack", str(tmp_path / "nope"))
    assert code == 2 and err.count("\n") == 1


def test_recipe_weights_are_in_the_catalogue():
    for name in zoo.RECIPE_WEIGHTS:
        w = zoo.KNOWN[name]
        assert w.folder == "weights" and [f.name for f in w.files] == [f"{name}.pt"]
        assert w.files[0].url == f"{zoo.RELEASES}/{name}.pt"
