"""Frame-aligned STFT analysis and overlap-add synthesis for generators.

Frame ``j`` is centred on samples ``[j * hop, (j + 1) * hop)``: the input is zero-padded by
``(n_fft - hop) / 2`` on each side and framed without centring, so ``T`` samples (a multiple of ``hop``)
give exactly ``T / hop`` frames and synthesis gives back exactly ``T`` samples. Nothing depends on the
absolute position or on statistics of the whole input, so a model built on it is equivariant to shifts by
multiples of ``hop``, which chunked inference needs. (The loss-side STFT helpers are in
``gan_enhance.nn.spectral``.)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from gan_enhance.errors import ConfigError


class FramedSTFT(nn.Module):
    """Hann-windowed STFT with ``T / hop`` frames and its exact overlap-add inverse.

    Parameters
    ----------
    n_fft, hop : int
        ``n_fft`` a multiple of ``hop``, ``n_fft - hop`` even.
    """

    def __init__(self, n_fft: int, hop: int):
        super().__init__()
        if n_fft % hop or (n_fft - hop) % 2:
            raise ConfigError(f"n_fft={n_fft} must be a multiple of hop={hop} with n_fft - hop even")
        self.n_fft, self.hop, self.pad = n_fft, hop, (n_fft - hop) // 2
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)

    @property
    def bins(self) -> int:
        return self.n_fft // 2 + 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 1, T)`` (``T`` a multiple of hop) -> complex ``(B, n_fft // 2 + 1, T / hop)``."""
        padded = F.pad(x[:, 0], (self.pad, self.pad))
        return torch.stft(padded, self.n_fft, self.hop, window=self.window, center=False, return_complex=True)

    def inverse(self, spec: torch.Tensor) -> torch.Tensor:
        """complex ``(B, n_fft // 2 + 1, N)`` -> ``(B, 1, N * hop)`` by windowed overlap-add."""
        frames = torch.fft.irfft(spec, n=self.n_fft, dim=1) * self.window[:, None]
        count = frames.shape[-1]
        length = (count - 1) * self.hop + self.n_fft
        signal = F.fold(frames, (1, length), (1, self.n_fft), stride=(1, self.hop))[:, 0, 0]
        envelope = F.fold(
            self.window.pow(2)[None, :, None].expand(1, -1, count),
            (1, length),
            (1, self.n_fft),
            stride=(1, self.hop),
        )[:, 0, 0]
        signal = signal / envelope.clamp_min(1e-8)
        return signal[:, None, self.pad : self.pad + count * self.hop]
