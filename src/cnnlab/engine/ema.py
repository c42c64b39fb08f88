"""Exponential moving average of model weights (torch's ``AveragedModel`` with a warm-up decay).

The decay ramps up as ``decay * (1 - exp(-updates / warmup))`` (as in YOLOv5/Ultralytics), so early
EMA weights follow the model instead of the random initialisation.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel


class ModelEMA:
    """EMA of a model's parameters and buffers; ``.module`` is the averaged copy used for evaluation."""

    def __init__(self, model: nn.Module, decay: float = 0.999, warmup: int = 2000):
        self.decay = float(decay)
        self.warmup = max(1, int(warmup))

        def multi_avg_fn(ema_params: list[torch.Tensor], params: list[torch.Tensor],
                         num_averaged: torch.Tensor) -> None:
            d = self.decay_at(int(num_averaged))
            with torch.no_grad():
                floats = [(e, p) for e, p in zip(ema_params, params, strict=True) if e.is_floating_point()]
                if floats:
                    torch._foreach_lerp_([e for e, _ in floats], [p for _, p in floats], 1.0 - d)
                for e, p in zip(ema_params, params, strict=True):
                    if not e.is_floating_point():
                        e.copy_(p)

        self.averaged = AveragedModel(model, multi_avg_fn=multi_avg_fn, use_buffers=True)
        self.averaged.eval()
        for p in self.averaged.parameters():
            p.requires_grad_(False)

    def decay_at(self, updates: int) -> float:
        return self.decay * (1.0 - math.exp(-updates / self.warmup))

    @property
    def module(self) -> nn.Module:
        return self.averaged.module

    @property
    def updates(self) -> int:
        return int(self.averaged.n_averaged.item())

    def update(self, model: nn.Module) -> None:
        self.averaged.update_parameters(model)

    def state_dict(self) -> dict[str, Any]:
        """The averaged weights with the model's own key names (loadable into the bare model)."""
        return self.module.state_dict()

    def load_state_dict(self, state: dict[str, Any], updates: int) -> None:
        self.module.load_state_dict(state)
        self.averaged.n_averaged.fill_(int(updates))
