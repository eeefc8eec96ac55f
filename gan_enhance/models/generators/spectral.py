"""``spectral``: an STFT-domain magnitude mask and phase correction; the fast baseline."""

from __future__ import annotations

import torch
from einops import rearrange
from torch import nn

from gan_enhance.models.generators.base import Generator
from gan_enhance.models.generators.registry import GENERATORS
from gan_enhance.nn.convnext import ChannelNorm, ConvNeXtBlock1d
from gan_enhance.nn.frames import FramedSTFT, magnitude
from gan_enhance.nn.layers import WNConv1d, init_conv_weights


@GENERATORS.register("spectral")
class SpectralMaskGenerator(Generator):
    """Per-frame ConvNeXt network on the log-magnitude spectrogram predicting, for every input bin, a gain
    in ``[0, max_gain]`` and a phase rotation (``Y = X * gain * rotation``), and for ``ratio > 1`` the complex
    values of the bins above the input's Nyquist frequency directly.

    Output frames have ``ratio`` times the input's FFT size and hop at ``ratio`` times its rate, so input and
    output frames cover the same time; chunk starts must be multiples of ``hop`` (:attr:`alignment`).

    Parameters
    ----------
    in_sample_rate, out_sample_rate : int
        Output rate an integer multiple of the input rate.
    n_fft, hop : int
        Input STFT size and hop (``n_fft`` a multiple of ``hop``).
    channels : int
        Width of the frame network.
    blocks : int
        Number of ConvNeXt blocks over frames.
    kernel_size : int
        Depthwise kernel, in frames.
    expansion : int
        Pointwise MLP width as a multiple of the channels.
    layer_scale : float
        Initial residual-branch scale of the blocks.
    max_gain : float
        Largest magnitude gain (above 1 lets the model restore attenuated bands).
    min_gain : float
        Smallest magnitude gain (a gain floor, e.g. 0.1 = -20 dB: the mask cannot remove a bin entirely,
        which bounds the damage of over-suppression to speech at low SNR; 0: no floor).
    log_floor : float
        Added to magnitudes before the log.
    init_std : float
        Standard deviation of the initial conv weights.
    """

    def __init__(
        self,
        in_sample_rate: int = 16000,
        out_sample_rate: int = 16000,
        n_fft: int = 512,
        hop: int = 128,
        channels: int = 256,
        blocks: int = 4,
        kernel_size: int = 7,
        expansion: int = 2,
        layer_scale: float = 0.1,
        max_gain: float = 2.0,
        min_gain: float = 0.0,
        log_floor: float = 1e-5,
        init_std: float = 0.02,
    ):
        super().__init__(in_sample_rate, out_sample_rate)
        self.analysis = FramedSTFT(n_fft, hop)
        self.synthesis = FramedSTFT(n_fft * self.ratio, hop * self.ratio)
        if not 0.0 <= min_gain < max_gain:
            raise ValueError(
                f"spectral: need 0 <= min_gain < max_gain, got min_gain {min_gain}, max_gain {max_gain}"
            )
        self.max_gain, self.min_gain, self.log_floor = max_gain, min_gain, log_floor
        bins = self.analysis.bins
        self.extension_bins = self.synthesis.bins - bins
        self.input = WNConv1d(bins, channels, 1)
        self.blocks = nn.Sequential(
            *(ConvNeXtBlock1d(channels, kernel_size, expansion, layer_scale) for _ in range(blocks))
        )
        self.norm = ChannelNorm(channels)
        # Per input bin: gain logit, rotation (cos, sin) offsets; per extension bin: real and imaginary parts.
        self.output = WNConv1d(channels, 3 * bins + 2 * self.extension_bins, 1)
        init_conv_weights(self, init_std)

    @property
    def alignment(self) -> int:
        return self.analysis.hop

    def receptive_radius(self) -> int:
        frames = sum(block.radius for block in self.blocks)
        # An output sample is built from frames overlapping it, which saw samples up to n_fft away.
        return self.analysis.n_fft + frames * self.analysis.hop

    def generate(self, x: torch.Tensor) -> torch.Tensor:
        real, imag = self.analysis(x)
        features = torch.log(magnitude(real, imag) + self.log_floor)
        h = self.output(self.norm(self.blocks(self.input(features))))
        bins = self.analysis.bins
        gain_logit, cos, sin = rearrange(h[:, : 3 * bins], "b (k f) n -> k b f n", k=3)
        # Rotation starts near identity: (1 + cos, sin) normalised to a unit complex number.
        cos = 1.0 + cos
        norm = magnitude(cos, sin).clamp_min(self.log_floor)
        # The same signal at ratio times the rate and FFT size has ratio times the bin values.
        gain = self.min_gain + (self.max_gain - self.min_gain) * torch.sigmoid(gain_logit)
        gain = gain * self.ratio / norm
        out_real = gain * (real * cos - imag * sin)
        out_imag = gain * (real * sin + imag * cos)
        if self.extension_bins:
            ext_real, ext_imag = rearrange(h[:, 3 * bins :], "b (k f) n -> k b f n", k=2)
            out_real = torch.cat([out_real, ext_real], dim=1)
            out_imag = torch.cat([out_imag, ext_imag], dim=1)
        return self.synthesis.inverse(out_real, out_imag)
