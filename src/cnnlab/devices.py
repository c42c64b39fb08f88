"""Device names, one parser for every command: ``auto``, ``cpu``, ``cuda``, ``cuda:N``, ``mps``.

``check_device_spec`` checks a spelling without importing torch (the CLI validates ``--device`` with it);
``resolve_device`` gives an available ``torch.device``; ``runtime_device`` the device name an inference
runtime (torch, opencv, onnxruntime) runs on.
"""

from __future__ import annotations

import re
from typing import Any

from cnnlab.errors import UserError

DEVICE_HELP = "auto (CUDA when available, else CPU), cpu, cuda, cuda:N or mps."

_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?|\d+)$")


def check_device_spec(spec: str) -> str:
    """Check the spelling of a device name (no torch import): one-line UserError when it is wrong."""
    text = str(spec).strip().lower()
    if not _DEVICE.match(text):
        raise UserError(f"unknown device {spec!r}: use auto, cpu, cuda, cuda:N or mps")
    return text


def resolve_device(spec: Any = "auto") -> Any:
    """A ``torch.device`` for ``spec``; ``auto`` picks CUDA when there is one, else the CPU (MPS only
    when asked for). A device that is not there is a UserError (no silent fallback)."""
    import torch

    if isinstance(spec, torch.device):
        return spec
    text = check_device_spec(spec or "auto")
    if text.isdigit():
        text = f"cuda:{text}"
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if text.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UserError(f"device {spec!r} asked for, but CUDA is not available on this machine "
                            "(use --device cpu or auto)")
        index = int(text.split(":")[1]) if ":" in text else 0
        if index >= torch.cuda.device_count():
            raise UserError(f"device {spec!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    if text == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise UserError("device 'mps' asked for, but Apple's MPS is not available here")
    return torch.device(text)


def runtime_device(spec: Any, runtime: str) -> str:
    """The device name inference ``runtime`` (torch, opencv, onnxruntime) runs on; ``auto`` picks the best it has."""
    text = check_device_spec(spec or "auto")
    if text.isdigit():
        text = f"cuda:{text}"
    if runtime == "torch":
        return str(resolve_device(text))
    if runtime == "onnxruntime":
        if text == "auto":
            import onnxruntime as ort

            return "cuda" if "CUDAExecutionProvider" in ort.get_available_providers() else "cpu"
        if text == "mps":
            raise UserError("the onnxruntime backend has no MPS device here: use --device cpu (or --backend torch)")
        return text
    return "cpu" if text == "auto" else text  # opencv (and others): the CPU unless asked, which they check
