"""Random-weight YOLO models written as Darknet files: try detection, pipelines and backends offline.

The weights are random but the batch-norm statistics are realistic (measured on random images),
so activations stay in a sensible range and the model emits a spread of boxes and scores.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from cnnlab.darknet.layers import ConvLayer
from cnnlab.darknet.model import DarknetModel


@torch.no_grad()
def calibrate_batchnorm(model: DarknetModel, images: torch.Tensor, seed: int = 0) -> DarknetModel:
    """Set BN running statistics to those of ``images`` and draw gamma/beta around 1/0; eval mode."""
    g = torch.Generator().manual_seed(seed)
    bns = [m.bn for m in model.layers if isinstance(m, ConvLayer) and m.bn is not None]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average over the calibration pass
        bn.weight.copy_(torch.empty_like(bn.weight).uniform_(0.6, 1.4, generator=g))
        bn.bias.copy_(torch.randn(bn.bias.shape, generator=g) * 0.1)
    for i in model.head_indices:  # keep the raw box outputs O(1) so box sizes stay plausible
        head = model.layers[i - 1]
        fan_in = head.conv.weight[0].numel()
        head.conv.weight.copy_(torch.randn(head.conv.weight.shape, generator=g) * (0.5 / fan_in ** 0.5))
        if head.conv.bias is not None:
            head.conv.bias.copy_(torch.randn(head.conv.bias.shape, generator=g) * 0.1)
    model.train()
    model.forward_raw(images)
    for bn in bns:
        bn.momentum = 0.1
    return model.eval()


def random_images(n: int, height: int, width: int, seed: int = 0) -> torch.Tensor:
    """Smooth random RGB images in [0, 1] (blurred noise with a few flat rectangles)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, max(1, height // 8), max(1, width // 8), generator=g)
    x = torch.nn.functional.interpolate(x, size=(height, width), mode="bilinear", align_corners=False)
    for i in range(n):
        for _ in range(3):
            y0, x0 = (int(v) for v in torch.randint(0, max(1, height // 2), (2,), generator=g))
            h, w = (int(v) for v in torch.randint(max(2, height // 8), max(3, height // 2), (2,), generator=g))
            x[i, :, y0:y0 + h, x0:x0 + w] = torch.rand(3, 1, 1, generator=g)
    return x


def random_yolo_files(folder: str | os.PathLike, arch: str = "yolov3-tiny", num_classes: int = 3,
                      img_size: int = 160, width_mult: float = 1.0, seed: int = 0, stem: str | None = None
                      ) -> tuple[Path, Path, Path]:
    """Write ``<stem>.cfg``, ``<stem>.weights`` and ``<stem>.names`` of a random YOLO model into ``folder``."""
    from cnnlab.darknet.cfg import write_cfg
    from cnnlab.darknet.weights import save_darknet_weights
    from cnnlab.darknet.yolo import build_sections
    from cnnlab.io import atomic_write_text

    torch.manual_seed(seed)
    sections = build_sections(arch, num_classes=num_classes, img_size=img_size, width_mult=width_mult)
    model = DarknetModel(sections, source=arch)
    calibrate_batchnorm(model, random_images(4, img_size, img_size, seed), seed)
    folder = Path(folder)
    stem = stem or arch.replace("_", "-")
    cfg = write_cfg(folder / f"{stem}.cfg", sections)
    weights = save_darknet_weights(model, folder / f"{stem}.weights")
    names = atomic_write_text(folder / f"{stem}.names", "".join(f"class{i}\n" for i in range(num_classes)))
    return cfg, weights, names


def synthetic_scene(height: int = 240, width: int = 320, seed: int = 0) -> np.ndarray:
    """A BGR uint8 test image: gradient background with coloured rectangles and circles."""
    import cv2

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    img = np.stack([(xx * 255 // max(1, width - 1)), (yy * 255 // max(1, height - 1)),
                    np.full_like(xx, 96)], axis=-1).astype(np.uint8)
    for _ in range(6):
        x0, y0 = int(rng.integers(0, width - 20)), int(rng.integers(0, height - 20))
        x1, y1 = x0 + int(rng.integers(15, width // 2)), y0 + int(rng.integers(15, height // 2))
        color = tuple(int(c) for c in rng.integers(0, 256, 3))
        if rng.random() < 0.5:
            cv2.rectangle(img, (x0, y0), (x1, y1), color, -1)
        else:
            cv2.circle(img, ((x0 + x1) // 2, (y0 + y1) // 2), max(5, (x1 - x0) // 3), color, -1)
    return img
