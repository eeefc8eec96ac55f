"""Snake activation (Ziyin et al. 2020), as used by BigVGAN and DAC: periodic inductive bias for audio."""

from __future__ import annotations

import torch
from torch import nn


class Snake1d(nn.Module):
    """``x + sin(alpha * x)^2 / alpha`` with one learned ``alpha`` per channel.

    Parameters
    ----------
    channels : int
        Number of channels C of the ``(B, C, T)`` input.
    alpha : float
        Initial frequency; 1.0 as in DAC.
    eps : float
        Keeps ``1 / alpha`` finite when a channel's alpha is trained to zero.
    """

    def __init__(self, channels: int, alpha: float = 1.0, eps: float = 1e-9):
        super().__init__()
        self.alpha = nn.Parameter(torch.full((1, channels, 1), alpha))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + (self.alpha + self.eps).reciprocal() * torch.sin(self.alpha * x).pow(2)
