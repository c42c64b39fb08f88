"""Inference backends for ``Detector``: torch, opencv (cv2.dnn) and onnxruntime, in a registry.

A backend turns a preprocessed blob (float32 NCHW, RGB, /255) into raw model outputs and says
which ``output_format`` they are in (see ``cnnlab.detect.processing``). Adding a backend is one
``@register_backend("name")`` class plus one test.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np

from cnnlab.detect.source import ModelSource, onnx_metadata
from cnnlab.errors import UserError

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


def create_backend(name: str, source: ModelSource, imgsz_hw: tuple[int, int] | None, device: str = "cpu",
                   threads: int | None = None) -> Backend:
    """Instantiate backend ``name`` for ``source``; an unknown name is a UserError.

    ``threads`` caps the CPU threads of the backend (None: the library's default).
    """
    key = name.lower().replace("-", "").replace("_", "")
    key = {"cv2": "opencv", "ort": "onnxruntime", "pytorch": "torch"}.get(key, key)
    if key not in _BACKENDS:
        raise UserError(f"unknown backend {name!r} (available: {', '.join(_BACKENDS)})")
    if threads is not None and threads < 1:
        raise UserError(f"threads must be >= 1, got {threads}")
    return _BACKENDS[key](source, imgsz_hw, device, threads)


class Backend:
    """Base class: loads the model in ``__init__``; ``infer(blob)`` returns raw outputs."""

    name = "base"
    output_format = "darknet"

    def __init__(self, source: ModelSource, imgsz_hw: tuple[int, int] | None, device: str = "cpu",
                 threads: int | None = None) -> None:
        self.source = source
        self.device = device
        self.threads = threads
        self.names: list[str] | None = None          # names stored with the model, if any
        self.native_hw: tuple[int, int] | None = None  # input size the model was made for
        self.fixed_hw: tuple[int, int] | None = None   # input size the model only accepts (static ONNX)
        self.letterbox: bool | None = None            # preprocessing stored with the model, if any
        self.num_classes: int | None = None

    def infer(self, blob: np.ndarray) -> list[np.ndarray]:  # pragma: no cover - interface
        raise NotImplementedError


def _load_torch_model(source: ModelSource, backend: Backend):
    """The ``DarknetModel`` of a Darknet or checkpoint source (sets names/native size on ``backend``)."""
    from cnnlab.darknet.model import load_darknet
    from cnnlab.detect.checkpoint import load_detector_checkpoint

    if source.checkpoint is not None:
        model, names, imgsz, letterbox = load_detector_checkpoint(source.checkpoint)
        backend.names, backend.letterbox = names or None, letterbox
        backend.native_hw = (int(imgsz[1]), int(imgsz[0]))
    elif source.cfg is not None:
        model = load_darknet(source.cfg, source.weights)
        backend.native_hw = (model.height, model.width)
    else:
        raise UserError(f"the {backend.name} backend needs a Darknet cfg+weights or a cnnlab checkpoint, "
                        f"not {source.describe()}; use --backend onnxruntime or opencv for ONNX files")
    if not model.yolo_indices:
        raise UserError(f"{source.describe()}: the network has no [yolo] layer, so it is not a detector")
    backend.num_classes = model.num_classes
    return model


@register_backend("torch")
class TorchBackend(Backend):
    """PyTorch: the cfg interpreted as a ``DarknetModel`` (Darknet files or a cnnlab checkpoint),
    batch norms folded into the convolutions for inference. ``threads`` sets torch's (global) count."""

    output_format = "darknet"

    def __init__(self, source: ModelSource, imgsz_hw: tuple[int, int] | None, device: str = "cpu",
                 threads: int | None = None) -> None:
        import torch

        super().__init__(source, imgsz_hw, device, threads)
        if threads is not None:
            torch.set_num_threads(threads)
        try:
            self.torch_device = torch.device(device)
        except RuntimeError:
            raise UserError(f"invalid device {device!r} (e.g. cpu, cuda, cuda:0)") from None
        if self.torch_device.type == "cuda" and not torch.cuda.is_available():
            raise UserError("device cuda requested but CUDA is not available; use --device cpu")
        self.model = _load_torch_model(source, self).fuse().to(self.torch_device)

    def infer(self, blob: np.ndarray) -> list[np.ndarray]:
        import torch

        with torch.inference_mode():
            outs = self.model(torch.from_numpy(blob).to(self.torch_device))
        return [o[0].float().cpu().numpy() for o in outs]


def opencv_major() -> int:
    import cv2

    return int(cv2.__version__.split(".")[0])


@register_backend("opencv")
class OpenCVBackend(Backend):
    """OpenCV DNN: ``readNetFromDarknet`` (OpenCV 4.x only) or ``readNetFromONNX``.

    Darknet cfgs are given to OpenCV with ``thresh=0`` in each [yolo] section, so its outputs keep
    every class score (OpenCV otherwise zeroes scores below 0.2) and the usual ``conf`` applies.
    A cnnlab checkpoint is handed over as Darknet cfg + weights written in memory.
    """

    output_format = "darknet"

    def __init__(self, source: ModelSource, imgsz_hw: tuple[int, int] | None, device: str = "cpu",
                 threads: int | None = None) -> None:
        import cv2

        super().__init__(source, imgsz_hw, device, threads)
        if threads is not None:
            cv2.setNumThreads(threads)
        if device != "cpu":
            raise UserError("the opencv backend runs on the CPU here; use --device cpu (or the torch/"
                            "onnxruntime backend for a GPU)")
        if source.onnx is not None:
            self.net = _read_onnx_cv2(source.onnx)
            self.output_format = _onnx_format(source.onnx, self)[0]
        else:
            if opencv_major() >= 5:
                raise UserError(f"OpenCV {cv2.__version__} has no Darknet importer (dropped in OpenCV 5): use "
                                "--backend torch or onnxruntime, or install opencv-python-headless<5")
            from cnnlab.darknet.weights import darknet_weights_bytes

            model = _load_torch_model(source, self)  # validates the cfg/weights with clear errors
            weights = darknet_weights_bytes(model) if source.weights is None else source.weights.read_bytes()
            cfg_text = _cfg_for_opencv(model)
            try:
                self.net = cv2.dnn.readNetFromDarknet(np.frombuffer(cfg_text.encode(), np.uint8),
                                                      np.frombuffer(weights, np.uint8))
            except cv2.error as e:
                raise UserError(f"OpenCV could not read {source.describe()}: {_cv2_msg(e)}") from None
        self.net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
        self.net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
        self.out_names = list(self.net.getUnconnectedOutLayersNames())
        if source.onnx is None:  # Darknet: [yolo] outputs in cfg order ("yolo_16", "yolo_23", ...)
            self.out_names.sort(key=lambda n: int(n.rsplit("_", 1)[-1]) if n.rsplit("_", 1)[-1].isdigit() else 0)

    def infer(self, blob: np.ndarray) -> list[np.ndarray]:
        self.net.setInput(blob)
        outs = self.net.forward(self.out_names)
        return [np.asarray(o) for o in outs]


def _cv2_msg(e: Exception) -> str:
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    return lines[-1] if lines else type(e).__name__


def _cfg_for_opencv(model) -> str:
    """The model's cfg with ``thresh=0`` in every [yolo] section (no score zeroing in OpenCV)."""
    from cnnlab.darknet.cfg import format_cfg

    sections = [type(s)(s.type, dict(s.options), s.line) for s in model.sections]
    for s in sections:
        if s.type == "yolo":
            s.options["thresh"] = "0"
    return format_cfg(sections)


def _read_onnx_cv2(path):
    import cv2

    try:
        return cv2.dnn.readNetFromONNX(str(path))
    except cv2.error as e:
        raise UserError(f"OpenCV could not read {path}: {_cv2_msg(e)}") from None


def _onnx_format(path, backend: Backend) -> tuple[str, dict[str, str]]:
    """Output format, names, letterbox and static input size of an ONNX file (from metadata/shape)."""
    from cnnlab.detect.names import names_from_yaml_obj
    from cnnlab.detect.processing import guess_format

    meta = onnx_metadata(path)
    shape = json.loads(meta.get("_input_shape", "[]"))
    if len(shape) == 4 and shape[2] and shape[3]:
        backend.fixed_hw = backend.native_hw = (int(shape[2]), int(shape[3]))
    if "names" in meta:
        try:
            backend.names = names_from_yaml_obj(_loads_names(meta["names"]), f"{path} metadata")
        except UserError:
            backend.names = None
    if "letterbox" in meta:
        backend.letterbox = meta["letterbox"].strip().lower() in ("true", "1")
    fmt = meta.get("cnnlab_format", "")
    out_shape = json.loads(meta.get("_output_shape", "[]"))
    if backend.names:
        backend.num_classes = len(backend.names)
    elif len(out_shape) == 3 and all(out_shape[1:]):
        # a foreign export without names: the class count follows from the output layout
        fmt = fmt or guess_format(tuple(out_shape))
        n = out_shape[2] - 5 if fmt == "yolov5" else out_shape[1] - 4
        backend.num_classes = n if n >= 1 else None
    return fmt, meta


def _loads_names(text: str):
    """Names metadata: JSON (cnnlab) or a Python-dict literal (Ultralytics writes ``{0: 'person', ...}``)."""
    import ast

    try:
        return json.loads(text)
    except json.JSONDecodeError:
        try:
            return ast.literal_eval(text)
        except (ValueError, SyntaxError):
            raise UserError("unreadable names metadata") from None


@register_backend("onnxruntime")
class OnnxRuntimeBackend(Backend):
    """ONNX Runtime: an .onnx file, or a Darknet/checkpoint model exported in memory (YOLOv5 layout)."""

    output_format = "yolov5"

    def __init__(self, source: ModelSource, imgsz_hw: tuple[int, int] | None, device: str = "cpu",
                 threads: int | None = None) -> None:
        import onnxruntime as ort

        super().__init__(source, imgsz_hw, device, threads)
        options = ort.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        providers = ["CPUExecutionProvider"]
        if device.startswith("cuda"):
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise UserError("device cuda requested but onnxruntime has no CUDA provider here; use --device cpu")
            providers.insert(0, "CUDAExecutionProvider")
        if source.onnx is not None:
            fmt, _ = _onnx_format(source.onnx, self)
            self.output_format = fmt
            model_arg: object = str(source.onnx)
        else:
            from cnnlab.detect.export import onnx_bytes_of

            model = _load_torch_model(source, self)
            hw = imgsz_hw or self.native_hw or (model.height, model.width)
            model_arg = onnx_bytes_of(model, (hw[1], hw[0]), None)
            self.fixed_hw = hw
        try:
            self.session = ort.InferenceSession(model_arg, sess_options=options, providers=providers)
        except Exception as e:  # onnxruntime raises its own exception types for bad files
            raise UserError(f"onnxruntime could not load {source.describe()}: {str(e).splitlines()[0]}") from None
        self.input_name = self.session.get_inputs()[0].name

    def infer(self, blob: np.ndarray) -> list[np.ndarray]:
        return list(self.session.run(None, {self.input_name: blob}))
