"""Inference backends for ``Detector``: torch, opencv (cv2.dnn) and onnxruntime, in a registry.

A backend turns a preprocessed blob (float32 NCHW, RGB, /255) into raw model outputs and says
which ``output_format`` they are in (see ``cnnlab.detect.processing``). Adding a backend is one
``@register_backend("name")`` class plus one test.
"""

from __future__ import annotations

from collections.abc import Callable

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
    """Instantiate backend ``name`` for a resolved detector; ``imgsz`` is the requested network input.

    ``device``: auto, cpu, cuda, cuda:N or mps (`cnnlab.devices`). ``threads`` caps the CPU threads of
    the backend (None: the library's default).
    """
    from cnnlab.devices import runtime_device

    cls = backend_class(name)
    cls.check_source(source)
    return cls(source, imgsz, runtime_device(device, cls.name), threads)


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

    def infer(self, blob: np.ndarray) -> list[np.ndarray]:  # pragma: no cover - interface
        raise NotImplementedError


@register_backend("torch")
class TorchBackend(Backend):
    """PyTorch: the cfg interpreted as a ``DarknetModel`` (Darknet files or a cnnlab checkpoint),
    batch norms folded into the convolutions for inference. ``threads`` sets torch's (global) count."""

    runs_onnx = False

    def __init__(self, source: Resolved, imgsz: ImageSize | None, device: str = "cpu",
                 threads: int | None = None) -> None:
        import torch

        from cnnlab.devices import resolve_device

        super().__init__(source, imgsz, device, threads)
        if threads is not None:
            torch.set_num_threads(threads)
        self.torch_device = resolve_device(device)   # a device that is not there is a UserError
        self.model = source.model.fuse().to(self.torch_device)
        self.output_format = source.output_format or "darknet"   # "boxes": a two-stage model decodes itself

    def infer(self, blob: np.ndarray) -> list[np.ndarray]:
        import torch

        with torch.inference_mode():
            outs = self.model(torch.from_numpy(blob).to(self.torch_device))
        return [o[0].float().cpu().numpy() for o in outs]


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

    def infer(self, blob: np.ndarray) -> list[np.ndarray]:
        return list(self.session.run(None, {self.input_name: blob}))
