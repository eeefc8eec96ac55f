"""Building blocks every discriminator family is made of.

A sub-discriminator is a *front end* (waveform -> tensor: period folding, STFT, pooling) followed by a
*body* (a :class:`ConvStack` generated from lists, or :class:`BandStacks` for band-split STFTs). The one
forward loop lives in :class:`ConvStack`; families only say which front ends and bodies they hold.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from einops import rearrange
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm, weight_norm

from gan_enhance.nn.layers import get_padding
from gan_enhance.nn.spectral import stft
from gan_enhance.registry import Registry

DISCRIMINATORS = Registry("discriminator")

NORMS = {"weight": weight_norm, "spectral": spectral_norm, "none": lambda module: module}


class DiscriminatorOutput(NamedTuple):
    """What one sub-discriminator returns.

    Attributes
    ----------
    logits : Tensor
        ``(B, ...)``: one real/fake score per position (the losses average over all positions).
    feature_maps : list[Tensor]
        The activation after every hidden layer, ``(B, C_i, ...)``, for feature matching.
    """

    logits: torch.Tensor
    feature_maps: list[torch.Tensor]


def _pair(value: int | tuple[int, ...] | list[int], dim: int) -> tuple[int, ...]:
    if isinstance(value, int):
        return (value,) * dim
    if len(value) != dim:
        raise ValueError(f"expected {dim} values, got {list(value)}")
    return tuple(int(v) for v in value)


def _check_lengths(**lists: list) -> None:
    lengths = {name: len(values) for name, values in lists.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"these settings must have the same length: {lengths}")


class ConvStack(nn.Module):
    """Convolutions generated from per-layer lists, each followed by a LeakyReLU.

    Padding is computed from each layer's kernel size and dilation ("same" length at stride 1), so a
    changed kernel size is always honoured.

    Parameters
    ----------
    dim : int
        1 for ``Conv1d`` layers on ``(B, C, T)``, 2 for ``Conv2d`` layers on ``(B, C, H, W)``.
    in_channels : int
        Channels of the input.
    channels, kernel_sizes, strides : list
        Output channels, kernel size and stride of each hidden layer (an int or a ``dim``-tuple each).
    dilations, groups : list, optional
        Per-layer dilation and groups (default 1).
    post_kernel_size : int or tuple, optional
        Kernel of a final linear conv to ``post_channels`` logit maps; ``None`` returns the last hidden
        activation instead (for bodies that merge several stacks first).
    negative_slope : float
        LeakyReLU slope.
    norm : str
        ``"weight"``, ``"spectral"`` or ``"none"``, applied to every conv.
    """

    def __init__(
        self,
        dim: int,
        in_channels: int,
        channels: list[int],
        kernel_sizes: list,
        strides: list,
        dilations: list | None = None,
        groups: list[int] | None = None,
        post_kernel_size: int | tuple[int, ...] | None = None,
        post_channels: int = 1,
        negative_slope: float = 0.1,
        norm: str = "weight",
    ):
        super().__init__()
        if dim not in (1, 2):
            raise ValueError(f"dim must be 1 or 2, got {dim}")
        if norm not in NORMS:
            raise ValueError(f"unknown norm {norm!r}; known: {', '.join(NORMS)}")
        dilations = dilations or [1] * len(channels)
        groups = groups or [1] * len(channels)
        _check_lengths(
            channels=channels, kernel_sizes=kernel_sizes, strides=strides, dilations=dilations, groups=groups
        )
        conv = nn.Conv1d if dim == 1 else nn.Conv2d
        apply_norm = NORMS[norm]
        layers = []
        for out_channels, kernel, stride, dilation, group in zip(
            channels, kernel_sizes, strides, dilations, groups
        ):
            kernel, stride, dilation = _pair(kernel, dim), _pair(stride, dim), _pair(dilation, dim)
            padding = tuple(get_padding(k, d) for k, d in zip(kernel, dilation))
            layers.append(
                apply_norm(conv(in_channels, out_channels, kernel, stride, padding, dilation, groups=group))
            )
            in_channels = out_channels
        self.convs = nn.ModuleList(layers)
        self.activation = nn.LeakyReLU(negative_slope)
        self.post = None
        if post_kernel_size is not None:
            kernel = _pair(post_kernel_size, dim)
            padding = tuple(get_padding(k) for k in kernel)
            self.post = apply_norm(conv(in_channels, post_channels, kernel, 1, padding))
        self.out_channels = post_channels if self.post is not None else in_channels

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """``(B, C, ...) -> (logits or last activation, [activation of every hidden layer])``."""
        features = []
        for conv in self.convs:
            x = self.activation(conv(x))
            features.append(x)
        if self.post is not None:
            x = self.post(x)
        return x, features


def dilated_stack(
    channels: list[int],
    kernel_size: list[int],
    stride: list[int],
    dilations: list[int],
    negative_slope: float,
    norm: str,
) -> ConvStack:
    """EnCodec's spectrogram stack on ``(B, 2, frames, F)``: one plain conv, one strided conv per time
    dilation, one square-kernel conv, then a square-kernel post conv to one logit map.

    ``channels`` has ``len(dilations) + 2`` entries; ``kernel_size`` and ``stride`` read ``(time, freq)``.
    """
    if len(channels) != len(dilations) + 2:
        raise ValueError(
            f"{len(dilations)} dilations need {len(dilations) + 2} channel counts, got {channels}"
        )
    kernel, square_kernel = tuple(kernel_size), (kernel_size[0], kernel_size[0])
    return ConvStack(
        dim=2,
        in_channels=2,
        channels=list(channels),
        kernel_sizes=[kernel] * (len(dilations) + 1) + [square_kernel],
        strides=[1] + [tuple(stride)] * len(dilations) + [1],
        dilations=[1] + [(d, 1) for d in dilations] + [1],
        post_kernel_size=square_kernel,
        negative_slope=negative_slope,
        norm=norm,
    )


class BandStacks(nn.Module):
    """One :class:`ConvStack` per frequency band, outputs joined along frequency, then a shared post conv.

    Parameters
    ----------
    band_bins : list of (int, int)
        ``[start, stop)`` frequency-bin range of each band (last axis of the input).
    stacks : list of ConvStack
        One stack per band, built without a post conv.
    post : nn.Module
        Applied to the concatenation of the band outputs.
    """

    def __init__(self, band_bins: list[tuple[int, int]], stacks: list[ConvStack], post: nn.Module):
        super().__init__()
        if len(band_bins) != len(stacks):
            raise ValueError(f"{len(band_bins)} bands but {len(stacks)} stacks")
        self.band_bins = [(int(lo), int(hi)) for lo, hi in band_bins]
        self.stacks = nn.ModuleList(stacks)
        self.post = post

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """``(B, C, frames, F) -> (logits (B, 1, frames, F'), features of every band and layer)``."""
        outputs, features = [], []
        for (lo, hi), stack in zip(self.band_bins, self.stacks):
            out, band_features = stack(x[..., lo:hi])
            outputs.append(out)
            features.extend(band_features)
        return self.post(torch.cat(outputs, dim=-1)), features


class PeriodFold(nn.Module):
    """``(B, 1, T) -> (B, 1, ceil(T / period), period)``: reflect-pad to a multiple of the period, fold."""

    def __init__(self, period: int):
        super().__init__()
        self.period = period

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        remainder = x.shape[-1] % self.period
        if remainder:
            x = nn.functional.pad(x, (0, self.period - remainder), mode="reflect")
        return rearrange(x, "b c (t p) -> b c t p", p=self.period)


class AvgPoolFrontEnd(nn.Module):
    """``times`` successive average poolings of the waveform (HiFi-GAN's multi-scale input)."""

    def __init__(self, times: int, kernel_size: int, stride: int):
        super().__init__()
        self.pools = nn.Sequential(
            *[nn.AvgPool1d(kernel_size, stride, padding=kernel_size // 2) for _ in range(times)]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pools(x)


class STFTFrontEnd(nn.Module):
    """``(B, 1, T) -> (B, 2, frames, F)``: complex STFT with real and imaginary parts as channels.

    Frames are the height and frequency the width, so 2-D kernels and strides read ``(time, frequency)``.
    """

    def __init__(self, n_fft: int, hop_length: int, win_length: int = 0, normalized: bool = False):
        super().__init__()
        self.n_fft, self.hop_length, self.win_length = n_fft, hop_length, win_length or n_fft
        self.normalized = normalized

    @property
    def n_bins(self) -> int:
        return self.n_fft // 2 + 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spec = stft(x, self.n_fft, self.hop_length, self.win_length, normalized=self.normalized)
        spec = torch.view_as_real(spec)  # (B, 1, F, frames, 2)
        return rearrange(spec, "b c f t ri -> b (c ri) t f")


class SubDiscriminator(nn.Module):
    """A front end followed by a body that returns ``(logits, feature_maps)``.

    Parameters
    ----------
    name : str
        Short label for logs, e.g. ``"mpd/p3"``.
    """

    def __init__(self, name: str, front_end: nn.Module, body: nn.Module):
        super().__init__()
        self.name = name
        self.front_end = front_end
        self.body = body

    def forward(self, x: torch.Tensor) -> DiscriminatorOutput:
        """``(B, 1, T) -> DiscriminatorOutput``."""
        logits, features = self.body(self.front_end(x))
        return DiscriminatorOutput(logits, features)


class DiscriminatorFamily(nn.Module):
    """A list of sub-discriminators sharing one input (what the registry builds)."""

    def __init__(self, discriminators: list[SubDiscriminator]):
        super().__init__()
        self.discriminators = nn.ModuleList(discriminators)

    @property
    def names(self) -> list[str]:
        return [d.name for d in self.discriminators]

    def forward(self, x: torch.Tensor) -> list[DiscriminatorOutput]:
        """``(B, 1, T) -> [DiscriminatorOutput, ...]``, one per sub-discriminator."""
        return [discriminator(x) for discriminator in self.discriminators]
