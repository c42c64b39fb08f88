"""The loss of anchor-free detectors (``cnnlab-nano``): a task-aligned assigner (YOLOv8 / TOOD), GIoU
box loss and BCE class loss with IoU-aware soft targets.

``TaskAlignedLoss(model)(raw, targets, img_hw) -> (loss, {"box", "cls"})`` with ``raw`` the maps of
``model.forward_raw`` and ``targets`` rows ``[image, class, cx, cy, w, h]`` (normalised), as
``YoloLoss``. Assignment, per ground-truth box: candidate cells are those whose centre lies inside the
box or within ``radius`` strides of its centre (so boxes smaller than a cell still get cells); each
candidate scores ``class score ** alpha * IoU ** beta``; the ``topk`` best become positives (a cell
claimed by two boxes keeps the one it overlaps most). The class target of a positive is its
normalised alignment (the best positive of a box gets the box's best IoU), 0 elsewhere.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torchvision.ops import generalized_box_iou_loss

from cnnlab.errors import UserError


def pairwise_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU of xyxy boxes ``a (..., M, 4)`` against ``b (..., N, 4)`` -> ``(..., M, N)``."""
    a, b = a.unsqueeze(-2), b.unsqueeze(-3)
    inter = (torch.min(a[..., 2:], b[..., 2:]) - torch.max(a[..., :2], b[..., :2])).clamp(min=0).prod(-1)
    area_a = (a[..., 2:] - a[..., :2]).clamp(min=0).prod(-1)
    area_b = (b[..., 2:] - b[..., :2]).clamp(min=0).prod(-1)
    return inter / (area_a + area_b - inter + 1e-9)


class TaskAlignedLoss:
    """GIoU + BCE on task-aligned positives. Gains: ``box_gain`` x GIoU, ``cls_gain`` x BCE (YOLOv8's
    7.5 and 0.5 by default); the total is ``(box + cls) x batch size`` like ``YoloLoss``."""

    parts = ("box", "cls")

    def __init__(self, model, box_gain: float = 7.5, cls_gain: float = 0.5, topk: int = 10,
                 alpha: float = 0.5, beta: float = 6.0, radius: float = 2.5) -> None:
        if not getattr(model, "anchor_free", False):
            raise UserError("TaskAlignedLoss trains anchor-free detectors (cnnlab-nano)")
        self.model = model
        self.num_classes = int(model.num_classes)
        self.strides = tuple(model.strides)
        self.box_gain, self.cls_gain = float(box_gain), float(cls_gain)
        self.topk, self.alpha, self.beta, self.radius = int(topk), float(alpha), float(beta), float(radius)

    @staticmethod
    def _points(raw: list[torch.Tensor], strides: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
        """Cell centres ``(A, 2)`` in input pixels and their strides ``(A,)``, in ``boxes()`` order."""
        pts, st = [], []
        for r, s in zip(raw, strides, strict=True):
            h, w = r.shape[2:]
            gy, gx = torch.meshgrid(torch.arange(h, device=r.device), torch.arange(w, device=r.device),
                                    indexing="ij")
            pts.append((torch.stack((gx, gy), -1).reshape(-1, 2).float() + 0.5) * s)
            st.append(torch.full((h * w,), float(s), device=r.device))
        return torch.cat(pts), torch.cat(st)

    def __call__(self, raw: list[torch.Tensor], targets: torch.Tensor, img_hw: tuple[int, int]
                 ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        pboxes, logits = self.model.boxes(raw)               # (B, A, 4) pixels, (B, A, C)
        pboxes, logits = pboxes.float(), logits.float()
        bsz, dev = logits.shape[0], logits.device
        targets = targets.to(dev).float()
        gt_boxes, gt_cls, gt_mask = self._pad(targets, bsz, img_hw)
        points, strides = self._points(raw, self.strides)
        with torch.no_grad():
            fg, t_boxes, t_scores = self._assign(logits.detach().sigmoid(), pboxes.detach(), points, strides,
                                                 gt_boxes, gt_cls, gt_mask)
        norm = t_scores.sum().clamp(min=1.0)
        lcls = F.binary_cross_entropy_with_logits(logits, t_scores, reduction="sum") / norm
        if fg.any():
            weight = t_scores.sum(-1)[fg]
            lbox = (generalized_box_iou_loss(pboxes[fg], t_boxes[fg], reduction="none") * weight).sum() / norm
        else:
            lbox = pboxes.sum() * 0.0
        box, cls = self.box_gain * lbox, self.cls_gain * lcls
        return (box + cls) * bsz, {"box": box.detach(), "cls": cls.detach()}

    @staticmethod
    def _pad(targets: torch.Tensor, bsz: int, img_hw: tuple[int, int]
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Ground truths per image, padded: boxes ``(B, M, 4)`` xyxy pixels, classes ``(B, M)``, mask."""
        dev = targets.device
        counts = torch.bincount(targets[:, 0].long(), minlength=bsz) if len(targets) else \
            torch.zeros(bsz, dtype=torch.long, device=dev)
        m = max(int(counts.max()) if bsz else 0, 1)
        boxes = torch.zeros(bsz, m, 4, device=dev)
        cls = torch.zeros(bsz, m, dtype=torch.long, device=dev)
        mask = torch.zeros(bsz, m, dtype=torch.bool, device=dev)
        h, w = img_hw
        scale = torch.tensor([w, h, w, h], dtype=torch.float32, device=dev)
        for i in range(bsz):
            t = targets[targets[:, 0] == i]
            if len(t):
                xywh = t[:, 2:6] * scale
                boxes[i, :len(t)] = torch.cat((xywh[:, :2] - xywh[:, 2:] / 2, xywh[:, :2] + xywh[:, 2:] / 2), 1)
                cls[i, :len(t)] = t[:, 1].long()
                mask[i, :len(t)] = True
        return boxes, cls, mask

    def _assign(self, scores: torch.Tensor, pboxes: torch.Tensor, points: torch.Tensor, strides: torch.Tensor,
                gt_boxes: torch.Tensor, gt_cls: torch.Tensor, gt_mask: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(foreground (B, A), target boxes (B, A, 4), target class scores (B, A, C))``."""
        bsz, n_pts, nc = scores.shape
        m = gt_boxes.shape[1]
        p = points.view(1, 1, n_pts, 2)
        g = gt_boxes.unsqueeze(2)                                                   # B, M, 1, 4
        inside = ((p - g[..., :2]).amin(-1) > 0) & ((g[..., 2:] - p).amin(-1) > 0)  # B, M, A
        centre = (g[..., :2] + g[..., 2:]) / 2
        near = ((p - centre).abs() < self.radius * strides.view(1, 1, n_pts, 1)).all(-1)
        cand = (inside | near) & gt_mask.unsqueeze(-1)
        iou = pairwise_iou(gt_boxes, pboxes) * cand                                 # B, M, A
        cls_idx = gt_cls.clamp(0, nc - 1).unsqueeze(-1).expand(bsz, m, n_pts)
        s = scores.transpose(1, 2).gather(1, cls_idx)                               # B, M, A
        align = s.pow(self.alpha) * iou.pow(self.beta) * cand
        k = min(self.topk, n_pts)
        top = align.topk(k, dim=-1).indices
        pos = torch.zeros_like(cand).scatter_(-1, top, True) & cand
        multi = pos.sum(1, keepdim=True) > 1                                        # a cell claimed twice
        if multi.any():
            best = F.one_hot(iou.argmax(1), m).transpose(1, 2).bool()               # B, M, A
            pos = torch.where(multi, best & cand, pos)
        fg = pos.any(1)                                                             # B, A
        gt_idx = pos.float().argmax(1)                                              # B, A
        t_boxes = gt_boxes.gather(1, gt_idx.unsqueeze(-1).expand(bsz, n_pts, 4))
        t_cls = gt_cls.gather(1, gt_idx)
        align = align * pos
        norm = align * (iou * pos).amax(-1, keepdim=True) / (align.amax(-1, keepdim=True) + 1e-9)
        quality = norm.amax(1)                                                      # B, A
        t_scores = F.one_hot(t_cls.clamp(0, nc - 1), nc).float() * (quality * fg).unsqueeze(-1)
        return fg, t_boxes, t_scores
