"""YOLOv3 target assignment: which prediction (scale, anchor, cell) learns which ground-truth box.

Each box goes to the grid cell holding its centre, at the anchor (over all scales) whose shape
matches it best by IoU of widths/heights; any other anchor whose IoU with the box exceeds
``iou_thresh`` learns it too (AlexeyAB's ``iou_thresh``, 0.213 in the YOLOv4/Yolo-Fastest cfgs).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class LayerTargets:
    """The assignments of one [yolo] layer (``n`` rows)."""

    b: torch.Tensor        # (n,) image index in the batch
    a: torch.Tensor        # (n,) anchor index within the layer's mask
    gj: torch.Tensor       # (n,) grid row
    gi: torch.Tensor       # (n,) grid column
    tbox: torch.Tensor     # (n, 4) cx, cy relative to the cell corner, w, h; all in grid cells
    anchors: torch.Tensor  # (n, 2) anchor w, h in grid cells
    cls: torch.Tensor      # (n,) class index

    def __len__(self) -> int:
        return int(self.b.numel())


def wh_iou(wh1: torch.Tensor, wh2: torch.Tensor) -> torch.Tensor:
    """IoU of boxes sharing a centre, from their widths/heights: ``(N, 2) x (K, 2) -> (N, K)``."""
    inter = torch.min(wh1[:, None], wh2[None]).prod(2)
    return inter / (wh1.prod(1)[:, None] + wh2.prod(1)[None] - inter + 1e-9)


def build_targets(targets: torch.Tensor, layers: list, grids: list[tuple[int, int]], img_hw: tuple[int, int],
                  iou_thresh: float = 0.213) -> list[LayerTargets]:
    """Assign ``targets`` rows ``[img, cls, cx, cy, w, h]`` (normalised) to each [yolo] layer.

    layers: objects with ``all_anchors`` (pixels at the network input) and ``mask`` (the indices of
    ``all_anchors`` this layer predicts), e.g. ``DarknetModel.yolo_layers``; grids: ``(ny, nx)`` of
    each layer's output; img_hw: the network input size of this batch.
    """
    dev = targets.device
    ih, iw = img_hw
    out: list[LayerTargets] = []
    gt_wh_px = targets[:, 4:6] * torch.tensor([iw, ih], dtype=torch.float32, device=dev)
    for layer, (ny, nx) in zip(layers, grids, strict=True):
        all_anchors = torch.tensor(layer.all_anchors, dtype=torch.float32, device=dev).view(-1, 2)
        mask = torch.tensor(layer.mask, dtype=torch.long, device=dev)
        ious = wh_iou(gt_wh_px, all_anchors)                       # (M, K)
        best = ious.argmax(1)                                      # (M,)
        local = ious[:, mask]                                      # (M, A)
        chosen = (best[:, None] == mask[None]) | (local > iou_thresh)
        t_idx, a_idx = chosen.nonzero(as_tuple=True)
        t = targets[t_idx]
        g = t[:, 2:6] * torch.tensor([nx, ny, nx, ny], dtype=torch.float32, device=dev)   # in grid cells
        gxy, gwh = g[:, :2], g[:, 2:]
        gi = gxy[:, 0].long().clamp(0, nx - 1)
        gj = gxy[:, 1].long().clamp(0, ny - 1)
        stride = torch.tensor([iw / nx, ih / ny], dtype=torch.float32, device=dev)
        anchors = all_anchors[mask[a_idx]] / stride
        tbox = torch.cat((gxy - torch.stack((gi, gj), 1).float(), gwh), 1)
        out.append(LayerTargets(t[:, 0].long(), a_idx, gj, gi, tbox, anchors, t[:, 1].long()))
    return out
