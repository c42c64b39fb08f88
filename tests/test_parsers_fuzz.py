"""Property-based fuzzing of the dataset, checkpoint and run-folder parsers (issue 12).

Any input either loads, and then is what the file said (exact dimensions, labels in range and of integer
type, pixels of the intact image, checkpoint fields of the types their readers use), or is refused with
cnnlab's own error class (``UserError`` and subclasses) in one line: never another exception, never a
silently converted value. The byte-level targets are those of ``cnnlab.fuzz.parsers``.
"""

from __future__ import annotations

import functools
import gzip
import io
import json
import math
import pickle
import tarfile

import numpy as np
import pytest
import torch
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from cnnlab.data.cifar import CIFAR10, CIFAR100, _normalise_keys
from cnnlab.data.idx import _IDX_DTYPES, parse_idx
from cnnlab.data.safe_pickle import safe_loads
from cnnlab.errors import DataError, UserError
from cnnlab.fuzz.parsers import fuzz_targets

FUZZ = settings(max_examples=200, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
SLOW = settings(FUZZ, max_examples=80)


def refused(e: UserError) -> None:
    """The project's one-line refusal."""
    assert str(e).strip() and "\n" not in str(e), str(e)


# -------------------------------------------------------------------------------------------- idx
@FUZZ
@given(st.binary(max_size=300))
def test_idx_random_bytes(data):
    try:
        arr = parse_idx(data, "f")
    except DataError as e:
        return refused(e)
    assert 4 + 4 * arr.ndim + arr.nbytes == len(data) and arr.size > 0


@FUZZ
@given(code=st.sampled_from([*_IDX_DTYPES, 0x00, 0x0A, 0xFF]),
       dims=st.lists(st.one_of(st.integers(0, 4), st.integers(0, 2**32 - 1)), max_size=6),
       extra=st.integers(-3, 3), gz=st.booleans())
def test_idx_headers_load_exactly_when_consistent(code, dims, extra, gz):
    itemsize = np.dtype(_IDX_DTYPES[code]).itemsize if code in _IDX_DTYPES else 1
    need = math.prod(dims) * itemsize
    size = need + extra if 0 <= need + extra <= 4096 else 7
    raw = bytes([0, 0, code, len(dims)]) + b"".join(d.to_bytes(4, "big") for d in dims) + bytes(max(size, 0))
    if gz:
        raw = gzip.compress(raw, mtime=0)
    from cnnlab.data.idx import maybe_gunzip

    ok = code in _IDX_DTYPES and dims and 0 not in dims and size == need
    try:
        arr = parse_idx(maybe_gunzip(raw, "f"), "f")
    except DataError as e:
        assert not ok, str(e)
        return refused(e)
    assert ok and arr.shape == tuple(dims) and arr.dtype == np.dtype(_IDX_DTYPES[code]).newbyteorder("=")


# ------------------------------------------------------------------------------------------ CIFAR
INTS = st.integers(-(2**70), 2**70)
LABEL_LISTS = st.one_of(
    st.lists(st.integers(0, 9), min_size=0, max_size=4),
    st.lists(INTS, max_size=4),
    st.lists(st.one_of(INTS, st.floats(allow_nan=True), st.booleans(), st.text(max_size=3), st.none(),
                       st.lists(st.integers(0, 9), max_size=2)), max_size=4),
    hnp.arrays(st.sampled_from([np.uint8, np.int8, np.int64, np.uint64, np.float32, np.bool_]),
               st.integers(0, 4)),
    hnp.arrays(np.int64, hnp.array_shapes(min_dims=2, max_dims=2, max_side=3)),
    st.one_of(st.none(), st.integers(), st.text(max_size=5),
              st.dictionaries(st.integers(0, 9), st.integers(0, 9))),
)


@FUZZ
@given(n=st.integers(0, 4), labels=LABEL_LISTS, fine=LABEL_LISTS, coarse=LABEL_LISTS,
       data_kind=st.sampled_from(["ok", "ok", "float", "shape", "list", "missing"]),
       protocol=st.sampled_from([2, 4, 5]), bytes_keys=st.booleans())
def test_cifar_batches_load_only_valid_labels(n, labels, fine, coarse, data_kind, protocol, bytes_keys):
    data = {"ok": np.zeros((n, 3072), np.uint8), "float": np.zeros((n, 3072), np.float32),
            "shape": np.zeros((n, 3, 32, 32), np.uint8), "list": [0] * 3072, "missing": None}[data_kind]
    d = {"labels": labels, "fine_labels": fine, "coarse_labels": coarse}
    if data is not None:
        d["data"] = data
    if bytes_keys:
        d = {k.encode(): v for k, v in d.items()}
    blob = pickle.dumps(d, protocol=protocol)
    for source, keys in ((CIFAR10, [("labels", 10)]), (CIFAR100, [("fine_labels", 100), ("coarse_labels", 20)])):
        try:
            images, out, out_coarse = source._batch(_normalise_keys(safe_loads(blob, "b"), "b"), "b")
        except DataError as e:
            refused(e)
            continue
        assert data_kind == "ok" and n > 0 and images.shape == (n, 3, 32, 32)
        for (key, classes), got in zip(keys, (out, out_coarse), strict=False):
            given_ = {"labels": labels, "fine_labels": fine, "coarse_labels": coarse}[key]
            values = given_.tolist() if isinstance(given_, np.ndarray) else list(given_)
            assert all(type(v) is int for v in values)  # never a float, bool or string converted
            assert got.dtype == np.int64 and got.tolist() == values and all(0 <= v < classes for v in values)


@FUZZ
@given(st.binary(max_size=200))
def test_safe_loads_random_bytes(data):
    try:
        safe_loads(data, "p")
    except DataError as e:
        refused(e)


@FUZZ
@given(st.data())
def test_safe_loads_mutated_pickles(data):
    obj = {"data": np.arange(6, dtype=np.uint8).reshape(2, 3), "labels": [1, 2], b"name": b"x", "f": 1.5}
    blob = bytearray(pickle.dumps(obj, protocol=data.draw(st.sampled_from([2, 4, 5]))))
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(blob) - 1))
        blob[i] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(blob)))
    try:
        safe_loads(bytes(blob[:cut]), "p")
    except DataError as e:
        refused(e)


def _forged_array(shape, dtype="u1", data=b"", fortran=False) -> bytes:
    """A protocol-2 numpy array pickle whose state declares ``shape`` and ``dtype`` over ``data``."""
    return (b"\x80\x02cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85C\x01b\x87R"
            + b"(K\x01" + pickle.dumps(shape, protocol=2)[2:-1]
            + b"cnumpy\ndtype\nX" + len(dtype).to_bytes(4, "little") + dtype.encode() + b"K\x00K\x01\x87R"
            + b"(K\x03X\x01\x00\x00\x00|NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"
            + (b"\x88" if fortran else b"\x89") + b"C" + bytes([len(data)]) + data + b"tb.")


def test_forged_array_pickle_round_trip_matches_numpy():
    """The stand-ins rebuild what numpy's own pickles hold, at every protocol."""
    arr = np.arange(12, dtype=">i4").reshape(3, 4)
    for protocol in (2, 4, 5):
        for a in (arr, np.asfortranarray(arr), arr.astype(np.float32), np.array(3.5), np.zeros((0, 3), np.uint8)):
            got = safe_loads(pickle.dumps({"x": a, "s": np.int64(7)}, protocol=protocol), "p")
            assert got["x"].dtype == a.dtype and got["x"].shape == a.shape and (got["x"] == a).all()
            assert got["s"] == 7
    assert (safe_loads(_forged_array((2, 2), data=b"abcd"), "p") == np.frombuffer(b"abcd", np.uint8).reshape(2, 2)).all()


@pytest.mark.parametrize("blob, says", [
    (_forged_array((10**10,), data=b"abcd"), "shape"),                    # numpy would allocate 10 GB
    (_forged_array((3,), data=b"abcd"), "needs 3 bytes"),
    (_forged_array((1,), dtype="O", data=b"abcdefgh"), "non-numeric"),
    (b"\x80\x02]r\xff\xff\xff\x7f.", "memo index"),                  # LONG_BINPUT 2**31-1: a 16 GB memo
    (b"\x80\x04\x8e\x00\x00\x00\x00\x08\x00\x00\x00x.", "bytes8"),  # BINBYTES8 of 32 GB, 1 present
    (b"\x80\x02cnumpy\nndarray\nJ\x00\xe1\xf5\x05\x85R.", "ndarray construction"),
    (b"\x80\x02c_codecs\nencode\nX\x01\x00\x00\x00xX\x04\x00\x00\x00zlib\x86R.", "latin1"),
    (pickle.dumps(functools.reduce(lambda inner, _: [inner], range(40), []), protocol=2), "nested"),
])
def test_forged_pickles_are_refused_without_allocating(blob, says):
    """Each forged pickle once made numpy or the C unpickler allocate what the file declares (fuzz finding)."""
    import resource

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(DataError) as e:
        safe_loads(blob, "p")
    refused(e.value)
    assert says in str(e.value) or says in str(e.value).lower()
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200_000   # KiB: nothing large


@pytest.fixture(scope="module")
def cifar_archive_bytes():
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name in CIFAR10._members():
            obj = ({"label_names": [f"c{i}" for i in range(10)]} if name == CIFAR10.meta_file
                   else {"data": np.full((2, 3072), 7, np.uint8), "labels": [1, 9]})
            payload = pickle.dumps(obj, protocol=2)
            info = tarfile.TarInfo(f"{CIFAR10.extracted}/{name}")
            info.size = len(payload)
            tf.addfile(info, io.BytesIO(payload))
    return buf.getvalue()


@SLOW
@given(data=st.data())
def test_cifar_archives_cut_or_damaged(tmp_path_factory, cifar_archive_bytes, data):
    blob = bytearray(cifar_archive_bytes)
    if data.draw(st.booleans()):
        blob[data.draw(st.integers(0, len(blob) - 1))] ^= data.draw(st.integers(1, 255))
    blob = blob[:data.draw(st.integers(0, len(blob)))]
    path = tmp_path_factory.mktemp("cifar") / "cifar-10-python.tar.gz"
    path.write_bytes(bytes(blob))
    try:
        arrays, meta = CIFAR10.decode([path])
    except DataError as e:
        refused(e)
        assert str(path) in str(e)
        return
    assert meta["classes"] == [f"c{i}" for i in range(10)]
    assert arrays["train_images"].shape == (10, 3, 32, 32) and arrays["train_labels"].tolist() == [1, 9] * 5
    assert (arrays["train_images"] == 7).all()


# ----------------------------------------------------------------------------------------- images
@pytest.fixture(scope="module")
def encoded_images():
    from PIL import Image

    rng = np.random.default_rng(0)
    arr = rng.integers(0, 256, (12, 10, 3), dtype=np.uint8)
    out = {}
    for fmt in ("PNG", "JPEG", "BMP", "GIF"):
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, format=fmt)
        out[fmt] = buf.getvalue()
    return out


@SLOW
@given(data=st.data())
def test_cut_or_damaged_images_load_intact_or_are_refused(tmp_path_factory, encoded_images, data):
    """Policy: a broken image is a DataError naming the file, never skipped and never padded; a file that
    still loads after a cut (only its trailer was lost) has exactly the pixels of the intact image."""
    from cnnlab.data.folder import read_image

    d = tmp_path_factory.mktemp("img")
    fmt = data.draw(st.sampled_from(sorted(encoded_images)))
    full = encoded_images[fmt]
    (d / "full.img").write_bytes(full)
    reference = read_image(d / "full.img", 8)
    blob = bytearray(full[:data.draw(st.integers(0, len(full)))])
    damaged = blob and data.draw(st.booleans())
    if damaged:
        blob[data.draw(st.integers(0, len(blob) - 1))] ^= 0xFF
    path = d / "cut.img"
    path.write_bytes(bytes(blob))
    try:
        arr = read_image(path, 8)
    except DataError as e:
        refused(e)
        assert str(path) in str(e)
        return
    assert arr.shape == (3, 8, 8) and arr.dtype == np.uint8
    if not damaged and fmt != "GIF":  # (GIF frames may end early by design)
        assert np.array_equal(arr, reference)


@FUZZ
@given(st.binary(max_size=200), st.sampled_from([1, 3]))
def test_random_bytes_as_image(tmp_path_factory, data, in_chans):
    from cnnlab.data.folder import read_image

    path = tmp_path_factory.mktemp("img") / "x.png"
    path.write_bytes(data)
    try:
        arr = read_image(path, 6, in_chans)
    except DataError as e:
        return refused(e)
    assert arr.shape == (in_chans, 6, 6)


# ------------------------------------------------------------------------------------- checkpoints
FIELDS = ["format", "version", "model_spec", "model", "ema", "epoch", "classes", "preprocess", "optimizer",
          "scheduler", "rng", "config", "metrics", "history", "callbacks", "phase", "cfg", "names", "imgsz",
          "letterbox", "train_time", "global_step", "task_state"]
TENSORS = st.builds(lambda n, dt: torch.zeros(n, dtype=dt), st.integers(0, 3),
                    st.sampled_from([torch.float32, torch.uint8, torch.int64, torch.bool]))
LEAVES = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(), st.text(max_size=6),
                   st.binary(max_size=4), TENSORS,
                   st.sampled_from(["cnnlab.classify", "cnnlab.detect", "lenet5", 1, 2, "[net]\n"]))
VALUES = st.recursive(LEAVES, lambda kids: st.one_of(
    st.lists(kids, max_size=3), st.tuples(kids, kids),
    st.dictionaries(st.one_of(st.sampled_from(["name", "num_classes", "in_chans", "img_size", "w", "mean",
                                               "state", "param_groups", "python", "torch", "numpy"]),
                              st.text(max_size=3), st.integers(0, 3)), kids, max_size=4)), max_leaves=8)
CHECKPOINTS = st.one_of(
    st.dictionaries(st.sampled_from(FIELDS), VALUES, max_size=8).map(
        lambda d: {"format": "cnnlab.classify", "version": 1, "model_spec": {"name": "lenet5"}, "model": {}, **d}),
    st.dictionaries(st.sampled_from(FIELDS), VALUES, max_size=8).map(
        lambda d: {"format": "cnnlab.detect", "version": 2, **d}),
    VALUES,
)


def _consume_classification(ckpt):
    """What the readers of a loaded checkpoint do with it: must not fail on a checked checkpoint."""
    from cnnlab.deploy.metadata import Preprocess
    from cnnlab.engine.checkpoint import describe_spec

    spec = ckpt["model_spec"]
    describe_spec(spec)
    pre = dict(ckpt.get("preprocess") or {})
    in_chans = int(pre.get("in_chans") or spec.get("in_chans", 3))
    pre.update(in_chans=in_chans, img_size=pre.get("img_size") or spec.get("img_size"),
               mean=list(pre.get("mean") or [0.0] * in_chans), std=list(pre.get("std") or [1.0] * in_chans))
    Preprocess.from_dict(pre)
    [str(c) for c in ckpt.get("classes") or range(spec.get("num_classes") or 0)]
    dict(ckpt.get("config") or {}), dict(ckpt.get("metrics") or {})
    int(ckpt.get("epoch", 0))


@SLOW
@given(CHECKPOINTS)
def test_random_checkpoints_load_or_refuse(tmp_path_factory, ckpt):
    from cnnlab.detect.checkpoint import load_detector_checkpoint
    from cnnlab.engine.checkpoint import check_checkpoint, load_checkpoint
    from cnnlab.sources.kinds import checkpoint_task

    path = tmp_path_factory.mktemp("ckpt") / "last.pt"
    torch.save(ckpt, path)
    try:
        checkpoint_task(path)
    except UserError as e:
        refused(e)
    try:
        loaded = load_checkpoint(path)
    except UserError as e:
        refused(e)
    else:
        _consume_classification(loaded)
        try:
            check_checkpoint(loaded, path, resumable=True)
        except UserError as e:
            refused(e)
    try:
        load_detector_checkpoint(path)
    except UserError as e:
        refused(e)


@SLOW
@given(st.data())
def test_damaged_checkpoint_files(tmp_path_factory, data):
    from cnnlab.engine.checkpoint import load_checkpoint, save_checkpoint
    from cnnlab.models import create_model

    path = tmp_path_factory.mktemp("ckpt") / "best.pt"
    m = create_model("lenet5", num_classes=2, in_chans=1, img_size=8)
    save_checkpoint(path, {"model_spec": m.cnnlab_spec, "model": m.state_dict(), "classes": ["a", "b"]})
    blob = bytearray(path.read_bytes())
    for _ in range(data.draw(st.integers(0, 3))):
        blob[data.draw(st.integers(0, len(blob) - 1))] = data.draw(st.integers(0, 255))
    path.write_bytes(bytes(blob[:data.draw(st.integers(0, len(blob)))]))
    try:
        ckpt = load_checkpoint(path)
    except UserError as e:
        return refused(e)
    _consume_classification(ckpt)


# ------------------------------------------------------------------------------------- run folders
JSONISH = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
                                 st.text(max_size=8)),
                       lambda kids: st.one_of(st.lists(kids, max_size=4),
                                              st.dictionaries(st.text(max_size=6), kids, max_size=4)),
                       max_leaves=12)


@FUZZ
@given(st.one_of(st.binary(max_size=200), st.text(max_size=200).map(str.encode),
                 JSONISH.map(lambda o: yaml.safe_dump(o).encode())))
def test_run_config_yaml(tmp_path_factory, raw):
    from cnnlab.runs import read_run_config

    run = tmp_path_factory.mktemp("run")
    (run / "config.yaml").write_bytes(raw)
    try:
        cfg = read_run_config(run)
    except UserError as e:
        return refused(e)
    assert isinstance(cfg, dict) and all(isinstance(k, str) for k in cfg)


@FUZZ
@given(st.one_of(st.binary(max_size=200), JSONISH.map(lambda o: json.dumps(o).encode())))
def test_run_metrics_json(tmp_path_factory, raw):
    from cnnlab.runs import read_run_metrics

    run = tmp_path_factory.mktemp("run")
    (run / "config.yaml").write_text("a: 1\n")
    (run / "metrics.json").write_bytes(raw)
    try:
        metrics = read_run_metrics(run)
    except UserError as e:
        return refused(e)
    assert isinstance(metrics, dict)
    json.dumps(metrics)  # plain data, finite depth


# --------------------------------------------------------------------------- the fuzz targets themselves
TARGETS = fuzz_targets()


def test_fuzz_targets_are_the_documented_ones():
    assert {"idx", "cifar_batch", "image_file", "checkpoint", "run_config"} <= set(TARGETS)
    assert all(callable(t) for t in TARGETS.values())


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_fuzz_target_lets_only_user_errors_through(name):
    target = TARGETS[name]

    @settings(max_examples=60, deadline=None, database=None)
    @given(st.binary(max_size=64))
    def run(data):
        try:
            target(data)
        except UserError as e:
            refused(e)

    run()
    for data in (b"", b"\0", b"\x01", b"\x01" + bytes(40), b"\x01" + b"\xff" * 40):  # both modes, no edits
        try:
            target(data)
        except UserError as e:
            refused(e)
