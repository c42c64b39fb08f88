"""Input whitening inside the model: ZCA (Bell & Sejnowski 1997; Krizhevsky 2009) as a fixed linear layer.

``create_model(..., whiten="zca")`` wraps the network as ``Whitened(net)``: a :class:`ZCA` layer (buffers
``mean`` and ``matrix``, not trained) in front of it. The training task fits the buffers on the
training split (:func:`fit_zca`); because they live in the model's state, every checkpoint, ``evaluate``,
``predict`` and the ONNX export (a MatMul in front of the graph) apply the same whitening.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from cnnlab.errors import ModelError

WHITEN = ("zca",)
MAX_DIM = 4096  # C*H*W: the matrix is dim x dim (CIFAR: 3072 -> 36 MB in fp32)


class ZCA(nn.Module):
    """``x -> W (x - mean)`` on the flattened image; identity until :meth:`set` is called."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("matrix", torch.eye(dim))

    def set(self, mean: torch.Tensor, matrix: torch.Tensor) -> None:
        self.mean.copy_(mean.to(self.mean))
        self.matrix.copy_(matrix.to(self.matrix))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(x.shape[0], -1) - self.mean
        return (flat @ self.matrix.t()).reshape(x.shape)


class Whitened(nn.Module):
    """``net(zca(x))``: a network with its input whitening; ``net`` is the architecture as built."""

    def __init__(self, net: nn.Module, kind: str, in_chans: int, img_size: int | None) -> None:
        super().__init__()
        if kind not in WHITEN:
            raise ModelError(f"whiten must be one of {', '.join(WHITEN)} (or none), got {kind!r}")
        if not img_size:
            raise ModelError("ZCA whitening needs a fixed input size (img_size)")
        dim = int(in_chans) * int(img_size) ** 2
        if dim > MAX_DIM:
            raise ModelError(f"ZCA whitening of {in_chans}x{img_size}x{img_size} inputs needs a {dim}x{dim} "
                             f"matrix; it is limited to {MAX_DIM} input values (32x32 RGB)")
        self.zca = ZCA(dim)
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.zca(x))


def fit_zca(batches: Iterable[torch.Tensor], epsilon: float = 0.1) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, W) of ZCA whitening from batches of images: ``W = U diag(1 / sqrt(S + epsilon)) U^T`` where
    ``U S U^T`` is the covariance of the flattened images (float64 sums, one pass; eigh in float32)."""
    if not epsilon > 0:
        raise ModelError(f"zca_epsilon must be > 0, got {epsilon}")
    total: torch.Tensor | None = None
    outer: torch.Tensor | None = None
    n = 0
    for x in batches:
        f = x.reshape(x.shape[0], -1).to(torch.float64)
        total = f.sum(0) if total is None else total + f.sum(0)
        outer = f.t() @ f if outer is None else outer + f.t() @ f
        n += f.shape[0]
    if total is None or outer is None or n < 2:
        raise ModelError("ZCA whitening needs at least 2 training images")
    mean = total / n
    cov = (outer - n * torch.outer(mean, mean)) / (n - 1)
    s, u = torch.linalg.eigh(cov.float())   # float32: 4x faster than float64 at 3072 dims, and epsilon
    u, s = u.double(), s.double()            # keeps the small eigenvalues from mattering
    w = (u * (1.0 / torch.sqrt(s.clamp_min(0) + epsilon))) @ u.t()
    return mean.float(), w.float()


def whitening_of(model: nn.Module) -> ZCA | None:
    """The model's ZCA layer, or None."""
    return model.zca if isinstance(model, Whitened) else None


def image_batches(loader: Any) -> Iterable[torch.Tensor]:
    """The image batches of a loader (labels dropped), on the CPU."""
    for batch in loader:
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        yield x.detach().cpu()
