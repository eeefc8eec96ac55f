"""Losses on the waveform itself: L1 and scale-invariant SDR."""

from __future__ import annotations

import torch
from torch import nn


def check_same_shape(y_hat: torch.Tensor, y: torch.Tensor) -> None:
    if y_hat.shape != y.shape:
        raise ValueError(f"output {tuple(y_hat.shape)} and target {tuple(y.shape)} differ in shape")


class WaveformL1Loss(nn.Module):
    """Mean absolute difference of the samples (``l1/loss``)."""

    def forward(self, y_hat: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``(B, 1, T), (B, 1, T) -> ()``."""
        check_same_shape(y_hat, y)
        return (y_hat.float() - y.float()).abs().mean()


class SISDRLoss(nn.Module):
    """Negative scale-invariant SDR in dB, averaged over the batch (``sisdr/loss``).

    ``SI-SDR = 10 log10(|a y|^2 / |a y - y_hat|^2)`` with ``a = <y_hat, y> / |y|^2``, the projection of the
    output on the target. Lower is better; for identical signals it is its minimum
    ``-10 log10(|y|^2 / eps)`` (large and negative) rather than 0.

    Parameters
    ----------
    zero_mean : bool
        Remove each signal's mean first (the usual definition).
    eps : float
        Added to energies so silence and perfect reconstructions stay finite.
    """

    def __init__(self, zero_mean: bool = True, eps: float = 1e-8):
        super().__init__()
        self.zero_mean = zero_mean
        self.eps = eps

    def forward(self, y_hat: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``(B, 1, T), (B, 1, T) -> ()``."""
        check_same_shape(y_hat, y)
        y_hat, y = y_hat.float().flatten(1), y.float().flatten(1)
        if self.zero_mean:
            y_hat = y_hat - y_hat.mean(dim=-1, keepdim=True)
            y = y - y.mean(dim=-1, keepdim=True)
        scale = (y_hat * y).sum(-1, keepdim=True) / (y.square().sum(-1, keepdim=True) + self.eps)
        target = scale * y
        signal = target.square().sum(-1)
        noise = (target - y_hat).square().sum(-1)
        return -(10 * torch.log10((signal + self.eps) / (noise + self.eps))).mean()
