"""Inference backends for ``Detector``: torch, opencv (cv2.dnn) and onnxruntime, in a registry.

A backend turns a preprocessed blob (float32 NCHW, RGB, /255) into raw model outputs and says
which ``output_format`` they are in (see ``cnnlab.detect.processing``). Adding a backend is one
``@register_backend("name")`` class plus one test.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from cnnlab.detect.types import ImageSize
from cnnlab.errors import UserError
from cnnlab.sources import Located, Resolved

_BACKENDS: dict[str, type[Backend]] = {}


def register_backend(name: str) -> Callable[[type[Backend]], type[Backend]]:
    """Class decorator adding a backend under ``name``."""

    def deco(cls: type[Backend]) -> type[Backend]:
        cls.name = name
        _BACKENDS[name] = cls
        return cls

    return deco


def list_backends() -> list[str]:
    return list(_BACKENDS)


def backend_class(name: str) -> type[Backend]:
    """The backend registered as ``name`` (aliases: cv2, ort, pytorch); an unknown name is a UserError."""
    key = name.lower().replace("-", "").replace("_", "")
    key = {"cv2": "opencv", "ort": "onnxruntime", "pytorch": "torch"}.get(key, key)
    if key not in _BACKENDS:
        raise UserError(f"unknown backend {name!r} (available: {', '.join(_BACKENDS)})")
    return _BACKENDS[key]


def create_backend(name: str, source: Resolved, imgsz: ImageSize | None = None, device: str = "cpu",
                   threads: int | None = None) -> Backend:
    """Instantiate backend ``name`` (or ``auto``: `auto_backend`) for a resolved detector; ``imgsz`` is
    the requested network input.

    ``device``: auto, cpu, cuda, cuda:N or mps (`cnnlab.devices`). ``threads`` caps the CPU threads of
    the backend (None: the backend's choice; for torch a probe, see `TorchBackend`).
    """
    from cnnlab.devices import runtime_device

    if name.strip().lower() == "auto":
        return auto_backend(source, imgsz, device, threads)
    cls = backend_class(name)
    cls.check_source(source)
    return cls(source, imgsz, runtime_device(device, cls.name), threads)


def _installed(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def opencv_runs_as_is(source: Resolved) -> bool:
    """True when OpenCV's Darknet importer runs this model with the same outputs as the torch backend:
    OpenCV 4.x, [yolo] heads ([region] adds OpenCV's own NMS), no dilation, no strided shortcut."""
    import warnings

    if not _installed("cv2") or source.kind == "onnx":
        return False
    import cv2

    if int(cv2.__version__.split(".")[0]) >= 5:
        return False
    model = source.model
    sections = getattr(model, "sections", None)
    if model is None or sections is None or any(s.type == "region" for s in sections):
        return model is None and source.kind == "darknet"   # a cfg only OpenCV builds
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            check_opencv_darknet(sections, model)
    except (UserError, UserWarning):
        return False
    return True


def auto_choices(source: Resolved, device: str = "auto") -> list[tuple[str, str]]:
    """The backends ``auto`` tries for ``source``, fastest first, each with why (docs/detect.md).

    On the CPU: a Darknet-family model OpenCV runs as is -> opencv (the fastest measured on these
    models, and its thread pool keeps its speed on a busy machine), then onnxruntime (the model
    exported in memory), then torch; an ONNX file -> onnxruntime, then opencv; a two-stage model
    (Faster R-CNN) -> torch (its export takes seconds and fixes the input size; export it once with
    ``export-detector`` to run it on ONNX Runtime). On a GPU (``device`` cuda/auto with CUDA present):
    torch (onnxruntime first for an ONNX file when it has CUDA).
    """
    from cnnlab.devices import runtime_device

    gpu = runtime_device(device, "torch") != "cpu" if source.model is not None else False
    ort, cv = _installed("onnxruntime"), _installed("cv2")
    out: list[tuple[str, str]] = []
    if source.kind == "onnx":
        if ort:
            out.append(("onnxruntime", "an ONNX file: ONNX Runtime is its reference runtime"))
        if cv:
            out.append(("opencv", "an ONNX file and no onnxruntime installed" if not ort else
                        "ONNX Runtime could not open it"))
        return out
    if source.model is None:
        return [("opencv", "a Darknet cfg only OpenCV builds")]
    if gpu:
        out.append(("torch", f"a {runtime_device(device, 'torch')} device: torch runs the model there"))
    if getattr(source.model, "two_stage", False):
        return out or [("torch", "a two-stage model: exporting it to ONNX takes seconds and fixes its input "
                                 "size (export-detector does it once)")]
    if opencv_runs_as_is(source) and (not gpu):
        out.append(("opencv", "a Darknet cfg: OpenCV DNN is the fastest CPU runtime for it"))
    if ort and not gpu:
        out.append(("onnxruntime", "the model exports to ONNX and OpenCV cannot run it as is"))
    if not gpu:
        out.append(("torch", "neither OpenCV nor ONNX Runtime runs this model here"))
    return out


def auto_backend(source: Resolved, imgsz: ImageSize | None = None, device: str = "auto",
                 threads: int | None = None) -> Backend:
    """The first backend of `auto_choices` that builds for ``source`` (``backend.reason`` says why)."""
    from cnnlab.devices import runtime_device

    errors = []
    for name, why in auto_choices(source, device):
        cls = _BACKENDS[name]
        try:
            cls.check_source(source)
            backend = cls(source, imgsz, runtime_device(device, name), threads)
        except Exception as e:   # e.g. an export ONNX cannot express: the next candidate runs it
            errors.append(f"{name}: {str(e).splitlines()[0] if str(e) else type(e).__name__}")
            continue
        backend.reason = "auto: " + why
        return backend
    raise UserError("no backend can run " + source.describe() + (": " + "; ".join(errors) if errors else ""))


class Backend:
    """Base class: builds its runtime from a resolved detector in ``__init__``; ``infer(blob)`` returns
    raw outputs. Names, native input size and letterbox come with the model (``self.source``)."""

    name = "base"
    output_format = "darknet"
    runs_onnx = True    # can open a detector ONNX file (else: needs the DarknetModel)

    @classmethod
    def check_source(cls, source: Located | Resolved) -> None:
        """Refuse a model this backend cannot run, before anything is loaded."""
        if source.kind == "onnx" and not cls.runs_onnx:
            raise UserError(f"the {cls.name} backend needs a Darknet cfg+weights or a cnnlab checkpoint, "
                            f"not {source.describe()}; use --backend onnxruntime or opencv for ONNX files")

    def __init__(self, source: Resolved, imgsz: ImageSize | None, device: str = "cpu",
                 threads: int | None = None) -> None:
        if threads is not None and threads < 1:
            raise UserError(f"threads must be >= 1, got {threads}")
        self.source = source
        self.device = device
        self.threads = threads
        self.fixed_size: ImageSize | None = source.imgsz if source.fixed_imgsz else None  # the only size it runs
        self.reason = ""   # why this backend (set by ``auto``)

    def threads_used(self) -> int:
        """CPU threads the backend computes with."""
        return int(self.threads or 1)

    def describe(self) -> str:
        """One line: the backend, why (auto), its device and CPU threads."""
        n = self.threads_used()
        why = f" ({self.reason})" if self.reason else ""
        where = f", {self.device}" if self.device != "cpu" else f", {n} thread{'s' * (n != 1)}"
        return f"backend {self.name}{why}{where}"

    def infer(self, blob: np.ndarray) -> list[np.ndarray]:  # pragma: no cover - interface
        raise NotImplementedError


@register_backend("torch")
class TorchBackend(Backend):
    """PyTorch: the cfg interpreted as a ``DarknetModel`` (Darknet files or a cnnlab checkpoint).

    Inference runs on a *copy* of the model with every batch norm folded into its convolution (the
    user's model is left as it was), under ``torch.inference_mode``. On the CPU the thread count and
    the memory format are picked by a short probe when the backend is built (:func:`tune_cpu`): a few
    timed runs with 1 thread and with one thread per physical core, NCHW and ``channels_last``; the
    fastest wins. One thread per physical core is what torch uses by default, and it collapses when
    another process keeps the cores busy (OpenMP threads wait for a preempted sibling at every layer:
    250 ms instead of 18 ms per Yolo-Fastest image on this 2-core box with a training run beside it);
    the probe sees that and takes 1 thread. ``threads`` fixes the count (only the format is probed).
    torch's thread count is process-wide, so each ``infer`` sets the backend's count and puts the
    process's back afterwards (50 us): a training run in the same process keeps its threads.
    """

    runs_onnx = False

    def __init__(self, source: Resolved, imgsz: ImageSize | None, device: str = "cpu",
                 threads: int | None = None) -> None:
        import torch

        from cnnlab.devices import resolve_device

        super().__init__(source, imgsz, device, threads)
        self.torch_device = resolve_device(device)   # a device that is not there is a UserError
        self.model = fused_copy(source.model).to(self.torch_device)
        self.output_format = source.output_format or "darknet"   # "boxes": a two-stage model decodes itself
        self.channels_last = False
        self.probe: dict[str, float] = {}
        if self.torch_device.type == "cpu":
            size = imgsz or source.imgsz or ImageSize(416, 416)
            self.threads, self.channels_last, timings = tune_cpu(self.model, (size.height, size.width), threads)
            self.probe = {f"{n} thread{'s' * (n > 1)}{', channels_last' * cl}": ms for (n, cl), ms in timings.items()}
            if self.channels_last:
                self.model = self.model.to(memory_format=torch.channels_last)

    def infer(self, blob: np.ndarray) -> list[np.ndarray]:
        import torch

        x = torch.from_numpy(blob).to(self.torch_device)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        before = torch.get_num_threads()
        if self.threads and self.torch_device.type == "cpu" and before != self.threads:
            torch.set_num_threads(self.threads)
        try:
            with torch.inference_mode():
                outs = self.model(x)
        finally:
            if torch.get_num_threads() != before:
                torch.set_num_threads(before)
        return [o[0].float().cpu().numpy() for o in outs]

    def describe(self) -> str:
        fmt = ", channels_last" if self.channels_last else ""
        return f"{super().describe()}, conv+BN fused{fmt}"


def fused_copy(model: Any) -> Any:
    """An eval-mode deep copy of ``model`` with batch norms folded into the convolutions before them
    (``model.fuse()`` where the model has one, as ``DarknetModel``; else torch.fx's conv+BN fusion);
    ``model`` itself is not changed."""
    import copy

    m = copy.deepcopy(model).eval()
    if hasattr(m, "fuse"):
        m.fuse()
        return m
    try:
        from torch.fx.experimental.optimization import fuse

        return fuse(m).eval()
    except Exception:   # not traceable by torch.fx: run unfused (same outputs, a little slower)
        return m


def physical_cores() -> int:
    """Physical cores this process may run on (hyper-threads counted once; the affinity mask honoured)."""
    import os

    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))
    cores = set()
    for c in cpus:
        try:
            base = f"/sys/devices/system/cpu/cpu{c}/topology/"
            with open(base + "core_id") as f1, open(base + "physical_package_id") as f2:
                cores.add((f2.read().strip(), f1.read().strip()))
        except OSError:
            cores.add(("", str(c)))
    return max(1, len(cores))


def tune_cpu(model: Any, hw: tuple[int, int], threads: int | None = None, runs: int = 3,
             budget_s: float = 1.5) -> tuple[int, bool, dict[tuple[int, bool], float]]:
    """The (threads, channels_last, {candidate: ms}) that run ``model`` fastest on a (1, 3, *hw) input now.

    Candidates: ``threads`` if given, else 1 and one per physical core (`physical_cores`); NCHW and
    channels_last. Each is timed ``runs`` times after one warm-up, the median kept (a candidate already
    2x slower than the best is not timed further, so a collapsing one costs little). A model whose one
    single-threaded run takes more than ``budget_s`` / 8 is not probed (the probe would take too long):
    it gets one thread per physical core and channels_last (oneDNN's fast layout for big convolutions).
    Puts torch's thread count back as it found it; sets one inter-op thread (when torch still allows it).
    """
    import contextlib

    import torch

    with contextlib.suppress(RuntimeError):   # only allowed before the process's first parallel work
        torch.set_num_interop_threads(1)       # one forward at a time: no inter-op pool needed
    phys = physical_cores()
    counts = [int(threads)] if threads else sorted({1, phys})
    before = torch.get_num_threads()
    try:
        return _probe(model, hw, counts, runs, budget_s)
    finally:
        torch.set_num_threads(before)


def _probe(model: Any, hw: tuple[int, int], counts: list[int], runs: int, budget_s: float
           ) -> tuple[int, bool, dict[tuple[int, bool], float]]:
    import statistics
    import time

    import torch

    x = torch.zeros(1, int(getattr(model, "channels", 3)), *hw)   # a grey Darknet cfg takes 1 channel
    torch.set_num_threads(counts[0])
    with torch.inference_mode():
        t0 = time.perf_counter()
        model(x)                                    # first run: allocations, oneDNN primitive creation
        first = time.perf_counter() - t0
        if first > budget_s / 8:
            return counts[-1], True, {}
        timings: dict[tuple[int, bool], float] = {}
        best = float("inf")
        for cl in (False, True):
            m = model.to(memory_format=torch.channels_last if cl else torch.contiguous_format)
            xi = x.contiguous(memory_format=torch.channels_last) if cl else x
            for n in counts:
                torch.set_num_threads(n)
                ts = []
                for k in range(runs + 1):   # run 0 warms up (a new layout builds its kernels)
                    t = time.perf_counter()
                    m(xi)
                    ts.append(time.perf_counter() - t)
                    if ts[-1] > (5 if k == 0 else 2) * best:   # clearly slower: stop timing it
                        break
                timed = ts[1:] or ts
                timings[(n, cl)] = statistics.median(timed) * 1e3
                best = min(best, statistics.median(timed))
        model.to(memory_format=torch.contiguous_format)
    choice = min(timings, key=lambda k: (timings[k], k))   # ties: fewer threads, NCHW
    return choice[0], choice[1], timings


@register_backend("opencv")
class OpenCVBackend(Backend):
    """OpenCV DNN: ``readNetFromDarknet`` (OpenCV 4.x only) or ``readNetFromONNX``.

    Darknet cfgs are given to OpenCV with ``thresh=0`` in each [yolo]/[region] section, so its outputs
    keep every class score (OpenCV otherwise zeroes scores below 0.2) and the usual ``conf`` applies.
    (OpenCV's [region] layer also runs its own per-class NMS at IoU 0.4, which the cfg cannot turn off.)
    A cnnlab checkpoint is handed over as Darknet cfg + weights written in memory; a cfg cnnlab does not
    build (``source.model`` None) as the files themselves. Known OpenCV deviations are checked first
    (:func:`check_opencv_darknet`).
    """

    def __init__(self, source: Resolved, imgsz: ImageSize | None, device: str = "cpu",
                 threads: int | None = None) -> None:
        import cv2

        super().__init__(source, imgsz, device, threads)
        if threads is not None:
            cv2.setNumThreads(threads)
        if getattr(source.model, "two_stage", False):
            raise UserError(f"the opencv backend runs Darknet cfgs and YOLO ONNX files, not the two-stage "
                            f"{source.model.arch}; use --backend torch or onnxruntime")
        if device != "cpu":
            raise UserError("the opencv backend runs on the CPU here; use --device cpu (or the torch/"
                            "onnxruntime backend for a GPU)")
        if source.kind == "onnx":
            try:
                self.net = cv2.dnn.readNetFromONNX(str(source.path))
            except cv2.error as e:
                raise UserError(f"OpenCV could not read {source.path}: {_cv2_msg(e)}") from None
            self.output_format = source.output_format
        elif getattr(source.model, "anchor_free", False):   # no Darknet form: its ONNX export, in memory
            from cnnlab.detect.export import onnx_bytes_of

            self.fixed_size = imgsz or source.imgsz
            data = onnx_bytes_of(source.model, self.fixed_size, None)
            self.net = cv2.dnn.readNetFromONNX(np.frombuffer(data, np.uint8))
            self.output_format = "yolov5"
        else:
            if int(cv2.__version__.split(".")[0]) >= 5:
                raise UserError(f"OpenCV {cv2.__version__} has no Darknet importer (dropped in OpenCV 5): use "
                                "--backend torch or onnxruntime, or install opencv-python-headless<5")
            from cnnlab.darknet.cfg import read_cfg
            from cnnlab.darknet.weights import darknet_weights_bytes

            model = source.model
            if model is None:  # a Darknet cfg cnnlab does not build: OpenCV reads the files alone
                sections = read_cfg(source.path)
                weights = source.weights.read_bytes()
            else:
                sections = model.sections
                weights = darknet_weights_bytes(model) if source.weights is None else source.weights.read_bytes()
            check_opencv_darknet(sections, model)
            cfg_text = _cfg_for_opencv(sections)
            try:
                self.net = cv2.dnn.readNetFromDarknet(np.frombuffer(cfg_text.encode(), np.uint8),
                                                      np.frombuffer(weights, np.uint8))
            except cv2.error as e:
                raise UserError(f"OpenCV could not read {source.describe()}: {_cv2_msg(e)}") from None
        self.net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
        self.net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
        self.out_names = list(self.net.getUnconnectedOutLayersNames())
        if source.kind != "onnx" and self.output_format == "darknet":  # [yolo] outputs in cfg order
            self.out_names.sort(key=lambda n: int(n.rsplit("_", 1)[-1]) if n.rsplit("_", 1)[-1].isdigit() else 0)

    def threads_used(self) -> int:
        import cv2

        return int(self.threads or cv2.getNumThreads())

    def infer(self, blob: np.ndarray) -> list[np.ndarray]:
        self.net.setInput(blob)
        outs = self.net.forward(self.out_names)
        return [np.asarray(o) for o in outs]


def _cv2_msg(e: Exception) -> str:
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    return lines[-1] if lines else type(e).__name__


def _cfg_for_opencv(sections) -> str:
    """The cfg with ``thresh=0`` in every [yolo]/[region] section (no score zeroing in OpenCV)."""
    from cnnlab.darknet.cfg import format_cfg

    sections = [type(s)(s.type, dict(s.options), s.line) for s in sections]
    for s in sections:
        if s.type in ("yolo", "region"):
            s.options["thresh"] = "0"
    return format_cfg(sections)


def check_opencv_darknet(sections, model=None) -> None:
    """What OpenCV's Darknet importer gets wrong, before it runs: a shortcut between outputs of different
    sizes is an error (its Eltwise layer asserts equal shapes at the first frame), ``dilation`` a warning
    (it reads no ``dilation``: the outputs differ from Darknet's and the torch backend's)."""
    import warnings

    for i, s in enumerate(sections[1:]):
        if s.type in ("convolutional", "conv"):
            dil, size = s.options.get("dilation", "1").strip(), s.options.get("size", "1").strip()
            if dil not in ("", "1") and size not in ("", "1"):
                warnings.warn(f"{s.where('dilation')}: OpenCV's Darknet importer ignores dilation={dil}; the opencv "
                              "backend's outputs differ from Darknet's and the torch backend's (no parity)",
                              UserWarning, stacklevel=3)
        if s.type == "shortcut" and model is not None:
            out = model.shapes[i]
            for j in model.layers[i].sources:
                src = model.shapes[j]
                if (src.h, src.w) != (out.h, out.w):
                    raise UserError(f"{s.where()} (layer {i}): OpenCV cannot add outputs of different sizes "
                                    f"({src.w}x{src.h} from layer {j} to {out.w}x{out.h}; Darknet's strided "
                                    "shortcut); use --backend torch or onnxruntime")


@register_backend("onnxruntime")
class OnnxRuntimeBackend(Backend):
    """ONNX Runtime: an .onnx file, or a Darknet/checkpoint model exported in memory (YOLOv5 layout)."""

    output_format = "yolov5"

    def __init__(self, source: Resolved, imgsz: ImageSize | None, device: str = "cpu",
                 threads: int | None = None) -> None:
        from cnnlab.deploy.providers import create_session

        super().__init__(source, imgsz, device, threads)
        if source.model is None:  # an ONNX file
            self.output_format = source.output_format
            model_arg: object = str(source.path)
        elif getattr(source.model, "two_stage", False):  # Faster R-CNN, exported in memory at a fixed size
            from cnnlab.detect.twostage import onnx_bytes_of_two_stage

            self.fixed_size = imgsz or source.imgsz
            self.output_format = "boxes"
            model_arg = onnx_bytes_of_two_stage(source.model, tuple(self.fixed_size))
        else:  # a DarknetModel, exported in memory at the size asked for
            from cnnlab.detect.export import onnx_bytes_of

            self.fixed_size = imgsz or source.imgsz
            model_arg = onnx_bytes_of(source.model, self.fixed_size, None)
        self.session = create_session(model_arg, "cuda" if device.startswith("cuda") else "cpu", threads)
        self.input_name = self.session.get_inputs()[0].name

    def threads_used(self) -> int:
        n = int(self.session.get_session_options().intra_op_num_threads)
        return n or physical_cores()   # 0: ONNX Runtime's default, one per physical core

    def infer(self, blob: np.ndarray) -> list[np.ndarray]:
        return list(self.session.run(None, {self.input_name: blob}))
