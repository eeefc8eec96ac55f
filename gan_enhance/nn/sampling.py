"""Strided down- and up-sampling convolutions with exact lengths for any factor.

``T -> T / factor`` and ``T -> T * factor`` (``T`` a multiple of the factor where it divides), with the
same padding on every call, so a model built from them is equivariant to input shifts that are multiples
of its total factor (what chunked inference relies on).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from gan_enhance.nn.layers import WNConv1d, WNConvTranspose1d


class Downsample1d(nn.Module):
    """Strided conv, kernel ``2 * factor``: ``(B, C_in, T) -> (B, C_out, T / factor)``.

    Output step ``j`` sees input samples ``[j f - f // 2, j f - f // 2 + 2 f)``.
    """

    def __init__(self, in_channels: int, out_channels: int, factor: int, bias: bool = True):
        super().__init__()
        self.factor = factor
        self.conv = WNConv1d(in_channels, out_channels, 2 * factor, stride=factor, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        left = self.factor // 2
        return self.conv(F.pad(x, (left, self.factor - left)))


class Upsample1d(nn.Module):
    """Transposed strided conv, kernel ``2 * factor``: ``(B, C_in, T) -> (B, C_out, T * factor)``."""

    def __init__(self, in_channels: int, out_channels: int, factor: int, bias: bool = True):
        super().__init__()
        self.factor = factor
        self.conv = WNConvTranspose1d(in_channels, out_channels, 2 * factor, stride=factor, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The transposed conv gives (T + 1) * f samples; drop the half-kernel overhang on each side.
        left = self.factor // 2
        return self.conv(x)[..., left : left + x.shape[-1] * self.factor]


class LinearUpsample1d(nn.Module):
    """Linear interpolation by an integer factor, like ``F.interpolate(mode="linear", align_corners=False)``
    but as a fixed transposed convolution.

    ``F.interpolate`` computes each output's source position in the input's dtype, so in float32 its weights
    drift with the absolute position (wrong by 1e-4 after a few thousand samples, useless after minutes)
    and the same audio gives different values in a chunk and in the whole file. Here the weights depend
    only on the output's phase.
    """

    def __init__(self, factor: int):
        super().__init__()
        self.factor = factor
        # Output i = factor * k + j sits at input position k + (j + 0.5) / factor - 0.5; the weight of input
        # m is the triangle max(0, 1 - |position - m|), a function of n = i - factor * m alone.
        n = torch.arange(-2 * factor, 2 * factor + 1, dtype=torch.float64)
        weights = (1 - (n / factor + 0.5 / factor - 0.5).abs()).clamp_min(0)
        nonzero = weights.nonzero()[:, 0]
        self.first = int(n[nonzero[0]])
        kernel = weights[nonzero[0] : nonzero[-1] + 1].float()
        self.register_buffer("kernel", kernel[None, None], persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, T) -> (B, C, T * factor)``; the edges repeat the first and last samples."""
        batch, channels, length = x.shape
        padded = F.pad(x.reshape(batch * channels, 1, length), (1, 1), mode="replicate")
        y = F.conv_transpose1d(padded, self.kernel.to(x.dtype), stride=self.factor)
        # Padded input m + 1 is input m: output i sits at transposed-conv index i + factor - first.
        start = self.factor - self.first
        return y[..., start : start + length * self.factor].reshape(batch, channels, length * self.factor)
