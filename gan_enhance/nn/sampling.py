"""Strided down- and up-sampling convolutions with exact lengths for any factor, and a fixed band-limited
(sinc) upsampler.

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


class SincUpsample1d(nn.Module):
    """Band-limited upsampling by an integer factor: a Kaiser-windowed sinc, run as a polyphase filter.

    Output sample ``factor * n + j`` sits at input time ``n + j / factor`` (sample ``n`` at time ``n / rate``,
    as the data pipeline's sinc resampling places it): zero delay, and phase 0 returns the input exactly.
    The filter passes up to 0.45 of the input rate flat within 0.002 dB and attenuates the images of that
    band (at 0.55 of the input rate and above) by at least 75 dB at the defaults. It is fixed: a
    non-persistent buffer, so it adds no parameters and no state-dict keys.

    Each output phase is a conv at the input rate (``2 * half_width + 1`` taps, ``factor`` output channels),
    interleaved, instead of a conv over a zero-stuffed signal at the output rate. The input is zero-padded
    by ``half_width`` on each side: an output sample depends on the input samples within ``half_width``.

    Parameters
    ----------
    factor : int
        Upsampling factor (1 = identity).
    half_width : int
        Filter half-length in input samples (the filter spans ``2 * half_width * factor + 1`` output samples).
    beta : float
        Kaiser window shape: larger trades a wider transition band for more stopband attenuation.
    """

    def __init__(self, factor: int, half_width: int = 24, beta: float = 7.5):
        super().__init__()
        self.factor, self.half_width = factor, half_width
        #: Input samples on each side that an output sample depends on.
        self.radius = half_width if factor > 1 else 0
        self.register_buffer("kernel", sinc_phases(factor, half_width, beta).float(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, T) -> (B, C, T * factor)``."""
        if self.factor == 1:
            return x
        batch = x.shape[0]
        padded = F.pad(rearrange(x, "b c t -> (b c) 1 t"), (self.half_width, self.half_width))
        phases = F.conv1d(padded, self.kernel.to(x.dtype))
        return rearrange(phases, "(b c) f t -> b c (t f)", b=batch)


def sinc_phases(factor: int, half_width: int, beta: float) -> torch.Tensor:
    """Polyphase taps of a Kaiser-windowed sinc low-pass at the input's Nyquist frequency, for ``F.conv1d``.

    Returns
    -------
    Tensor (factor, 1, 2 * half_width + 1), float64
        Phase ``j``, tap ``i`` weights input sample ``n - half_width + i`` for output ``factor * n + j``; each
        phase sums to 1 (no images of DC).
    """
    span = factor * half_width
    offsets = torch.arange(-span, span + 1, dtype=torch.float64)  # filter taps at the output rate
    window = torch.kaiser_window(2 * span + 1, periodic=False, beta=beta, dtype=torch.float64)
    taps = torch.sinc(offsets / factor) * window
    # The sinc is zero at the input's other samples: make it exactly so (phase 0 passes the input as is).
    on_input_samples = offsets.remainder(factor) == 0
    taps = torch.where(on_input_samples, (offsets == 0).double(), taps)
    # Tap i of phase j is the filter at output offset factor * (half_width - i) + j; offsets past the
    # filter's end (phase j > 0, i = 0) are zero.
    taps = F.pad(taps, (0, factor))
    index = factor * torch.arange(2 * half_width, -1, -1)[None, :] + torch.arange(factor)[:, None]
    phases = taps[index]
    return (phases / phases.sum(dim=1, keepdim=True))[:, None, :]
