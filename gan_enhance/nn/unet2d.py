"""A small 2-D U-Net over (frequency, frame) maps, for spectrogram branches (HiFi++'s SpectralUNet and
SpectralMaskNet). No normalisation layers: nothing is computed over the whole input, so chunking is exact."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

from gan_enhance.nn.layers import WNConv2d


class ConvBlock2d(nn.Module):
    """Two 3x3 convs with LeakyReLU, plus the input."""

    radius = 2

    def __init__(self, channels: int, slope: float):
        super().__init__()
        self.layers = nn.Sequential(
            WNConv2d(channels, channels, 3, padding=1),
            nn.LeakyReLU(slope),
            WNConv2d(channels, channels, 3, padding=1),
            nn.LeakyReLU(slope),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.layers(x)


class UNet2d(nn.Module):
    """``(B, C_in, F, N) -> (B, C_out, F, N)``; each level halves both axes (kernel 4, stride 2).

    ``F`` is padded to a multiple of :attr:`multiple` and cropped back; ``N`` must already be a multiple
    (the generator's alignment guarantees it; padding frames here would make chunks differ).

    Parameters
    ----------
    in_channels, out_channels : int
        Channels of the input and output maps.
    widths : list[int]
        Channels per level.
    slope : float
        LeakyReLU negative slope.
    """

    def __init__(self, in_channels: int, out_channels: int, widths: list[int], slope: float = 0.2):
        super().__init__()
        levels = len(widths)
        self.input = WNConv2d(in_channels, widths[0], 3, padding=1)
        self.encoder = nn.ModuleList(ConvBlock2d(w, slope) for w in widths[:-1])
        self.downs = nn.ModuleList(
            nn.Sequential(WNConv2d(widths[i], widths[i + 1], 4, stride=2, padding=1), nn.LeakyReLU(slope))
            for i in range(levels - 1)
        )
        self.bottleneck = ConvBlock2d(widths[-1], slope)
        self.ups = nn.ModuleList(
            nn.Sequential(
                weight_norm(nn.ConvTranspose2d(widths[i + 1], widths[i], 4, stride=2, padding=1)),
                nn.LeakyReLU(slope),
            )
            for i in range(levels - 1)
        )
        self.merges = nn.ModuleList(WNConv2d(2 * w, w, 1) for w in widths[:-1])
        self.decoder = nn.ModuleList(ConvBlock2d(w, slope) for w in widths[:-1])
        self.output = WNConv2d(widths[0], out_channels, 3, padding=1)
        self.multiple = 2 ** (levels - 1)

    @property
    def radius(self) -> int:
        """Receptive radius along frames (an upper bound)."""
        radius, step = 2, 1  # the input and output 3x3 convs
        for _ in self.downs:
            # Blocks on both sides, the strided conv and its transpose (2 fine steps each).
            radius += 2 * ConvBlock2d.radius * step + 4 * step
            step *= 2
        return radius + ConvBlock2d.radius * step

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bins = x.shape[-2]
        x = F.pad(x, (0, 0, 0, -bins % self.multiple))
        h = self.input(x)
        skips = []
        for block, down in zip(self.encoder, self.downs):
            h = block(h)
            skips.append(h)
            h = down(h)
        h = self.bottleneck(h)
        for i in reversed(range(len(self.ups))):
            h = self.ups[i](h)
            h = self.decoder[i](self.merges[i](torch.cat([h, skips[i]], dim=1)))
        return self.output(h)[..., :bins, :]
