"""Frame-aligned STFT analysis and overlap-add synthesis for generators.

Frame ``j`` is centred on samples ``[j * hop, (j + 1) * hop)``: the input is zero-padded by
``(n_fft - hop) / 2`` on each side and framed without centring, so ``T`` samples (a multiple of ``hop``)
give exactly ``T / hop`` frames and synthesis gives back exactly ``T`` samples. Nothing depends on the
absolute position or on statistics of the whole input, so a model built on it is equivariant to shifts by
multiples of ``hop``, which chunked inference needs. (The loss-side STFT helpers are in
``gan_enhance.nn.spectral``.)

Spectra are pairs of real tensors ``(real, imag)``, not complex tensors: the ONNX exporter cannot express
complex values, and generators built on these pairs export like any other network. Two kernels compute
the same transform: FFTs (``torch.stft`` / ``torch.fft.irfft``, the fast one) and convolutions with a
fixed DFT basis (what ONNX can express). The second runs while ``torch.onnx.export`` traces a model, or
for every call once :attr:`FramedSTFT.dft_matmul` is set; the two agree to float32 rounding.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from gan_enhance.devices import cached_constant
from gan_enhance.errors import ConfigError


@cached_constant(16)
def _dft_kernels(n_fft: int, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Analysis and synthesis kernels ``(2 * bins, 1, n_fft)`` of the Hann-windowed one-sided DFT.

    Analysis rows are ``w[n] cos(2 pi k n / N)`` then ``-w[n] sin(...)``, so a strided conv gives the real
    and imaginary parts of every frame. Synthesis rows are the inverse real FFT (bins other than DC and
    Nyquist counted twice, imaginary parts of those two ignored, as ``irfft`` does) times the window, so
    a transposed conv with stride ``hop`` gives the windowed overlap-add. Angles are taken from
    ``k * n mod N`` in float64: ``2 pi k n / N`` in float32 loses digits for large ``k * n``.
    """
    bins = n_fft // 2 + 1
    k = torch.arange(bins, dtype=torch.float64)[:, None]
    n = torch.arange(n_fft, dtype=torch.float64)[None]
    angle = 2 * math.pi * torch.remainder(k * n, n_fft) / n_fft
    hann = torch.hann_window(n_fft, dtype=torch.float64)
    cos, sin = torch.cos(angle), torch.sin(angle)
    analysis = torch.cat([cos * hann, -sin * hann])
    weight = torch.full((bins, 1), 2.0, dtype=torch.float64)
    weight[0] = 1.0
    if n_fft % 2 == 0:
        weight[-1] = 1.0
    synthesis = torch.cat([cos * weight, -sin * weight]) * hann / n_fft
    return (
        analysis[:, None].to(device=device, dtype=dtype),
        synthesis[:, None].to(device=device, dtype=dtype),
    )


def magnitude(real: torch.Tensor, imag: torch.Tensor) -> torch.Tensor:
    """``|real + i imag|`` with a zero (not NaN) gradient where both parts are zero, like complex ``abs``.

    The squared magnitude is floored at 1e-24 before the square root, which moves values below 1e-12 only.
    """
    return (real.square() + imag.square()).clamp_min(1e-24).sqrt()


class FramedSTFT(nn.Module):
    """Hann-windowed STFT with ``T / hop`` frames and its exact overlap-add inverse.

    Parameters
    ----------
    n_fft, hop : int
        ``n_fft`` a multiple of ``hop``, ``n_fft - hop`` even.
    """

    dft_matmul = False
    """Use the DFT-basis kernel outside ONNX export too (tests compare the two kernels with it)."""

    def __init__(self, n_fft: int, hop: int):
        super().__init__()
        if n_fft % hop or (n_fft - hop) % 2:
            raise ConfigError(f"n_fft={n_fft} must be a multiple of hop={hop} with n_fft - hop even")
        self.n_fft, self.hop, self.pad = n_fft, hop, (n_fft - hop) // 2
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)

    @property
    def bins(self) -> int:
        return self.n_fft // 2 + 1

    def _use_dft_matmul(self) -> bool:
        return self.dft_matmul or torch.onnx.is_in_onnx_export()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, 1, T)`` (``T`` a multiple of hop) -> ``(real, imag)``, each ``(B, n_fft // 2 + 1, T / hop)``."""
        padded = F.pad(x, (self.pad, self.pad))
        if self._use_dft_matmul():
            analysis, _ = _dft_kernels(self.n_fft, x.device, x.dtype)
            real, imag = F.conv1d(padded, analysis, stride=self.hop).chunk(2, dim=1)
            return real, imag
        spec = torch.stft(
            padded[:, 0], self.n_fft, self.hop, window=self.window, center=False, return_complex=True
        )
        return spec.real, spec.imag

    def inverse(self, real: torch.Tensor, imag: torch.Tensor) -> torch.Tensor:
        """``(real, imag)``, each ``(B, n_fft // 2 + 1, N)`` -> ``(B, 1, N * hop)`` by windowed overlap-add."""
        count = real.shape[-1]
        if self._use_dft_matmul():
            _, synthesis = _dft_kernels(self.n_fft, real.device, real.dtype)
            signal = F.conv_transpose1d(torch.cat([real, imag], dim=1), synthesis, stride=self.hop)
        else:
            frames = torch.fft.irfft(torch.complex(real, imag), n=self.n_fft, dim=1) * self.window[:, None]
            length = (count - 1) * self.hop + self.n_fft
            signal = F.fold(frames, (1, length), (1, self.n_fft), stride=(1, self.hop))[:, :, 0]
        # Sum of squared windows over the frames covering each sample (constant inside, lower at the ends).
        envelope = F.conv_transpose1d(
            torch.ones_like(real[:1, :1]), self.window.pow(2)[None, None].to(real.dtype), stride=self.hop
        )
        signal = signal / envelope.clamp_min(1e-8)
        return signal[..., self.pad : self.pad + count * self.hop]
