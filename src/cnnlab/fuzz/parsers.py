"""Fuzz targets for the parsers of dataset files, checkpoints and run folders.

``fuzz_targets()`` returns ``{name: target}``; ``target(data: bytes) -> None`` feeds ``data`` to one parser
and lets only :class:`cnnlab.errors.UserError` (and subclasses) escape: any other exception is a bug.

Each target reads its first byte as a mode: even feeds the rest to the parser as the raw file; odd turns
the rest into a *structured* input (a valid file of that kind, built from the bytes, then mutated by them:
bytes overwritten, inserted, the file truncated), which reaches the checks behind the header. Inputs are
kept small and one temporary folder per process is reused, so a call costs microseconds to a millisecond.

Targets: ``idx`` (MNIST idx files), ``cifar_batch`` (a CIFAR python pickle: restricted unpickler and batch
checks), ``cifar_archive`` (a CIFAR-10 ``.tar``/``.tar.gz``), ``image_file`` (one image of a folder
dataset), ``checkpoint`` (classification and detection ``.pt`` files, the source peek and the resume
checks), ``run_config`` (``config.yaml``) and ``run_metrics`` (``metrics.json``).
"""

from __future__ import annotations

import atexit
import io
import math
import pickle
import random
import shutil
import tarfile
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

_STATE: dict[str, Any] = {}


def fuzz_targets() -> dict[str, Callable[[bytes], None]]:
    """``{name: target}``: each target takes arbitrary bytes and raises nothing but UserError."""
    return {"idx": fuzz_idx, "cifar_batch": fuzz_cifar_batch, "cifar_archive": fuzz_cifar_archive,
            "image_file": fuzz_image_file, "checkpoint": fuzz_checkpoint, "run_config": fuzz_run_config,
            "run_metrics": fuzz_run_metrics}


# ----------------------------------------------------------------------------------------- helpers
def _workdir() -> Path:
    """One temporary folder per process (removed at exit), with a run folder layout inside."""
    d = _STATE.get("dir")
    if d is None or not d.is_dir():
        d = Path(tempfile.mkdtemp(prefix="cnnlab-fuzz-parsers-"))
        (d / "run" / "weights").mkdir(parents=True)
        atexit.register(shutil.rmtree, d, True)
        _STATE["dir"] = d
    return d


def _split(data: bytes) -> tuple[bool, bytes]:
    """(structured?, the rest): the first byte's low bit picks the mode."""
    return (bool(data[0] & 1), data[1:]) if data else (False, b"")


def _rng(data: bytes) -> random.Random:
    return random.Random(int.from_bytes(data[:8].ljust(8, b"\0"), "little"))


def mutate(blob: bytes, data: bytes) -> bytes:
    """Apply the edits that ``data`` (after its 8 seed bytes) spells, 3 bytes each, to ``blob``:
    overwrite a byte, insert a byte, truncate, or nothing (at most 8 edits)."""
    out = bytearray(blob)
    edits = data[8:32]
    for i in range(0, len(edits) - 2, 3):
        op, pos, val = edits[i], edits[i + 1], edits[i + 2]
        if not out:
            break
        at = (pos * len(out)) // 256 if len(out) > 256 else pos % len(out)
        if op % 4 == 0:
            out[at] = val
        elif op % 4 == 1:
            out.insert(at, val)
        elif op % 4 == 2 and op & 0x80:
            del out[at:]
    return bytes(out)


def _write(name: str, data: bytes) -> Path:
    path = _workdir() / name
    path.write_bytes(data)
    return path


# --------------------------------------------------------------------------------------------- idx
_IDX_CODES = (0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E)
_IDX_SIZES = {0x08: 1, 0x09: 1, 0x0B: 2, 0x0C: 4, 0x0D: 4, 0x0E: 8}


def _idx_bytes(data: bytes) -> bytes:
    r = _rng(data)
    code = r.choice(_IDX_CODES)
    dims = [r.choice((0, 1, 2, 3, 28, 2**31, 2**32 - 1)) if r.random() < 0.1 else r.randint(1, 4)
            for _ in range(r.randint(1, 4))]
    n = math.prod(dims) * _IDX_SIZES[code]
    payload = bytes(r.getrandbits(8) for _ in range(min(n, 256)))
    header = bytes([0, 0, code, len(dims)]) + b"".join(d.to_bytes(4, "big") for d in dims)
    blob = mutate(header + payload, data)
    if r.random() < 0.3:
        import gzip

        blob = mutate(gzip.compress(blob, mtime=0), data[::-1])
    return blob


def fuzz_idx(data: bytes) -> None:
    """An idx file (gzipped when it starts with the gzip magic) through ``read_idx``."""
    from cnnlab.data.idx import read_idx

    structured, rest = _split(data)
    arr = read_idx(_write("fuzz-idx", _idx_bytes(rest) if structured else rest))
    assert arr.size > 0


# ------------------------------------------------------------------------------------------- CIFAR
def _cifar_value(r: random.Random, n: int) -> Any:
    """A label list as the official files hold it, or something a broken file could hold instead."""
    import numpy as np

    pick = r.randrange(12)
    if pick < 5:
        return [r.randrange(10) for _ in range(n)]
    return [
        [r.randrange(-3, 200) for _ in range(n)],
        [2**63] + [0] * (n - 1), [2**64 + 1] * n, [1.5] * n, ["1"] * n, [True] * n,
        np.arange(n, dtype=r.choice((np.uint64, np.int8, np.float32))), np.ones(n, np.bool_),
    ][pick - 5]


def _cifar_batch_dict(r: random.Random) -> dict:
    import numpy as np

    n = r.randint(0, 3)
    shape = r.choice(((n, 3072), (n, 3072), (n, 3072), (n, 100), (n * 3072,), (n, 3, 32, 32)))
    dtype = r.choice((np.uint8, np.uint8, np.uint8, np.float32, np.int64))
    d: dict[Any, Any] = {b"batch_label": b"training batch 1 of 5", "data": np.zeros(shape, dtype),
                         "labels": _cifar_value(r, n), "fine_labels": _cifar_value(r, n),
                         "coarse_labels": _cifar_value(r, n)}
    if r.random() < 0.2:
        d[r.choice(("data", "labels", "fine_labels"))] = r.choice((None, 3, "x", [], {}, b"\0"))
    if r.random() < 0.2:
        d.pop(r.choice(list(d)))
    if r.random() < 0.2:
        d["label_names"] = r.choice(([f"c{i}" for i in range(10)], [b"a"] * 10, [1] * 10, ["a"]))
    return d


def _cifar_pickle(data: bytes) -> bytes:
    r = _rng(data)
    obj: Any = _cifar_batch_dict(r) if r.random() < 0.9 else r.choice(([], "x", None, {1: 2}))
    return mutate(pickle.dumps(obj, protocol=r.choice((2, 4, 5))), data)


def fuzz_cifar_batch(data: bytes) -> None:
    """One CIFAR batch pickle: the restricted unpickler, then the batch and class-name checks."""
    from cnnlab.data.cifar import CIFAR10, CIFAR100, _names, _normalise_keys
    from cnnlab.data.safe_pickle import safe_loads

    structured, rest = _split(data)
    blob = _cifar_pickle(rest) if structured else rest
    d = _normalise_keys(safe_loads(blob, "fuzz_batch"), "fuzz_batch")
    if "label_names" in d:
        _names(d, "label_names", 10, "fuzz_batch")
    images, labels, _ = (CIFAR100 if len(blob) % 2 else CIFAR10)._batch(d, "fuzz_batch")
    assert images.shape[1:] == (3, 32, 32) and len(labels) == len(images)


def _cifar_archive(data: bytes) -> bytes:
    import numpy as np

    from cnnlab.data.cifar import CIFAR10

    r = _rng(data)
    buf = io.BytesIO()
    mode = r.choice(("w", "w:gz"))
    with tarfile.open(fileobj=buf, mode=mode) as tf:
        members = list(CIFAR10._members())
        if r.random() < 0.2:
            members.pop(r.randrange(len(members)))
        for name in members:
            if name == CIFAR10.meta_file:
                obj: Any = {"label_names": [f"c{i}" for i in range(10)], "num_cases_per_batch": 1}
            else:
                obj = {"data": bytes(1) if r.random() < 0.05 else np.zeros((1, 3072), np.uint8),
                       "labels": [r.randrange(10) if r.random() < 0.95 else 2**63]}
            payload = pickle.dumps(obj, protocol=2)
            info = tarfile.TarInfo(f"{CIFAR10.extracted}/{name}")
            info.size = len(payload)
            tf.addfile(info, io.BytesIO(payload))
    return mutate(buf.getvalue(), data)


def fuzz_cifar_archive(data: bytes) -> None:
    """A CIFAR-10 archive (``.tar`` or ``.tar.gz``) through the whole decode."""
    from cnnlab.data.cifar import CIFAR10

    structured, rest = _split(data)
    path = _write("cifar-10-python.tar.gz", _cifar_archive(rest) if structured else rest)
    arrays, meta = CIFAR10.decode([path])
    assert len(arrays["train_images"]) == len(arrays["train_labels"]) and len(meta["classes"]) == 10


# ------------------------------------------------------------------------------------------ images
def _image_bytes(data: bytes) -> bytes:
    import numpy as np
    from PIL import Image

    r = _rng(data)
    fmt = r.choice(("PNG", "JPEG", "BMP", "GIF", "TIFF", "PPM", "WEBP"))
    mode = r.choice(("RGB", "L", "RGBA", "P", "1", "I;16")) if fmt in ("PNG", "TIFF") else \
        r.choice(("RGB", "L"))
    w, h = r.randint(1, 12), r.randint(1, 12)
    arr = np.frombuffer(r.randbytes(w * h * 3), np.uint8).reshape(h, w, 3)
    im = Image.fromarray(arr)
    im = im.convert(mode) if mode != "I;16" else Image.fromarray(arr[..., 0].astype(np.uint16) * 257)
    buf = io.BytesIO()
    try:
        im.save(buf, format=fmt)
    except (OSError, ValueError, KeyError):  # a format without this mode or codec: plain PNG
        buf = io.BytesIO()
        im.convert("RGB").save(buf, format="PNG")
    return mutate(buf.getvalue(), data)


def fuzz_image_file(data: bytes) -> None:
    """One image of a folder dataset through ``read_image`` (PIL's pixel limit lowered to 2**20 for the
    call, so a forged header cannot make a cheap input allocate gigabytes)."""
    from PIL import Image

    from cnnlab.data.folder import read_image

    structured, rest = _split(data)
    path = _write("fuzz-image.png", _image_bytes(rest) if structured else rest)
    limit = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = 2**20
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            in_chans = 1 if len(data) % 2 else 3
            arr = read_image(path, 8, in_chans)
    finally:
        Image.MAX_IMAGE_PIXELS = limit
    assert arr.shape == (in_chans, 8, 8)


# ------------------------------------------------------------------------------------- checkpoints
_TINY_CFG = ("[net]\nwidth=32\nheight=32\nchannels=3\n\n[convolutional]\nfilters=21\nsize=1\nstride=1\npad=1\n"
             "activation=linear\n\n[yolo]\nmask=0,1,2\nanchors=10,14, 23,27, 37,58\nclasses=2\nnum=3\n")

_PATHS = (("format",), ("version",), ("model",), ("model", "w"), ("model_spec",), ("model_spec", "name"),
          ("model_spec", "num_classes"), ("model_spec", "in_chans"), ("model_spec", "img_size"),
          ("model_spec", "kwargs"), ("classes",), ("preprocess",), ("preprocess", "mean"),
          ("preprocess", "img_size"), ("preprocess", "scale"), ("ema",), ("epoch",), ("optimizer",),
          ("optimizer", "param_groups"), ("optimizer", "state"), ("scheduler",), ("rng",), ("rng", "python"),
          ("rng", "torch"), ("rng", "numpy"), ("config",), ("metrics",), ("history",), ("callbacks",),
          ("callbacks", "ModelCheckpoint"), ("cfg",), ("names",), ("imgsz",), ("letterbox",), ("phase",),
          ("global_step",), ("train_time",), ("task_state",), ("ema_updates",), ("init",))


def _values() -> list[Any]:
    import torch

    return [None, True, False, 0, 1, -1, 2, 2**63, 2**64, 10**40, 1.5, -0.0, float("nan"), float("inf"), "",
            "1", "abc", "cnnlab.classify", "cnnlab.detect", "lenet5", b"x", [], [1], ["a", "b"], [0.5],
            (1, 2), [32, 32], {}, {"a": 1}, {1: 2}, {"state": {}, "param_groups": [1]}, torch.zeros(3),
            torch.zeros((), dtype=torch.uint8), torch.zeros(2, dtype=torch.float16), {"w": torch.zeros(2)},
            {"w": 1}, [torch.zeros(1)], _TINY_CFG, "[net]\n", "[convolutional]\nfilters=x\n"]


def _templates() -> dict[str, Any]:
    """A small valid classification and detection checkpoint, and their files' bytes."""
    if "ckpt" not in _STATE:
        import torch

        from cnnlab.darknet.cfg import parse_cfg_text
        from cnnlab.darknet.model import DarknetModel
        from cnnlab.engine.checkpoint import rng_state

        torch.manual_seed(0)
        det = DarknetModel(parse_cfg_text(_TINY_CFG))
        classify = {"format": "cnnlab.classify", "version": 1,
                    "model_spec": {"name": "lenet5", "num_classes": 2, "in_chans": 1, "img_size": 8},
                    "model": {"w": torch.zeros(2)}, "ema": None, "ema_updates": 0, "classes": ["a", "b"],
                    "preprocess": {"mean": [0.5], "std": [0.25], "img_size": 8, "in_chans": 1},
                    "optimizer": {"state": {}, "param_groups": [{"lr": 0.1, "params": [0]}]},
                    "scheduler": {"last_epoch": 1}, "scaler": None, "epoch": 1, "global_step": 3,
                    "train_time": 0.5, "rng": rng_state(), "config": {"epochs": 2}, "metrics": {"loss": 1.0},
                    "history": [{"epoch": 1, "loss": 1.0}], "phase": 1, "task_state": {"phase": 1},
                    "callbacks": {"ModelCheckpoint": {"best": 0.5, "best_epoch": 1}}}
        detect = {"format": "cnnlab.detect", "version": 2, "cfg": _TINY_CFG,
                  "model": {k: v.detach().clone() for k, v in det.state_dict().items()}, "ema": None,
                  "names": ["a", "b"], "imgsz": [32, 32], "letterbox": True, "epoch": 1, "init": {}}
        files = {}
        for name, ckpt in (("classify", classify), ("detect", detect)):
            buf = io.BytesIO()
            torch.save(ckpt, buf)
            files[name] = buf.getvalue()
        _STATE["ckpt"] = {"classify": classify, "detect": detect, "files": files, "values": _values()}
    return _STATE["ckpt"]


def _edited_checkpoint(data: bytes) -> tuple[str, Any]:
    """A copy of a template checkpoint with fields replaced or removed as ``data`` says."""
    t = _templates()
    r = _rng(data)
    kind = r.choice(("classify", "detect"))
    obj: Any = _copy(t[kind])
    values = t["values"]
    for _ in range(r.randint(1, 3)):
        path = r.choice(_PATHS)
        parent = obj
        for key in path[:-1]:
            parent = parent.get(key) if isinstance(parent, dict) else None
        if not isinstance(parent, dict):
            continue
        action = r.randrange(5)
        if action == 0:
            parent.pop(path[-1], None)
        elif action == 1:
            parent[path[-1]] = {"w": r.choice(values)}
        else:
            parent[path[-1]] = r.choice(values)
    if r.random() < 0.05:
        obj = r.choice(values)
    return kind, obj


def _copy(obj: Any) -> Any:
    """Copy the dicts and lists of a template (its tensors and tuples are shared, never edited)."""
    if isinstance(obj, dict):
        return {k: _copy(v) for k, v in obj.items()}
    return [_copy(v) for v in obj] if isinstance(obj, list) else obj


def fuzz_checkpoint(data: bytes) -> None:
    """A ``.pt`` file through the classification and detection loaders, the source peek (memory-mapped)
    and the resume checks. Structured inputs are template checkpoints with fields replaced by other types
    (saved with ``torch.save``), or a template file's bytes mutated."""
    import torch

    from cnnlab.detect.checkpoint import load_detector_checkpoint
    from cnnlab.engine.checkpoint import check_checkpoint, load_checkpoint
    from cnnlab.errors import UserError
    from cnnlab.sources.kinds import checkpoint_task

    structured, rest = _split(data)
    path = _workdir() / "run" / "weights" / "last.pt"
    kind = "classify" if len(rest) % 2 else "detect"
    if not structured:
        path.write_bytes(rest)
    elif rest[:1] and rest[0] & 1:
        kind = "classify" if rest[0] & 2 else "detect"
        path.write_bytes(mutate(_templates()["files"][kind], rest[1:]))
    else:
        kind, obj = _edited_checkpoint(rest)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.save(obj, path)
    try:
        task = checkpoint_task(path)
    except UserError:
        task = kind
    if task == "classify":
        check_checkpoint(load_checkpoint(path), path, resumable=True)
    else:
        load_detector_checkpoint(path)


# ------------------------------------------------------------------------------------- run folders
_CONFIG_TEXT = (b"dataset: digits\nmodel: lenet5\nepochs: 2\nbatch: 64\nlr: 0.003\noptimizer: adam\n"
                b"dataset_options: {}\nseed: 0\naugment: [flip, crop]\nname: exp\n")
_METRICS_TEXT = (b'{"dataset": "digits", "epochs": 2, "test_accuracy": 0.93, "best_epoch": 2, '
                 b'"test": {"accuracy": 0.93, "per_class_accuracy": {"0": 1.0}}}\n')


def fuzz_run_config(data: bytes) -> None:
    """``config.yaml`` of a run folder through ``read_run_config``."""
    from cnnlab.runs import read_run_config

    structured, rest = _split(data)
    _write("run/config.yaml", mutate(_CONFIG_TEXT, rest) if structured else rest)
    assert isinstance(read_run_config(_workdir() / "run"), dict)


def fuzz_run_metrics(data: bytes) -> None:
    """``metrics.json`` of a run folder through ``read_run_metrics``."""
    from cnnlab.runs import read_run_metrics

    structured, rest = _split(data)
    _write("run/config.yaml", _CONFIG_TEXT)
    _write("run/metrics.json", mutate(_METRICS_TEXT, rest) if structured else rest)
    assert isinstance(read_run_metrics(_workdir() / "run"), dict)
