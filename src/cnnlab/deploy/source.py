"""What export and benchmark run through PyTorch: a ``cnnlab.sources`` classifier on the CPU in eval mode."""

from __future__ import annotations

from typing import Any

from cnnlab.errors import UserError
from cnnlab.sources import Located, Resolved, identify, resolve


def torch_source(source: Any, **options: Any) -> Resolved:
    """A run folder, checkpoint, model name or ``nn.Module`` (or a Resolved PyTorch/TorchScript model);
    ``options`` (classes, mean, std, img_size, in_chans, num_classes, name) describe a module or model name."""
    if isinstance(source, Resolved):
        if source.runtime not in ("torch", "torchscript"):
            raise UserError(f"{source.describe()} is a {source.runtime} model; export and benchmark need PyTorch")
        return source
    loc = source if isinstance(source, Located) else identify(source, task="classify")
    if loc.kind == "onnx":
        raise UserError(f"{loc.path} is already an ONNX model; export needs a run folder, checkpoint or model name")
    if loc.kind == "torchscript":
        raise UserError(f"{loc.path} is a TorchScript file; export from the run folder or checkpoint instead")
    src = resolve(loc, device="cpu", **options)
    src.model = src.model.eval().cpu()
    return src
