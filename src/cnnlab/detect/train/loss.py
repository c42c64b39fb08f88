"""YOLO losses from raw [yolo]-layer maps: boxes (YOLOv3's MSE or IoU/GIoU/DIoU/CIoU), objectness, classes.

``YoloLoss(model)(raw, targets, img_hw) -> (loss, {"box", "obj", "cls"})``; ``raw`` is the list of
``(B, A*(5+C), H, W)`` maps ``DarknetModel`` returns with ``decode = False``. Objectness is a BCE
over every prediction: 1 (MSE mode) or the predicted box's IoU (IoU modes, as YOLOv5) where a box is
assigned, 0 elsewhere except for predictions that already overlap a ground truth by more than
``ignore_thresh`` (YOLOv3's ignore rule). Classes are independent BCEs (YOLOv3).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torchvision.ops import box_iou, complete_box_iou_loss, distance_box_iou_loss, generalized_box_iou_loss

from cnnlab.detect.train.targets import build_targets
from cnnlab.errors import UserError


def cxcywh_to_xyxy(b: torch.Tensor) -> torch.Tensor:
    return torch.cat((b[..., :2] - b[..., 2:4] / 2, b[..., :2] + b[..., 2:4] / 2), -1)


def _balance(grids: list[tuple[int, int]]) -> list[float]:
    """Objectness weight per layer: finer grids (small objects, many cells) weigh more (YOLOv5's 4/1/0.4)."""
    table = [4.0, 1.0, 0.4] if len(grids) == 3 else [4.0, 1.0, 0.25, 0.06, 0.02]
    order = sorted(range(len(grids)), key=lambda i: -grids[i][0] * grids[i][1])
    out = [1.0] * len(grids)
    for rank, i in enumerate(order):
        out[i] = table[min(rank, len(table) - 1)]
    return out


def scaled_gains(box_gain: float, obj_gain: float, cls_gain: float, num_layers: int, num_classes: int,
                 imgsz: int) -> tuple[float, float, float]:
    """YOLOv5's scaling of the loss gains (tuned for 3 layers, 80 classes, 640 px): box x 3/nl,
    classes x nc/80 x 3/nl, objectness x (imgsz/640)^2 x 3/nl (the objectness mean runs over a number
    of cells that grows with imgsz^2, so this keeps the weight of one positive constant)."""
    k = 3.0 / max(num_layers, 1)
    return box_gain * k, obj_gain * (imgsz / 640) ** 2 * k, cls_gain * num_classes / 80 * k


class YoloLoss:
    """The training loss of a ``DarknetModel``'s [yolo] layers.

    ``box_gain``, ``obj_gain`` and ``cls_gain`` are YOLOv5's defaults for 3 layers, 80 classes and
    640 px; with ``autoscale`` they are adapted to the model's layers and classes and to ``imgsz``
    (`scaled_gains`).
    """

    def __init__(self, model, box_loss: str = "ciou", box_gain: float = 0.05, obj_gain: float = 1.0,
                 cls_gain: float = 0.5, iou_thresh: float = 0.213, ignore_thresh: float = 0.7,
                 imgsz: int | None = None, autoscale: bool = True) -> None:
        self.layers = model.yolo_layers
        if not self.layers:
            raise UserError("the model has no [yolo] layers to train")
        if any(y.new_coords for y in self.layers):
            raise UserError("training [yolo] layers with new_coords=1 is not supported")
        self.box_loss = box_loss
        if autoscale:
            box_gain, obj_gain, cls_gain = scaled_gains(box_gain, obj_gain, cls_gain, len(self.layers),
                                                        self.layers[0].classes, imgsz or model.width)
        self.box_gain, self.obj_gain, self.cls_gain = box_gain, obj_gain, cls_gain
        self.iou_thresh, self.ignore_thresh = iou_thresh, ignore_thresh

    def __call__(self, raw: list[torch.Tensor], targets: torch.Tensor, img_hw: tuple[int, int]
                 ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        dev = raw[0].device
        targets = targets.to(dev)
        bsz = raw[0].shape[0]
        grids = [(int(p.shape[2]), int(p.shape[3])) for p in raw]
        assigned = build_targets(targets, self.layers, grids, img_hw, self.iou_thresh)
        balance = _balance(grids)
        lbox = lobj = lcls = torch.zeros((), device=dev)   # summed out of place below
        n_box = 0
        gt_xyxy = cxcywh_to_xyxy(targets[:, 2:6])                   # normalised, for the ignore rule
        for li, (p, layer, t) in enumerate(zip(raw, self.layers, assigned, strict=True)):
            b, _, ny, nx = p.shape
            na, nc = layer.num_anchors, layer.classes
            p = p.view(b, na, nc + 5, ny, nx).permute(0, 1, 3, 4, 2)   # B, A, H, W, 5+C
            s = layer.scale_x_y
            obj_t = torch.zeros(p.shape[:4], device=dev, dtype=p.dtype)
            obj_w = torch.ones_like(obj_t)
            if self.ignore_thresh < 1 and len(targets):
                obj_w = self._ignore_weights(p, layer, targets, gt_xyxy, (ny, nx), img_hw)
            if len(t):
                ps = p[t.b, t.a, t.gj, t.gi]
                pxy = torch.sigmoid(ps[:, :2]) * s - 0.5 * (s - 1)
                pwh = torch.exp(ps[:, 2:4].clamp(max=8.0)) * t.anchors
                pbox = torch.cat((pxy, pwh), 1)
                if self.box_loss == "mse":
                    scale = 2.0 - t.tbox[:, 2] * t.tbox[:, 3] / (nx * ny)
                    twh = torch.log(t.tbox[:, 2:4] / t.anchors + 1e-9)
                    err = ((pxy - t.tbox[:, :2]) ** 2).sum(1) + ((ps[:, 2:4] - twh) ** 2).sum(1)
                    lbox = lbox + (scale * err).sum()
                    score = torch.ones(len(t), device=dev, dtype=p.dtype)
                else:
                    lb, iou = self._iou_loss(pbox, t.tbox)
                    lbox = lbox + lb.sum()
                    score = iou.detach().clamp(0, 1).to(p.dtype)
                n_box += len(t)
                obj_t[t.b, t.a, t.gj, t.gi] = score
                obj_w[t.b, t.a, t.gj, t.gi] = 1.0
                onehot = torch.zeros_like(ps[:, 5:])
                onehot[torch.arange(len(t), device=dev), t.cls.clamp(0, nc - 1)] = 1.0
                lcls = lcls + F.binary_cross_entropy_with_logits(ps[:, 5:], onehot, reduction="sum") / nc
            bce = F.binary_cross_entropy_with_logits(p[..., 4], obj_t, weight=obj_w, reduction="sum")
            lobj = lobj + balance[li] * bce / obj_t.numel()
        denom = max(n_box, 1)
        lbox, lcls = lbox / denom, lcls / denom
        total = (self.box_gain * lbox + self.obj_gain * lobj + self.cls_gain * lcls) * bsz
        # the weighted parts, so that total = (box + obj + cls) x batch size
        return total, {"box": (self.box_gain * lbox).detach(), "obj": (self.obj_gain * lobj).detach(),
                       "cls": (self.cls_gain * lcls).detach()}

    def _iou_loss(self, pbox: torch.Tensor, tbox: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-box loss and IoU of predicted vs target boxes (cx, cy, w, h in grid cells)."""
        p, t = cxcywh_to_xyxy(pbox), cxcywh_to_xyxy(tbox)
        with torch.no_grad():
            iou = box_iou(p.float(), t.float()).diagonal() if len(p) else p.new_zeros(0)
        losses = {"giou": generalized_box_iou_loss, "diou": distance_box_iou_loss,
                  "ciou": complete_box_iou_loss}
        if self.box_loss in losses:
            return losses[self.box_loss](p, t, reduction="none"), iou
        lt = torch.max(p[:, :2], t[:, :2])
        rb = torch.min(p[:, 2:], t[:, 2:])
        inter = (rb - lt).clamp(min=0).prod(1)
        union = (p[:, 2:] - p[:, :2]).prod(1) + (t[:, 2:] - t[:, :2]).prod(1) - inter
        return 1.0 - inter / (union + 1e-7), iou

    @torch.no_grad()
    def _ignore_weights(self, p: torch.Tensor, layer, targets: torch.Tensor, gt_xyxy: torch.Tensor,
                        grid: tuple[int, int], img_hw: tuple[int, int]) -> torch.Tensor:
        """0 for predictions whose decoded box overlaps a ground truth of their image > ignore_thresh."""
        b, na, ny, nx, _ = p.shape
        s = layer.scale_x_y
        dev = p.device
        gy, gx = torch.meshgrid(torch.arange(ny, device=dev), torch.arange(nx, device=dev), indexing="ij")
        grid_xy = torch.stack((gx, gy), -1).view(1, 1, ny, nx, 2).float()
        anchors = layer.anchors.to(dev).view(1, na, 1, 1, 2) / torch.tensor(
            [img_hw[1], img_hw[0]], dtype=torch.float32, device=dev)
        xy = (torch.sigmoid(p[..., :2].float()) * s - 0.5 * (s - 1) + grid_xy) / torch.tensor(
            [nx, ny], dtype=torch.float32, device=dev)
        wh = torch.exp(p[..., 2:4].float().clamp(max=8.0)) * anchors
        boxes = cxcywh_to_xyxy(torch.cat((xy, wh), -1)).view(b, -1, 4)
        w = torch.ones((b, na * ny * nx), device=dev, dtype=p.dtype)
        for i in range(b):
            sel = targets[:, 0] == i
            if sel.any():
                best = box_iou(boxes[i], gt_xyxy[sel]).max(1).values
                w[i] = (best <= self.ignore_thresh).to(p.dtype)
        return w.view(b, na, ny, nx)
