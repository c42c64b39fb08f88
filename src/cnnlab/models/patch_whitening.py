"""Patch-whitening initialisation of a first convolution (airbench): its filters become the
eigenvectors of the training images' patch covariance scaled by 1/sqrt(eigenvalue + eps), in +/-
pairs, so the first layer hands the net decorrelated, unit-variance features from step one.
(Whitening of the whole input as a fixed layer, ZCA, is :mod:`cnnlab.models.zca`.)

    whiten_conv_(first_conv(model), images)   # images: normalised float (N, C, H, W)
"""

from __future__ import annotations

import torch
from torch import nn

from cnnlab.errors import ModelError


def first_conv(model: nn.Module) -> nn.Conv2d:
    """The model's first ``nn.Conv2d`` (in module order)."""
    conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    if conv is None:
        raise ModelError("whiten_init: the model has no convolution to initialise")
    return conv


def patch_eigens(images: torch.Tensor, kernel: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigenvalues (D,) and eigenvectors (D, C, kh, kw) of the uncentred covariance of every
    ``kernel``-sized patch of ``images`` (N, C, H, W), largest eigenvalue first (D = C * kh * kw)."""
    c = images.shape[1]
    kh, kw = kernel
    patches = images.float().unfold(2, kh, 1).unfold(3, kw, 1)  # N, C, H', W', kh, kw
    flat = patches.permute(0, 2, 3, 1, 4, 5).reshape(-1, c * kh * kw).double()
    cov = flat.T @ flat / flat.shape[0]
    values, vectors = torch.linalg.eigh(cov)
    return values.flip(0).float(), vectors.T.flip(0).reshape(-1, c, kh, kw).float()


@torch.no_grad()
def whiten_conv_(conv: nn.Conv2d, images: torch.Tensor, eps: float = 5e-4) -> int:
    """Set ``conv``'s filters to the whitening filters of ``images`` (normalised, (N, C, H, W)), as
    +/- pairs of the strongest directions; filters beyond ``2 * C * kh * kw`` keep their init. The
    bias is zeroed. Returns the number of filters set."""
    if conv.groups != 1 or images.ndim != 4 or images.shape[1] != conv.in_channels:
        raise ModelError(f"whiten_init: the first convolution takes {conv.in_channels} channels "
                         f"(groups {conv.groups}); images have shape {tuple(images.shape)}")
    kh, kw = conv.kernel_size
    if images.shape[-2] < kh or images.shape[-1] < kw:
        raise ModelError("whiten_init: images are smaller than the first convolution's kernel")
    values, vectors = patch_eigens(images, (kh, kw))
    scaled = vectors / torch.sqrt(values.clamp_min(0) + eps).view(-1, 1, 1, 1)
    k = min(conv.out_channels // 2, scaled.shape[0])
    filters = torch.cat([scaled[:k], -scaled[:k]])
    conv.weight[: 2 * k] = filters.to(conv.weight)
    if conv.bias is not None:
        conv.bias.zero_()
    return 2 * k


def loader_images(loader: object, n: int = 5000, seed: int = 0) -> torch.Tensor:
    """Up to ``n`` training images of a cnnlab loader (``make_loader``), normalised as the loader feeds
    them but not augmented: a seeded random sample of its dataset."""
    dataset = getattr(loader, "dataset", None)
    pipeline = getattr(loader, "pipeline", None)
    if dataset is None or pipeline is None:
        raise ModelError("whiten_init needs a cnnlab data loader (make_loader)")
    total = len(dataset)
    idx = torch.randperm(total, generator=torch.Generator().manual_seed(int(seed)))[: min(n, total)]
    if hasattr(dataset, "images"):  # ArrayDataset: uint8 (N, C, H, W) in memory
        raw = dataset.images[idx]
    else:
        raw = torch.stack([torch.as_tensor(dataset[int(i)][0]) for i in idx])
    return pipeline.normalise(raw.to(torch.float32) / 255.0)
