"""ONNX Runtime execution providers and session options (CPU here; CUDA/TensorRT on a Jetson or GPU box)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cnnlab.errors import UserError, first_line
from cnnlab.paths import cache_dir

# short names users type -> ONNX Runtime provider names
PROVIDER_ALIASES = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "trt": "TensorrtExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
    "dnnl": "DnnlExecutionProvider",
    "xnnpack": "XnnpackExecutionProvider",
    "coreml": "CoreMLExecutionProvider",
    "dml": "DmlExecutionProvider",
    "acl": "ACLExecutionProvider",
    "armnn": "ArmNNExecutionProvider",
}
# order used by providers="auto": fastest first, CPU always last
AUTO_ORDER = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "OpenVINOExecutionProvider",
              "DnnlExecutionProvider", "CoreMLExecutionProvider", "DmlExecutionProvider",
              "CPUExecutionProvider"]


def available_providers() -> list[str]:
    """Providers compiled into the installed onnxruntime (``onnxruntime-gpu`` on a Jetson adds CUDA/TensorRT)."""
    import onnxruntime as ort

    return list(ort.get_available_providers())


def resolve_providers(providers: str | Sequence[str] | None = None, *, trt_fp16: bool | None = None,
                      trt_int8: bool = False, trt_cache_dir: str | os.PathLike | None = None,
                      device_id: int = 0) -> list[Any]:
    """Turn ``"tensorrt,cuda,cpu"`` / ``["cuda"]`` / ``"auto"`` / None into ONNX Runtime's provider list.

    None means ``$CNNLAB_PROVIDERS`` if set (so ``cnnlab predict/evaluate m.onnx`` use a Jetson's GPU
    without extra flags), else CPU only. ``auto`` takes every available accelerator, fastest first. CPU is
    always appended as the fallback for operators an accelerator cannot run. TensorRT: FP16 kernels
    (``trt_fp16``, default ``$CNNLAB_TRT_FP16``), INT8 (for QDQ models), and an engine cache
    (``trt_cache_dir``, default ``$CNNLAB_TRT_CACHE`` or ``~/.cache/cnnlab/trt-engines``): building
    engines takes minutes on a Jetson, the cache makes later starts fast.
    """
    if providers is None:
        providers = os.environ.get("CNNLAB_PROVIDERS") or None
    if trt_fp16 is None:
        trt_fp16 = os.environ.get("CNNLAB_TRT_FP16", "").strip().lower() in ("1", "true", "yes", "on")
    avail = available_providers()
    items = providers.split(",") if isinstance(providers, str) else list(providers or ())
    given = {p[0]: p[1] for p in items if isinstance(p, tuple)}  # entries passed already as (name, options)
    items = [p for p in (p[0] if isinstance(p, tuple) else str(p).strip() for p in items) if p]
    if [p.lower() for p in items] == ["auto"]:
        names = [p for p in AUTO_ORDER if p in avail]
    else:
        names = [PROVIDER_ALIASES.get(p.lower(), p) for p in items]
        bad = [p for p, name in zip(items, names, strict=True) if name not in avail]
        if bad:
            raise UserError(f"execution provider {bad[0]!r} is not available in this onnxruntime build "
                            f"(available: {', '.join(avail)}); on a Jetson install onnxruntime-gpu "
                            "from the Jetson Zoo")
    out: list[Any] = []
    for name in dict.fromkeys([*names, "CPUExecutionProvider"]):  # in order, once, CPU last as the fallback
        if name in given:
            out.append((name, given[name]))
        elif name == "TensorrtExecutionProvider":
            cache = Path(trt_cache_dir or os.environ.get("CNNLAB_TRT_CACHE") or cache_dir() / "trt-engines")
            cache.mkdir(parents=True, exist_ok=True)
            out.append((name, {"device_id": device_id, "trt_fp16_enable": bool(trt_fp16),
                               "trt_int8_enable": bool(trt_int8), "trt_engine_cache_enable": True,
                               "trt_engine_cache_path": str(cache)}))
        elif name == "CUDAExecutionProvider":
            out.append((name, {"device_id": device_id}))
        else:
            out.append(name)
    return out


def session_options(threads: int | None = None) -> Any:
    """Session options: intra-op thread count (None: ONNX Runtime's default, one per core), one inter-op
    thread, every graph optimisation, errors-only logging."""
    import onnxruntime as ort

    from cnnlab.noise import verbose

    if not verbose():  # provider notices ("CUDA not available...") are library noise on the command line
        ort.set_default_logger_severity(3)
    so = ort.SessionOptions()
    if threads:
        so.intra_op_num_threads = int(threads)
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3  # errors only
    return so


def create_session(model: str | os.PathLike | bytes, providers: str | Sequence[str] | None = None,
                   threads: int | None = None, **provider_kw: Any) -> Any:
    """An ``onnxruntime.InferenceSession`` for a file or serialised model; unreadable models are UserErrors."""
    import onnxruntime as ort

    plist = resolve_providers(providers, **provider_kw)
    src = model if isinstance(model, bytes) else str(model)
    if not isinstance(model, bytes) and not Path(src).is_file():
        raise UserError(f"ONNX model not found: {src}")
    try:
        return ort.InferenceSession(src, sess_options=session_options(threads), providers=plist)
    except Exception as e:  # onnxruntime raises its own Fail/InvalidGraph/... types
        where = "model" if isinstance(model, bytes) else src
        raise UserError(f"{where}: ONNX Runtime cannot load it ({first_line(e)[:300]})") from None
