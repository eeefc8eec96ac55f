"""1-D ConvNeXt and residual conv blocks (time-local: no statistics over time, so chunking is seamless)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

from gan_enhance.nn.layers import WNConv1d, get_padding


class DepthwiseConv1d(nn.Conv1d):
    """Depthwise ``(B, C, T) -> (B, C, T)`` conv with an odd kernel and 'same' zero padding.

    Without autograd on CPU it runs as ``kernel_size`` shifted multiply-adds: oneDNN's depthwise 1-D
    convolution reaches only a few hundred MMAC/s here, the shifted form several times more (same
    result, same summation order). With autograd, or on other devices, it is a plain ``nn.Conv1d``.
    """

    def __init__(self, channels: int, kernel_size: int, bias: bool = False):
        super().__init__(
            channels, channels, kernel_size, padding=get_padding(kernel_size), groups=channels, bias=bias
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type != "cpu" or (torch.is_grad_enabled() and (x.requires_grad or self.training)):
            return super().forward(x)
        weight = self.weight[:, 0, :, None]  # (C, K, 1)
        length, padding = x.shape[-1], self.padding[0]
        padded = F.pad(x, (padding, padding))
        y = padded[..., :length] * weight[:, 0]
        for tap in range(1, weight.shape[1]):
            y.addcmul_(padded[..., tap : tap + length], weight[:, tap])
        return y if self.bias is None else y + self.bias[:, None]


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
        self.depthwise = weight_norm(DepthwiseConv1d(channels, kernel_size, bias=False))
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
