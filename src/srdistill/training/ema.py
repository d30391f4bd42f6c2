"""Exponential moving average of a network's weights, validated and exported instead of it."""

from __future__ import annotations

import copy

import torch
from torch import nn


class ExponentialMovingAverage(nn.Module):
    """``ema <- decay * ema + (1 - decay) * live`` for trainable parameters; buffers are copied."""

    def __init__(self, model: nn.Module, decay: float = 0.999) -> None:
        super().__init__()
        if not 0.0 < decay < 1.0:
            raise ValueError(f"ema_decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        # frozen weights (a LoRA base) never move, so only trainable ones are averaged
        pairs = [
            (ema, live.detach())
            for ema, live in zip(self.module.parameters(), model.parameters(), strict=True)
            if live.requires_grad
        ]
        if pairs:
            ema_params, live_params = map(list, zip(*pairs, strict=True))
            torch._foreach_lerp_(ema_params, live_params, 1.0 - self.decay)
        for ema_buf, buf in zip(self.module.buffers(), model.buffers(), strict=True):
            ema_buf.copy_(buf)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(x)
