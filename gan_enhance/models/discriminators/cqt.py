"""Multi-scale sub-band constant-Q discriminator (BigVGAN v2's CQT-D).

A constant-Q transform gives every octave the same number of bins, so low harmonics of voices and
instruments are resolved as finely as high ones (an STFT packs them into a few bins). Each scale
upsamples the input 2x (as BigVGAN does, so the top octave sits well below the Nyquist frequency), takes a
complex CQT, runs one small conv per octave (the "sub-band" part), and then the same dilated 2-D conv stack
as the MS-STFT discriminator.

The CQT is computed octave by octave (the "CQT2010" scheme): one set of complex kernels for the top octave
is applied to the signal decimated by 2, 4, 8, ... with a half-band FIR in between, which keeps every
kernel short. Kernels are Hann-windowed complex exponentials of length ``Q * rate / f`` normalised to unit
L1 norm, so a unit sinusoid at a bin frequency gives a magnitude of about 0.5 in that bin.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from einops import rearrange
from torch import nn

from gan_enhance.audio import resample
from gan_enhance.errors import ConfigError
from gan_enhance.models.discriminators.base import (
    DISCRIMINATORS,
    DiscriminatorFamily,
    SubDiscriminator,
    dilated_stack,
)
from gan_enhance.nn.layers import get_padding

# List defaults below are what `gan-enhance train --help` shows (argbind's generated help); values are
# checked against the type hints; the defaults are never mutated.


def octaves_below_nyquist(sample_rate: float, fmin: float, bins_per_octave: int, n_octaves: int) -> int:
    """The largest count ``<= n_octaves`` whose top bin stays below ``sample_rate / 2``."""
    top_octaves = math.log2(sample_rate / 2 / fmin) + 1 / bins_per_octave
    return max(1, min(n_octaves, math.ceil(top_octaves) - 1))


class ConstantQTransform(nn.Module):
    """Complex CQT, ``(B, 1, T) -> (B, 2, frames, n_octaves * bins_per_octave)`` (real, imag; bins rising).

    Parameters
    ----------
    sample_rate : int
        Rate of the input.
    hop_length : int
        Hop of the output frames in input samples; must be divisible by ``2 ** (n_octaves - 1)``.
    n_octaves, bins_per_octave : int
        Frequency range and resolution, from ``fmin`` up.
    fmin : float
        Lowest bin in Hz.
    lowpass_taps : int
        Length of the (odd) half-band FIR used before each decimation.
    """

    def __init__(
        self,
        sample_rate: int,
        hop_length: int,
        n_octaves: int,
        bins_per_octave: int,
        fmin: float,
        lowpass_taps: int,
    ):
        super().__init__()
        if hop_length % 2 ** (n_octaves - 1):
            raise ConfigError(
                f"CQT hop_length {hop_length} must be divisible by 2**(n_octaves - 1) = {2 ** (n_octaves - 1)}"
            )
        top_bin = fmin * 2 ** (n_octaves - 1 / bins_per_octave)
        if top_bin >= sample_rate / 2:
            raise ConfigError(
                f"CQT top bin {top_bin:.0f} Hz is above the Nyquist frequency of {sample_rate} Hz: "
                "use fewer octaves or a lower fmin"
            )
        self.hop_length, self.n_octaves, self.bins_per_octave = hop_length, n_octaves, bins_per_octave
        quality = 1 / (2 ** (1 / bins_per_octave) - 1)
        top_octave = fmin * 2 ** (n_octaves - 1) * 2 ** (np.arange(bins_per_octave) / bins_per_octave)
        lengths = np.ceil(quality * sample_rate / top_octave).astype(int)
        self.n_fft = 2 ** int(math.ceil(math.log2(lengths.max())))
        kernels = np.zeros((bins_per_octave, self.n_fft), dtype=np.complex128)
        for k, (frequency, length) in enumerate(zip(top_octave, lengths)):
            t = np.arange(length) - length // 2
            kernel = np.hanning(length + 2)[1:-1] * np.exp(2j * np.pi * frequency * t / sample_rate)
            start = (self.n_fft - length) // 2
            kernels[k, start : start + length] = kernel / np.abs(kernel).sum()
        # Real and imaginary parts as 2 * bins output channels of one conv1d.
        weight = np.concatenate([kernels.real, kernels.imag])[:, None, :]
        self.register_buffer("kernels", torch.tensor(weight, dtype=torch.float32), persistent=False)
        from scipy.signal import firwin  # scipy.signal is slow to import: only when a CQT is built

        lowpass = firwin(lowpass_taps, 0.5, window="hann")
        self.register_buffer(
            "lowpass", torch.tensor(lowpass, dtype=torch.float32)[None, None], persistent=False
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float()
        octaves = []
        for octave in range(self.n_octaves):  # top octave first, then the signal decimated by 2, 4, ...
            if octave:
                padded = nn.functional.pad(x, (self.lowpass.shape[-1] // 2,) * 2)
                x = nn.functional.conv1d(padded, self.lowpass, stride=2)
            padded = nn.functional.pad(x, (self.n_fft // 2, self.n_fft // 2))
            octaves.append(nn.functional.conv1d(padded, self.kernels, stride=self.hop_length // 2**octave))
        frames = min(o.shape[-1] for o in octaves)
        spec = torch.cat(
            [o[..., :frames] for o in reversed(octaves)], dim=1
        )  # (B, octaves * 2 * bins, frames), lowest first
        spec = rearrange(spec, "b (o ri k) t -> b ri t (o k)", o=self.n_octaves, ri=2)
        return spec


class CQTFrontEnd(nn.Module):
    """Upsample, CQT, then one linear conv per octave: ``(B, 1, T) -> (B, 2, frames, bins)``."""

    def __init__(self, sample_rate: int, resample_factor: int, transform: ConstantQTransform, kernel_size):
        super().__init__()
        self.sample_rate, self.resample_factor = sample_rate, resample_factor
        self.transform = transform
        padding = tuple(get_padding(k) for k in kernel_size)
        self.octave_convs = nn.ModuleList(
            [nn.Conv2d(2, 2, kernel_size, padding=padding) for _ in range(transform.n_octaves)]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.resample_factor > 1:
            x = resample(x.float(), self.sample_rate, self.sample_rate * self.resample_factor)
        spec = self.transform(x)
        octaves = spec.split(self.transform.bins_per_octave, dim=-1)
        return torch.cat([conv(octave) for conv, octave in zip(self.octave_convs, octaves)], dim=-1)


@DISCRIMINATORS.register("cqt")
class MultiScaleSubbandCQTDiscriminator(DiscriminatorFamily):
    """One CQT sub-discriminator per (hop, bins-per-octave) pair.

    Parameters
    ----------
    sample_rate : int
        Rate of the audio (set by :func:`build_discriminator`; required).
    hop_lengths, bins_per_octaves : list[int]
        Per scale (same lengths). Hops are in upsampled samples, as in BigVGAN.
    n_octaves : int
        At most this many octaves from ``fmin``; fewer where the top one would pass the Nyquist frequency
        of the upsampled rate (9 at 24 kHz and above, 8 at 16 kHz with the defaults).
    fmin : float
        Lowest bin in Hz (C1).
    resample_factor : int
        Upsampling before the CQT.
    filters : int
        Channels of the conv stack.
    kernel_size, stride : list[int]
        ``(time, frequency)`` kernel (also of the per-octave convs) and stride of the dilated layers.
    dilations : list[int]
        Time dilation of each dilated layer.
    lowpass_taps : int
        Length of the decimation filter of the CQT.
    negative_slope : float
        LeakyReLU slope.
    norm : str
        ``"weight"``, ``"spectral"`` or ``"none"`` (the stack; the per-octave convs are plain, as in BigVGAN).
    """

    def __init__(
        self,
        sample_rate: int = 0,
        hop_lengths: list[int] = [512, 256, 256],  # noqa: B006
        bins_per_octaves: list[int] = [24, 36, 48],  # noqa: B006
        n_octaves: int = 9,
        fmin: float = 32.7,
        resample_factor: int = 2,
        filters: int = 32,
        kernel_size: list[int] = [3, 9],  # noqa: B006
        stride: list[int] = [1, 2],  # noqa: B006
        dilations: list[int] = [1, 2, 4],  # noqa: B006
        lowpass_taps: int = 127,
        negative_slope: float = 0.1,
        norm: str = "weight",
    ):
        if not sample_rate:
            raise ConfigError(
                "the cqt discriminator needs the sample rate (build it with build_discriminator)"
            )
        if len(hop_lengths) != len(bins_per_octaves):
            raise ConfigError(
                f"cqt hop_lengths {hop_lengths} and bins_per_octaves {bins_per_octaves} differ in length"
            )
        rate = sample_rate * resample_factor
        discriminators = []
        for hop, bins in zip(hop_lengths, bins_per_octaves):
            octaves = octaves_below_nyquist(rate, fmin, bins, n_octaves)
            transform = ConstantQTransform(rate, hop, octaves, bins, fmin, lowpass_taps)
            channels = [filters] * (len(dilations) + 2)
            body = dilated_stack(channels, kernel_size, stride, dilations, negative_slope, norm)
            front_end = CQTFrontEnd(sample_rate, resample_factor, transform, tuple(kernel_size))
            discriminators.append(SubDiscriminator(f"cqt/h{hop}b{bins}", front_end, body))
        super().__init__(discriminators)
