"""Every example of README.md and docs/*.md runs as written (issue 16).

Each markdown file is one test: its fenced ``cnnlab ...`` commands run in order, in-process, in a
sandbox folder holding the files the docs name (``digit.png``, ``yolo.cfg``, ``data.yaml``,
``cifar.yaml``, ``runs/classify/exp``...), small ones made here; ``../shared/data`` and ``$D`` are the
real data root (``$CNNLAB_DATA``). Long commands run with a fast override appended (the option wins
over the one written: ``--epochs 1 --subset 256 --test-limit 200`` for training, ``--iters 3`` for
benchmarks, ``--max-frames 10`` for streams...; see FAST) — documented in docs/training.md. The default
suite runs the fast commands; ``-m slow`` also runs the slow ones (torch.compile, the demo, detection
on the real models). A command that needs something absent (a camera, TensorRT, a PostgreSQL server,
network weights, CIFAR-100) is skipped, and the test says which and why (a warning per file).
Python blocks run the same way when they are self-contained; fragments that use names defined
elsewhere (``x``, ``ds``...) are reported as such.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
import shutil
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

from _docs import Example, doc_files, examples
from conftest import shared_data_root

# (pattern on the command, why it cannot run here): checked before running
NEEDS = [
    (r"--pretrained hub", "ImageNet weights from the timm hub (network)"),
    (r"cifar100", "CIFAR-100 (not in the data root)"),
    (r"^stream 0\b", "a camera (device 0)"),
    (r"postgresql://", "a PostgreSQL server"),
    (r"journal:///shared/", "a file system shared by several machines, mounted at /shared"),
    (r"--resume runs/classify/exp --nproc", "a run trained with --nproc 2 (the runner's exp is a one-process run)"),
    (r"tensorrt", "TensorRT (a Jetson or a GPU)"),
    (r"yolov4-tiny|yolov3-tiny\.weights", "YOLOv4-tiny / YOLOv3-tiny weights (`cnnlab weights get`, network)"),
    (r"annotations/instances_val2017|VOC2007", "COCO val2017 / VOC2007 annotations"),
    (r"^datasets download", "the network (an explicit download)"),
    (r"^weights get (cifar10|mnist|fashion-mnist)-fast|^predict (cifar10|mnist|fashion-mnist)-fast",
     "a fast recipe's published weights (`cnnlab weights get`, network)"),
    (r"--devices|--device cuda", "GPUs (CUDA)"),
    (r"VOCdevkit|VOC2012", "the Pascal VOC 2012 segmentation data"),
]
# real data each needs, by pattern
DATA = [(r"mnist|\bexp\b", "mnist"), (r"cifar10\b|cifar\.yaml|backbones|my_cnn", "cifar10"),
         (r"\$D|\.\./shared/data|yolo-fastest", "yolo"), (r"fmnist", "fashion-mnist")]
# commands run only with -m slow (minutes on 2 cores)
SLOW = [r"--nproc", r"^demo\b", r"--runtimes \S*compile", r"^benchmark timm/", r"^detect-eval \.\./shared", r"--workers 2",
        r"mobilenet_025", r"unfreeze-epochs 20"]
# the fast override per command (appended: the last value of an option wins)
FAST = {
    "train": ["--epochs", "1", "--subset", "256", "--test-limit", "200", "--threads", "1", "--batch", "64"],
    "compare": ["--epochs", "1", "--subset", "200"],
    "tune": ["--trials", "2"],
    "ablate": ["--folds", "2"],
    "benchmark": ["--iters", "3", "--min-time", "0.01"],
    "detect-train": ["--epochs", "1", "--imgsz", "64"],
    "stream": ["--max-frames", "10"],
    "sweep": ["--limit", "4"],
    "speedrun": ["--seeds", "2", "epochs=1", "subset=256", "test_limit=200", "threads=1", "batch=64"],
    "lr-find": ["--steps", "20"],
    "localize-train": ["--epochs", "1", "--synthetic-train", "128", "--synthetic-val", "32"],
    "segment-train": ["--epochs", "1", "--synthetic-train", "64", "--synthetic-val", "16"],
}


def _fast(args: list[str], resumed: dict[str, int]) -> list[str]:
    cmd = args[0]
    if cmd in ("train", "detect-train") and "--resume" in args:  # a resumed run may change only its length:
        run = args[args.index("--resume") + 1]                   # one epoch more each time
        resumed[run] = resumed.get(run, 1) + 1
        return args + ["--epochs", str(resumed[run])]
    extra = list(FAST.get(cmd, []))
    if cmd == "train" and "--unfreeze-epochs" in args:
        extra += ["--unfreeze-epochs", "1"]
    return args + extra


# ------------------------------------------------------------------------------------------ sandbox
def _png(path: Path, shape: tuple[int, ...], seed: int) -> None:
    from PIL import Image

    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, shape, dtype=np.uint8)).save(path)


def _build_sandbox(base: Path, data_root: Path | None) -> Path:
    """The files the docs name, small; returns the working folder (``base/work``)."""
    import cv2

    import cnnlab
    from cnnlab.detect.synthetic import random_yolo_files, synthetic_scene
    from cnnlab.detect.train.scenes import write_scene_clip, write_scene_dataset
    from cnnlab.io import write_yaml

    work = base / "work"
    work.mkdir(parents=True)
    if data_root is not None:  # ../shared/data as in a checkout beside the data
        (base / "shared").mkdir()
        (base / "shared" / "data").symlink_to(data_root)
    from cnnlab.data import load_dataset

    digit = load_dataset("digits", split="test").images[7, 0].numpy()
    cv2.imwrite(str(work / "digit.png"), cv2.resize(digit, (28, 28), interpolation=cv2.INTER_NEAREST))
    for name, seed in (("cat.png", 1), ("dog.jpg", 2), ("cat.jpg", 3)):
        _png(work / name, (32, 32, 3), seed)
    for name, seed in (("img.jpg", 1), ("street.jpg", 2), ("image.jpg", 3)):
        cv2.imwrite(str(work / name), synthetic_scene(seed=seed))
    (work / "photos").mkdir()
    for i in range(2):
        cv2.imwrite(str(work / "photos" / f"p{i}.jpg"), synthetic_scene(seed=10 + i))
    # a random tiny YOLO with the 80 COCO classes, as yolo.cfg / yolo.weights / coco.names
    cfg, weights, _ = random_yolo_files(work, "yolov3-tiny", num_classes=80, img_size=64, width_mult=0.125,
                                        seed=0, stem="yolo")
    names = [f"class{i}" for i in range(80)]
    if data_root is not None and (data_root / "yolo" / "coco.names").is_file():
        names = (data_root / "yolo" / "coco.names").read_text().split("\n")[:80]
    (work / "coco.names").write_text("\n".join(names) + "\n")
    # coco128/images (and images/train2017, as the real one): three labelled images in the YOLO layout
    for split in ("", "train2017"):
        for sub in ("images", "labels"):
            (work / "coco128" / sub / split).mkdir(parents=True, exist_ok=True)
        for i in range(3):
            cv2.imwrite(str(work / "coco128" / "images" / split / f"{i}.jpg"), synthetic_scene(seed=20 + i))
            (work / "coco128" / "labels" / split / f"{i}.txt").write_text("0 0.5 0.5 0.3 0.4\n")
    shapes = write_scene_dataset(work / "shapes", n_train=16, n_val=8, size=64, seed=0)
    shutil.copy(shapes, work / "data.yaml")
    text = (work / "data.yaml").read_text()
    if "path:" in text:
        text = re.sub(r"(?m)^path:.*$", f"path: {work / 'shapes'}", text)
    else:
        text = f"path: {work / 'shapes'}\n" + text
    (work / "data.yaml").write_text(text)
    with contextlib.redirect_stderr(io.StringIO()):  # OpenCV's notes about the container's codec tag
        write_scene_clip(work / "clip.mp4", frames=12, height=96, width=128, seed=1)
    shutil.copy(work / "clip.mp4", work / "video.mp4")
    # configs the docs pass
    write_yaml(work / "cifar.yaml", {"dataset": "cifar10", "model": "cifar10_cnn", "epochs": 50, "batch": 64,
                                     "optimizer": "adam", "lr": 1e-3, "subset": 256, "test_limit": 200})
    write_yaml(work / "config.yaml", {"dataset": "digits", "model": "lenet5", "epochs": 1, "batch": 64,
                                      "threads": 1, "verbose": 0, "test_eval": False})
    shutil.copy(work / "config.yaml", work / "c.yaml")           # docs/scaling.md's config
    for name, seed in (("photo.jpg", 4), ("photo.png", 5)):      # docs/tasks.md's photos
        cv2.imwrite(str(work / name), synthetic_scene(seed=seed))
    (work / "my_images").mkdir()                                 # a folder of images with YOLO labels beside
    for i in range(2):
        cv2.imwrite(str(work / "my_images" / f"{i}.jpg"), synthetic_scene(seed=30 + i))
        (work / "my_images" / f"{i}.txt").write_text("0 0.5 0.5 0.3 0.4\n")
    write_yaml(work / "space.yaml", {"lr": {"grid": [1e-3, 3e-3]}})
    write_yaml(work / "factors.yaml", {"augmentation": {"on": {"augment": {"rotation_range": 10}},
                                                        "off": {"augment": None}}})
    write_yaml(work / "backbones.yaml", {"name": "backbones", "shared": {
        "dataset": "cifar10", "subset": 200, "epochs": 1, "batch": 64, "test_limit": 200, "threads": 1},
        "entries": ["lenet5", "cifar10_cnn"]})
    write_yaml(work / "aug.yaml", {"horizontal_flip": True, "crop_padding": 4})
    _keras_h5(work / "my_cnn.h5")
    # runs the docs read: runs/classify/exp (LeNet-5 on MNIST, or digits without the data root)
    fast = {"epochs": 1, "batch": 64, "threads": 1, "verbose": 0, "test_limit": 200, "project": str(work / "runs")}
    mnist = data_root is not None and (data_root / "mnist").is_dir()
    exp = cnnlab.train(dataset="mnist" if mnist else "digits", model="lenet5", subset=512, name="exp", **fast)
    shutil.copytree(exp.run_dir / "weights", work / "weights")
    cnnlab.export(exp.run_dir, output=work / "best.onnx", check_samples=0)
    if data_root is not None and (data_root / "cifar10").is_dir():  # model.onnx: a CIFAR-10 classifier
        c10 = cnnlab.train(dataset="cifar10", model="lenet5", subset=256, name="c10", **fast)
        cnnlab.export(c10.run_dir, output=work / "model.onnx", check_samples=0)
    if data_root is not None and (data_root / "fashion-mnist").is_dir():
        cnnlab.train(dataset="fashion_mnist", model="lenet5", subset=256, name="fmnist", **fast)
    # a detection run
    from cnnlab.tasks.detect.run import train_detector

    train_detector(work / "data.yaml", model="yolov3-tiny", imgsz=64, epochs=1, batch=8, verbose=0,
                   project=str(work / "runs"), name="exp", width_mult=0.125)
    from cnnlab.detect.export import export_detector

    export_detector(cfg, weights, output=work / "yolo.onnx", names=names, check=False)
    return work


def _keras_h5(path: Path) -> None:
    """A small Keras-2 CIFAR-10 CNN file (32x32x3 -> 10), laid out as ``model.save('my_cnn.h5')``."""
    import json

    import h5py

    rng = np.random.default_rng(0)
    layers = [
        {"class_name": "Conv2D", "config": {"name": "conv", "filters": 4, "kernel_size": [3, 3], "strides": [2, 2],
                                            "padding": "same", "activation": "relu", "use_bias": True,
                                            "batch_input_shape": [None, 32, 32, 3]}},
        {"class_name": "Flatten", "config": {"name": "flat"}},
        {"class_name": "Dense", "config": {"name": "dense", "units": 10, "activation": "softmax"}},
    ]
    weights = {"conv": {"kernel": rng.normal(size=(3, 3, 3, 4)), "bias": np.zeros(4)},
               "dense": {"kernel": rng.normal(size=(16 * 16 * 4, 10)) * 0.01, "bias": np.zeros(10)}}
    with h5py.File(path, "w") as f:
        f.attrs["model_config"] = json.dumps({"class_name": "Sequential",
                                              "config": {"name": "my_cnn", "layers": layers}}).encode()
        f.attrs["keras_version"] = b"2.15.0"
        f.attrs["backend"] = b"tensorflow"
        g = f.create_group("model_weights")
        g.attrs["layer_names"] = [ly["config"]["name"].encode() for ly in layers]
        for ly in layers:
            n = ly["config"]["name"]
            lg = g.create_group(n)
            arrays = weights.get(n, {})
            lg.attrs["weight_names"] = [f"{n}/{k}:0".encode() for k in arrays]
            for k, v in arrays.items():
                lg.create_dataset(f"{n}/{k}:0", data=np.asarray(v, dtype="f4"))


@pytest.fixture(scope="session")
def sandbox_base(tmp_path_factory):
    root = shared_data_root()
    old = Path.cwd()
    base = tmp_path_factory.mktemp("docs-sandbox")
    env = {"CNNLAB_DATA": str(root)} if root is not None else {}
    with _env(env):
        work = _build_sandbox(base, root)
    os.chdir(old)
    return work, root


@contextlib.contextmanager
def _env(values: dict[str, str]):
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# ------------------------------------------------------------------------------------------ running
def _args(ex: Example) -> list[str] | None:
    lex = shlex.shlex(ex.text, posix=True)
    lex.whitespace_split, lex.commenters = True, "#"
    args = list(lex)[1:]
    if any(p in a for a in args for p in ("...", "…", "<", "COMMAND")):
        return None
    return args


def _why_not(line: str, data_root: Path | None) -> str | None:
    for pattern, why in NEEDS:
        if re.search(pattern, line):
            return f"needs {why}"
    for pattern, what in DATA:
        if re.search(pattern, line) and (data_root is None or not (data_root / what).exists()):
            return f"needs {what} in the data root (CNNLAB_DATA)"
    return None


def _run_cli(args: list[str]) -> tuple[int, str, str]:
    from cnnlab.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(args)
    return code, out.getvalue(), err.getvalue()


def _docs_case(doc: Path, sandbox_base, tmp_path, monkeypatch, slow: bool) -> None:
    work0, root = sandbox_base
    work = tmp_path / "work"
    shutil.copytree(work0, work, symlinks=True)
    if (work0.parent / "shared").exists():
        (tmp_path / "shared").symlink_to((work0.parent / "shared").resolve())
    monkeypatch.chdir(work)
    if root is not None:
        monkeypatch.setenv("CNNLAB_DATA", str(root))
        monkeypatch.setenv("D", str(root))
    failures, skipped, ran, resumed = [], [], 0, {}
    SETUP.get(doc.name, lambda w: None)(work)
    for ex in examples(doc):
        if ex.kind == "file":  # cat > NAME <<'EOF' ... EOF
            name, content = ex.text.split("\n", 1)
            (work / name).write_text(content)
            continue
        if ex.kind != "command":
            continue
        args = _args(ex)
        if args is None:
            skipped.append(f"{ex.where}: `{ex.text}`: a template (placeholders)")
            continue
        line = " ".join(args)
        why = _why_not(line, root)
        if why:
            skipped.append(f"{ex.where}: `{ex.text}`: {why}")
            continue
        if not slow and any(re.search(p, line) for p in SLOW):
            continue
        args = [os.path.expandvars(a) for a in _fast(args, resumed)]
        start = time.perf_counter()
        code, out, err = _run_cli(args)
        print(f"{time.perf_counter() - start:6.1f}s  {ex.where}: cnnlab {' '.join(args)}")
        ran += 1
        if code != 0:
            failures.append(f"{ex.where}: cnnlab {' '.join(args)}\n    -> exit {code}: {(err or out).strip()[-400:]}")
    if skipped:
        warnings.warn(f"{doc.name}: {len(skipped)} example(s) not run here:\n  " + "\n  ".join(skipped),
                      stacklevel=1)
    assert not failures, f"{len(failures)} of {ran} examples failed:\n" + "\n".join(failures)


def _no_detect_runs(work: Path) -> None:
    shutil.rmtree(work / "runs" / "detect", ignore_errors=True)


def _saved_predictions(work: Path) -> None:
    """detect-eval.md scores the predictions.json of an earlier `detect-eval` run (runs/detect/exp)."""
    from cnnlab.detect.detector import Detector
    from cnnlab.detect.evaluate import detect_eval

    _no_detect_runs(work)
    detect_eval("data.yaml", detector=Detector(cfg="yolo.cfg", weights="yolo.weights", device="cpu"),
                project="runs", name="exp")


def _experiments(work: Path) -> None:
    """report.md reports a comparison (runs/compare/backbones) and a search (runs/tune/lr)."""
    from cnnlab.experiments.compare import compare
    from cnnlab.experiments.tune import tune

    compare("backbones.yaml", project="runs")
    tune("config.yaml", "space.yaml", sampler="grid", project="runs", name="lr")


# per-document preparation beyond the shared sandbox
SETUP = {"detect-train.md": _no_detect_runs, "detect-eval.md": _saved_predictions, "report.md": _experiments}

DOCS = [d for d in doc_files() if any(e.kind == "command" for e in examples(d))]


@pytest.mark.parametrize("doc", DOCS, ids=lambda d: d.name)
def test_docs_commands_run(doc, sandbox_base, tmp_path, monkeypatch):
    _docs_case(doc, sandbox_base, tmp_path, monkeypatch, slow=False)


@pytest.mark.slow
@pytest.mark.parametrize("doc", DOCS, ids=[d.name for d in DOCS])
def test_docs_commands_run_slow_ones_too(doc, sandbox_base, tmp_path, monkeypatch):
    _docs_case(doc, sandbox_base, tmp_path, monkeypatch, slow=True)


# ------------------------------------------------------------------------------------------ Python blocks
# names the fragments use that a reader has from earlier code (the docs say what they are)
def _seed_names(work: Path) -> dict[str, object]:
    import torch

    from cnnlab.data import load_dataset
    from cnnlab.detect.data import load_detection_dataset
    from cnnlab.models import create_model

    samples, names = load_detection_dataset(str(work / "data.yaml"))
    return {"x": np.zeros((1, 1, 28, 28), np.float32), "rgb_uint8_image": np.zeros((28, 28, 3), np.uint8),
            "ds": load_dataset("digits"), "samples": samples, "predictions": {}, "names": names,
            "my_module": create_model("lenet5", num_classes=10, in_chans=1, img_size=28), "torch": torch}


PY_SLOW = [r"load_dataset\(\"cifar10\", \"train\"\)\s*#", r"train_detector\(\"data.yaml\", model=\"yolov3-tiny\"",
           r"yolov3\(num_classes=80"]
PY_NEEDS = [*NEEDS, (r"Pipeline\(det, 0", "a camera (device 0)"), (r"device=\"cuda", "a GPU (CUDA)")]
LISTINGS = {"architecture.md"}  # API contracts written as signatures, not examples
LISTING_NAMES = {"state_dict"}  # checkpoint layouts written as dict displays (training.md, detect.md)


def _fast_api(monkeypatch) -> None:
    """The fast override for Python examples: training for one epoch on a subset, two trials, three
    timed calls (the keyword a block passes is replaced)."""
    import functools

    import cnnlab
    import cnnlab.detect.train as detect_train
    import cnnlab.experiments.speedrun as speedrun_mod
    import cnnlab.experiments.tune as tune_mod
    import cnnlab.tasks.localize.run as localize_run
    import cnnlab.tasks.segment.run as segment_run
    from cnnlab.api import train, train_detector
    from cnnlab.deploy.benchmark import benchmark
    from cnnlab.experiments.speedrun import speedrun
    from cnnlab.experiments.tune import tune

    resumed: dict[str, int] = {}
    localize_train, segment_train = localize_run.train_localizer, segment_run.train_segmenter

    def fast_train(*args, **kw):
        if kw.get("resume") is not None:
            run = str(kw["resume"])
            resumed[run] = resumed.get(run, 1) + 1
            return train(*args, **{**kw, "epochs": resumed[run]})
        return train(*args, **{**kw, "epochs": 1, "subset": 256, "test_limit": 200, "threads": 1})

    def fast_detector(*args, **kw):
        if kw.get("resume") is not None:
            return train_detector(*args, **{**kw, "epochs": 2})
        return train_detector(*args, **{**kw, "epochs": 1})

    for mod, name, fn in ((cnnlab, "train", fast_train), (cnnlab, "train_detector", fast_detector),
                          (detect_train, "train_detector", fast_detector),
                          (cnnlab, "benchmark", functools.partial(benchmark, iters=3)),
                          (cnnlab, "tune", lambda *a, **k: tune(*a, **{**k, "trials": 2})),
                          (tune_mod, "tune", lambda *a, **k: tune(*a, **{**k, "trials": 2})),
                          (speedrun_mod, "speedrun", lambda *a, **k: speedrun(*a, **{
                              **k, "seeds": 2, "epochs": 1, "subset": 256, "test_limit": 200, "threads": 1})),
                          (localize_run, "train_localizer", lambda *a, **k: localize_train(*a, **{
                              **k, "epochs": 1, "synthetic_train": 128, "synthetic_val": 32})),
                          (segment_run, "train_segmenter", lambda *a, **k: segment_train(*a, **{
                              **k, "epochs": 1, "synthetic_train": 64, "synthetic_val": 16}))):
        monkeypatch.setattr(mod, name, fn)


def _statements(code: str) -> list[tuple[str, str | None]]:
    """Top-level statements with the exception a comment on their line says they raise (``# ModelError``)."""
    import ast

    tree = ast.parse(code)
    lines = code.splitlines()
    out = []
    for node in tree.body:
        src = ast.get_source_segment(code, node) or ""
        tail = lines[node.end_lineno - 1] if node.end_lineno else ""
        m = re.search(r"#\s*(\w+Error)\b", tail)
        out.append((src, m.group(1) if m else None))
    return out


def _run_python(ex: Example, ns: dict[str, object]) -> str | None:
    """None when the block ran; else why it did not (an exception is re-raised as a failure)."""
    import textwrap

    code = textwrap.dedent(ex.text)
    try:
        stmts = _statements(code)
    except SyntaxError:
        return "skip: a listing, not Python"
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for src, expected in stmts:
            try:
                exec(compile(src, ex.where, "exec"), ns)  # noqa: S102 - the docs' own example code
            except NameError as e:
                if e.name in LISTING_NAMES:
                    return f"skip: a format listing (uses {e.name!r})"
                return f"fail: NameError: {e} (add the import or the line that defines it)"
            except Exception as e:
                if expected and type(e).__name__ == expected:
                    continue
                return f"fail: {type(e).__name__}: {str(e).strip()[:300]}"
    return None


def _docs_python(doc: Path, sandbox_base, tmp_path, monkeypatch, slow: bool) -> None:
    from cnnlab.models import registry

    work0, root = sandbox_base
    work = tmp_path / "work"
    shutil.copytree(work0, work, symlinks=True)
    monkeypatch.chdir(work)
    if root is not None:
        monkeypatch.setenv("CNNLAB_DATA", str(root))
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))  # a block may register a model
    monkeypatch.setattr(registry, "_ALIASES", dict(registry._ALIASES))
    SETUP_PY.get(doc.name, lambda w: None)(work)
    _fast_api(monkeypatch)
    failures, skipped, ran = [], [], []
    for ex in examples(doc):
        if ex.kind != "python":
            continue
        why = next((f"needs {w}" for p, w in PY_NEEDS if re.search(p, ex.text, re.I)), None)
        if why is None and root is None:
            why = "needs the data root (CNNLAB_DATA)"
        if why:
            skipped.append(f"{ex.where}: {why}")
            continue
        if not slow and any(re.search(p, ex.text) for p in PY_SLOW):
            continue
        result = _run_python(ex, {**_seed_names(work), "__name__": "__docs__"})
        ran.append(ex.where)
        if result and result.startswith("skip: "):
            skipped.append(f"{ex.where}: {result[6:]}")
        elif result:
            failures.append(f"{ex.where}: {result[6:]}")
    if skipped:
        warnings.warn(f"{doc.name}: {len(skipped)} Python block(s) not run:\n  " + "\n  ".join(skipped),
                      stacklevel=1)
    assert not failures, "\n".join(failures)
    print(f"{doc.name}: ran the Python blocks at {', '.join(ran) or 'none'}")


def _python_setup_report(work: Path) -> None:
    from cnnlab.experiments.ablate import ablate

    ablate("config.yaml", factors="factors.yaml", folds=2, project="runs", name="aug")


SETUP_PY = {"report.md": _python_setup_report, "detect-eval.md": _saved_predictions}
PY_DOCS = [d for d in doc_files() if d.name not in LISTINGS and any(e.kind == "python" for e in examples(d))]


@pytest.mark.parametrize("doc", PY_DOCS, ids=lambda d: d.name)
def test_docs_python_runs(doc, sandbox_base, tmp_path, monkeypatch):
    _docs_python(doc, sandbox_base, tmp_path, monkeypatch, slow=False)


@pytest.mark.slow
@pytest.mark.parametrize("doc", PY_DOCS, ids=[d.name for d in PY_DOCS])
def test_docs_python_runs_slow_ones_too(doc, sandbox_base, tmp_path, monkeypatch):
    _docs_python(doc, sandbox_base, tmp_path, monkeypatch, slow=True)
