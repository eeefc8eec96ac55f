"""A 1-D U-Net skeleton: per-level blocks, strided down/up-sampling with optional parameter-free shortcuts
(``scale_vs_channels``), and skip connections merged by 1x1 convs."""

from __future__ import annotations

from collections.abc import Callable

import torch
from einops import rearrange, reduce, repeat
from torch import nn

from gan_enhance.errors import ConfigError
from gan_enhance.nn.layers import WNConv1d
from gan_enhance.nn.sampling import Downsample1d, Upsample1d


class ShortcutDownsample1d(nn.Module):
    """Strided conv ``(B, C_in, T) -> (B, C_out, T / f)`` plus a parameter-free shortcut.

    The shortcut folds each ``f`` time steps into channels (``C_in * f``) and averages groups of
    ``scale_vs_channels`` of them, so ``C_out * scale_vs_channels == C_in * f``: the ratio says how much of
    the lost time resolution is kept as channels. ``scale_vs_channels = 0`` turns the shortcut off.
    """

    def __init__(self, in_channels: int, out_channels: int, factor: int, scale_vs_channels: int):
        super().__init__()
        self.conv = Downsample1d(in_channels, out_channels, factor)
        self.factor, self.group = factor, scale_vs_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        if self.group:
            folded = rearrange(x, "b c (t f) -> b (c f) t", f=self.factor)
            y = y + reduce(folded, "b (c g) t -> b c t", "mean", g=self.group)
        return y


class ShortcutUpsample1d(nn.Module):
    """Transposed strided conv ``(B, C_in, T) -> (B, C_out, T * f)`` plus the mirror shortcut: each channel
    repeated ``scale_vs_channels`` times, then unfolded into time (``C_in * scale_vs_channels == C_out * f``)."""

    def __init__(self, in_channels: int, out_channels: int, factor: int, scale_vs_channels: int):
        super().__init__()
        self.conv = Upsample1d(in_channels, out_channels, factor)
        self.factor, self.group = factor, scale_vs_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        if self.group:
            repeated = repeat(x, "b c t -> b (c g) t", g=self.group)
            y = y + rearrange(repeated, "b (c f) t -> b c (t f)", f=self.factor)
        return y


class UNet1d(nn.Module):
    """``(B, channels[0], T) -> (B, channels[0], T)`` for ``T`` a multiple of ``prod(factors)``.

    Level ``i`` runs ``blocks[i]`` blocks at ``channels[i]`` on the way down and again on the way up
    (the deepest level once); between levels ``i`` and ``i + 1`` time shrinks by ``factors[i]``.

    Parameters
    ----------
    channels, blocks : list[int]
        Per level, ``L`` entries each.
    factors, scale_vs_channels : list[int]
        Per transition, ``L - 1`` entries each (see :class:`ShortcutDownsample1d`).
    make_block : callable
        ``make_block(channels) -> nn.Module`` keeping ``(B, C, T)``; the module has a ``radius`` attribute
        (its receptive radius in its own time steps).
    """

    def __init__(
        self,
        channels: list[int],
        blocks: list[int],
        factors: list[int],
        scale_vs_channels: list[int],
        make_block: Callable[[int], nn.Module],
        name: str = "UNet1d",
    ):
        super().__init__()
        levels = len(channels)
        if len(blocks) != levels or len(factors) != levels - 1 or len(scale_vs_channels) != levels - 1:
            raise ConfigError(
                f"{name}: channels and blocks need one entry per level, factors and scale_vs_channels one fewer; "
                f"got channels={channels}, blocks={blocks}, factors={factors}, scale_vs_channels={scale_vs_channels}"
            )
        for i, (factor, group) in enumerate(zip(factors, scale_vs_channels)):
            if group and channels[i + 1] * group != channels[i] * factor:
                raise ConfigError(
                    f"{name}: with scale_vs_channels[{i}]={group}, channels[{i + 1}] must be "
                    f"channels[{i}] * factors[{i}] / {group} = {channels[i] * factor / group}; "
                    f"got {channels[i + 1]} (or set scale_vs_channels[{i}] to 0)"
                )
        self.factors = list(factors)
        self.encoder = nn.ModuleList(
            self._stack(make_block, channels[i], blocks[i]) for i in range(levels - 1)
        )
        self.downs = nn.ModuleList(
            ShortcutDownsample1d(channels[i], channels[i + 1], factors[i], scale_vs_channels[i])
            for i in range(levels - 1)
        )
        self.bottleneck = self._stack(make_block, channels[-1], blocks[-1])
        self.ups = nn.ModuleList(
            ShortcutUpsample1d(channels[i + 1], channels[i], factors[i], scale_vs_channels[i])
            for i in range(levels - 1)
        )
        self.merges = nn.ModuleList(WNConv1d(2 * channels[i], channels[i], 1) for i in range(levels - 1))
        self.decoder = nn.ModuleList(
            self._stack(make_block, channels[i], blocks[i]) for i in range(levels - 1)
        )
        self.radius = self._radius(blocks)

    @staticmethod
    def _stack(make_block: Callable[[int], nn.Module], channels: int, count: int) -> nn.Sequential:
        return nn.Sequential(*(make_block(channels) for _ in range(count)))

    def _radius(self, blocks: list[int]) -> int:
        """Receptive radius in input steps: an upper bound, summed along the deepest path."""
        radius, step = 0, 1
        for i, factor in enumerate(self.factors):
            block_radius = sum(block.radius for block in self.encoder[i])
            # Encoder and decoder blocks at this level; a strided (transposed) conv of kernel 2f on each side.
            radius += 2 * block_radius * step + 2 * 2 * factor * step
            step *= factor
        return radius + sum(block.radius for block in self.bottleneck) * step

    @property
    def multiple(self) -> int:
        """Time steps must be a multiple of this."""
        total = 1
        for factor in self.factors:
            total *= factor
        return total

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for blocks, down in zip(self.encoder, self.downs):
            x = blocks(x)
            skips.append(x)
            x = down(x)
        x = self.bottleneck(x)
        for i in reversed(range(len(self.ups))):
            x = self.ups[i](x)
            x = self.merges[i](torch.cat([x, skips[i]], dim=1))
            x = self.decoder[i](x)
        return x
