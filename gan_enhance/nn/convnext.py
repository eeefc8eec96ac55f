"""1-D ConvNeXt and residual conv blocks (time-local: no statistics over time, so chunking is seamless)."""

from __future__ import annotations

import torch
from torch import nn

from gan_enhance.nn.layers import WNConv1d, get_padding


class ChannelNorm(nn.Module):
    """LayerNorm over the channels of ``(B, C, T)`` at each time step (never over time)."""

    def __init__(self, channels: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(1, channels, 1))
        self.bias = nn.Parameter(torch.zeros(1, channels, 1))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=1, keepdim=True)
        centered = x - mean
        variance = centered.pow(2).mean(dim=1, keepdim=True)
        return centered * torch.rsqrt(variance + self.eps) * self.weight + self.bias


class ConvNeXtBlock1d(nn.Module):
    """Depthwise conv -> channel norm -> pointwise MLP (GELU) -> layer scale, plus the input.

    Parameters
    ----------
    channels : int
        C of the ``(B, C, T)`` input and output.
    kernel_size : int
        Odd depthwise kernel; large kernels give a wide receptive field at little cost.
    expansion : int
        Hidden width of the pointwise MLP, as a multiple of ``channels``.
    layer_scale : float
        Initial per-channel scale of the residual branch (small: each block starts near identity).
    """

    def __init__(self, channels: int, kernel_size: int = 7, expansion: int = 4, layer_scale: float = 1e-2):
        super().__init__()
        # No bias: the norm that follows removes it anyway.
        self.depthwise = WNConv1d(
            channels, channels, kernel_size, padding=get_padding(kernel_size), groups=channels, bias=False
        )
        self.norm = ChannelNorm(channels)
        self.expand = WNConv1d(channels, channels * expansion, 1)
        self.activation = nn.GELU()
        self.project = WNConv1d(channels * expansion, channels, 1)
        self.scale = nn.Parameter(torch.full((1, channels, 1), layer_scale))
        self.radius = get_padding(kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.activation(self.expand(self.norm(self.depthwise(x)))))
        return x + self.scale * y


class ResidualConvBlock1d(nn.Module):
    """Two LeakyReLU -> conv layers (the first dilated) plus the input, as in HiFi-GAN's resblocks."""

    def __init__(self, channels: int, kernel_size: int = 5, dilation: int = 1, slope: float = 0.1):
        super().__init__()
        self.layers = nn.Sequential(
            nn.LeakyReLU(slope),
            WNConv1d(
                channels, channels, kernel_size, dilation=dilation, padding=get_padding(kernel_size, dilation)
            ),
            nn.LeakyReLU(slope),
            WNConv1d(channels, channels, kernel_size, padding=get_padding(kernel_size)),
        )
        self.radius = get_padding(kernel_size, dilation) + get_padding(kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.layers(x)
