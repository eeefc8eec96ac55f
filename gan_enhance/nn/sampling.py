"""Strided down- and up-sampling convolutions with exact lengths for any factor.

``T -> T / factor`` and ``T -> T * factor`` (``T`` a multiple of the factor where it divides), with the
same padding on every call, so a model built from them is equivariant to input shifts that are multiples
of its total factor (what chunked inference relies on).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
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
    but with weights that depend only on each output's phase.

    ``F.interpolate`` computes each output's source position in the input's dtype, so in float32 its weights
    drift with the absolute position (wrong by 1e-4 after a few thousand samples, useless after minutes)
    and the same audio gives different values in a chunk and in the whole file.
    """

    def __init__(self, factor: int):
        super().__init__()
        self.factor = factor
        # Output factor * k + j sits at input position k + d_j with d_j = (j + 0.5) / factor - 0.5: it is
        # x[k] moved |d_j| of the way towards its neighbour on the side of d_j. Per phase: (side, fraction).
        self.phases = []
        for phase in range(factor):
            offset = (phase + 0.5) / factor - 0.5
            self.phases.append((1 if offset >= 0 else -1, abs(offset)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, T) -> (B, C, T * factor)``; the edges repeat the first and last samples."""
        if self.factor == 1:
            return x
        length = x.shape[-1]
        padded = F.pad(x, (1, 1), mode="replicate")  # padded[k + 1] = x[k]
        centre = padded[..., 1 : 1 + length]
        phases = [
            torch.lerp(centre, padded[..., 1 + side : 1 + side + length], fraction)
            for side, fraction in self.phases
        ]
        return rearrange(torch.stack(phases, dim=-1), "b c t f -> b c (t f)")
