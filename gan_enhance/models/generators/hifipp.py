"""``hifipp``: HiFi++ (SpectralUNet -> HiFi upsampler -> WaveUNet -> SpectralMaskNet), with optional
FINALLY-style WavLM conditioning and an upsampling WaveUNet head for 16 -> 48 kHz."""

from __future__ import annotations

import json
import math

import torch
import torch.nn.functional as F
from torch import nn

from gan_enhance.errors import ConfigError
from gan_enhance.models.generators.base import Generator
from gan_enhance.models.generators.registry import GENERATORS
from gan_enhance.nn.convnext import ResidualConvBlock1d
from gan_enhance.nn.frames import FramedSTFT, magnitude
from gan_enhance.nn.layers import WNConv1d, get_padding, init_conv_weights
from gan_enhance.nn.sampling import SincUpsample1d, Upsample1d
from gan_enhance.nn.spectral import mel_filterbank
from gan_enhance.nn.unet import UNet1d
from gan_enhance.nn.unet2d import UNet2d
from gan_enhance.nn.wavlm import (
    WAVLM_SAMPLE_RATE,
    FrozenWavLM,
    load_wavlm,
    wavlm_config_json,
    wavlm_from_config,
)


class MultiReceptiveField(nn.Module):
    """HiFi-GAN's MRF: the mean of residual stacks with different kernels, each over ``dilations``."""

    def __init__(self, channels: int, kernels: list[int], dilations: list[int], slope: float):
        super().__init__()
        self.stacks = nn.ModuleList(
            nn.Sequential(*(ResidualConvBlock1d(channels, k, d, slope) for d in dilations)) for k in kernels
        )
        self.radius = max(sum(block.radius for block in stack) for stack in self.stacks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return sum(stack(x) for stack in self.stacks) / len(self.stacks)


class HiFiUpsampler(nn.Module):
    """``(B, C, N)`` frames -> ``(B, C / 2**len(rates), N * prod(rates))`` samples: per rate, LeakyReLU,
    a transposed conv halving the channels, and an MRF."""

    def __init__(
        self, channels: int, rates: list[int], kernels: list[int], dilations: list[int], slope: float
    ):
        super().__init__()
        self.stages = nn.ModuleList()
        self.radius = 0
        step = math.prod(rates)  # samples per time step, before this stage
        for rate in rates:
            mrf = MultiReceptiveField(channels // 2, kernels, dilations, slope)
            self.stages.append(
                nn.Sequential(nn.LeakyReLU(slope), Upsample1d(channels, channels // 2, rate), mrf)
            )
            step //= rate
            self.radius += 2 * rate * step + mrf.radius * step
            channels //= 2
        self.out_channels = channels
        self.activation = nn.LeakyReLU(slope)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for stage in self.stages:
            x = stage(x)
        return self.activation(x)


class SpectralMaskNet(nn.Module):
    """Multiplies the STFT of ``(B, 1, T)`` by a non-negative mask a 2-D U-Net predicts from its log
    magnitude, keeping the phase."""

    def __init__(self, n_fft: int, hop: int, widths: list[int], slope: float, log_floor: float):
        super().__init__()
        self.stft = FramedSTFT(n_fft, hop)
        self.unet = UNet2d(1, 1, widths, slope)
        self.log_floor = log_floor
        self.radius = n_fft + self.unet.radius * hop

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        real, imag = self.stft(x)
        mask = F.softplus(self.unet(torch.log(magnitude(real, imag) + self.log_floor)[:, None]))[:, 0]
        return self.stft.inverse(real * mask, imag * mask)


@GENERATORS.register("hifipp")
class HiFiPlusPlus(Generator):
    """HiFi++ (Andreev et al. 2022) for enhancement, about 1.7 M parameters at the default size.

    Log-mel spectrogram -> SpectralUNet -> conv -> (+ projected WavLM features) -> HiFi upsampler ->
    WaveUNet (with the input waveform as an extra channel) -> SpectralMaskNet -> (ratio > 1: upsampling
    WaveUNet head, added to the sinc-upsampled mask net output). Lengths are multiples of
    ``hop * 2**(len(spectral_widths) - 1)`` and of the mask net's.

    Parameters
    ----------
    in_sample_rate, out_sample_rate : int
        Output rate an integer multiple of the input rate.
    n_fft, n_mels : int
        Input mel spectrogram (its hop is ``prod(upsample_rates)``).
    spectral_widths : list[int]
        SpectralUNet channels per level.
    upsample_rates : list[int]
        HiFi upsampler rates; their product is the mel hop.
    upsample_channels : int
        Upsampler input width (halved at each rate).
    resblock_kernels, resblock_dilations : list[int]
        The upsampler's MRF residual stacks.
    waveunet_widths, waveunet_factors : list[int]
        WaveUNet channels per level and down/up factors between levels.
    waveunet_kernel : int
        Kernel of the WaveUNet's (and the head's) residual conv blocks.
    mask_n_fft, mask_hop : int
        STFT of the SpectralMaskNet.
    mask_widths : list[int]
        SpectralMaskNet channels per level.
    head_widths, head_factors : list[int]
        Upsampling WaveUNet head (used when ``ratio > 1``), running at the output rate.
    wavlm : str
        FINALLY conditioning: a WavLM hub id or folder whose features are added to the spectral branch;
        "" = off. Needs 16 kHz input. The frozen WavLM becomes part of the model state.
    wavlm_layer : int
        0 = WavLM's conv encoder (local), ``k >= 1`` transformer layer ``k``, -1 = the last layer (global).
    wavlm_config : str
        JSON of the WavLM architecture; filled in automatically in ``build_config`` so that a saved model
        rebuilds without the hub (weights then come from the state dict). Leave "" when configuring.
    wavlm_context : float
        Seconds of context declared for chunked inference when the WavLM layer sees the whole input.
    slope : float
        LeakyReLU negative slope.
    log_floor : float
        Added to magnitudes before the log.
    init_std : float
        Standard deviation of the initial conv weights.
    """

    def __init__(
        self,
        in_sample_rate: int = 16000,
        out_sample_rate: int = 16000,
        n_fft: int = 1024,
        n_mels: int = 80,
        spectral_widths: list[int] = [8, 16, 32, 64, 64],  # noqa: B006
        upsample_rates: list[int] = [8, 8, 2, 2],  # noqa: B006
        upsample_channels: int = 128,
        resblock_kernels: list[int] = [3, 7, 11],  # noqa: B006
        resblock_dilations: list[int] = [1, 3, 5],  # noqa: B006
        waveunet_widths: list[int] = [10, 20, 40, 80],  # noqa: B006
        waveunet_factors: list[int] = [4, 4, 4],  # noqa: B006
        waveunet_kernel: int = 5,
        mask_n_fft: int = 1024,
        mask_hop: int = 256,
        mask_widths: list[int] = [8, 16, 32, 32],  # noqa: B006
        head_widths: list[int] = [16, 32, 64, 128],  # noqa: B006
        head_factors: list[int] = [4, 4, 4],  # noqa: B006
        wavlm: str = "",
        wavlm_layer: int = -1,
        wavlm_config: str = "",
        wavlm_context: float = 2.0,
        slope: float = 0.1,
        log_floor: float = 1e-5,
        init_std: float = 0.01,
    ):
        super().__init__(in_sample_rate, out_sample_rate)
        self.hop, self.log_floor = math.prod(upsample_rates), log_floor
        self.mel_stft = FramedSTFT(n_fft, self.hop)
        fbank = mel_filterbank(in_sample_rate, n_fft, n_mels).clone()
        self.register_buffer("mel_fbank", fbank, persistent=False)
        self.spectral_unet = UNet2d(1, 1, spectral_widths, slope)
        self.pre = WNConv1d(n_mels, upsample_channels, 7, padding=3)
        self.upsampler = HiFiUpsampler(
            upsample_channels, upsample_rates, resblock_kernels, resblock_dilations, slope
        )

        def waveunet(widths: list[int], factors: list[int]) -> UNet1d:
            return UNet1d(
                widths,
                [1] * len(widths),
                factors,
                [0] * len(factors),
                lambda width: ResidualConvBlock1d(width, waveunet_kernel, 1, slope),
                name="hifipp WaveUNet",
            )

        padding = get_padding(waveunet_kernel)
        self.waveunet_in = WNConv1d(
            self.upsampler.out_channels + 1, waveunet_widths[0], waveunet_kernel, padding=padding
        )
        self.waveunet = waveunet(waveunet_widths, waveunet_factors)
        self.waveunet_out = WNConv1d(waveunet_widths[0], 1, waveunet_kernel, padding=padding)
        self.mask_net = SpectralMaskNet(mask_n_fft, mask_hop, mask_widths, slope, log_floor)
        self.head = None
        if self.ratio > 1:
            self.head = nn.Sequential(
                Upsample1d(1, head_widths[0], self.ratio),
                waveunet(head_widths, head_factors),
                WNConv1d(head_widths[0], 1, waveunet_kernel, padding=padding),
            )
        self.upsample_input = SincUpsample1d(self.ratio)
        init_conv_weights(self, init_std)
        self.wavlm = None
        self._alignment = math.lcm(
            self.hop * self.spectral_unet.multiple,
            mask_hop * self.mask_net.unet.multiple,
            self.waveunet.multiple,
            # The head runs at the output rate: T * ratio must be a multiple of its U-Net's multiple.
            self.head[1].multiple // math.gcd(self.head[1].multiple, self.ratio)
            if self.head is not None
            else 1,
        )
        if wavlm:
            self._add_wavlm(wavlm, wavlm_layer, wavlm_config, upsample_channels, init_std)
        self.wavlm_context = round(wavlm_context * in_sample_rate)

    def _add_wavlm(self, wavlm: str, layer: int, config: str, channels: int, init_std: float) -> None:
        if self.in_sample_rate != WAVLM_SAMPLE_RATE:
            raise ConfigError(
                f"hifipp: WavLM conditioning (wavlm={wavlm!r}) needs in_sample_rate {WAVLM_SAMPLE_RATE}, "
                f"got {self.in_sample_rate}; set wavlm to '' or use 16 kHz input"
            )
        model = (
            wavlm_from_config(json.loads(config))
            if config
            else load_wavlm(
                wavlm,
                "HiFiPlusPlus.wavlm",
                "set it to '' to train without WavLM conditioning, or to a local folder (save_pretrained)",
            )
        )
        self.wavlm = FrozenWavLM(model, layer)
        self.wavlm_proj = WNConv1d(self.wavlm.dim, channels, 1)
        init_conv_weights(self.wavlm_proj, init_std)
        self.exact_context = self.wavlm.is_local
        self._alignment = math.lcm(self._alignment, FrozenWavLM.hop)

    def complete_build_config(self, config: dict) -> dict:
        if self.wavlm is None or config["kwargs"].get("wavlm_config"):
            return config
        return {**config, "kwargs": {**config["kwargs"], "wavlm_config": wavlm_config_json(self.wavlm.model)}}

    @property
    def alignment(self) -> int:
        return self._alignment

    def receptive_radius(self) -> int:
        # Mel analysis (frames see n_fft samples; + hop for the frame/sample offset), frame-rate layers,
        # then the upsampler in samples.
        frames = self.spectral_unet.radius + self.pre.kernel_size[0] // 2
        spectral = self.mel_stft.n_fft + self.hop * (frames + 1) + self.upsampler.radius
        if self.wavlm is not None:
            # A WavLM frame sees 400 samples; the features are interpolated between 2 frames.
            local = FrozenWavLM.window + 2 * FrozenWavLM.hop + self.hop
            spectral = max(spectral, local if self.wavlm.is_local else self.wavlm_context)
        unet_convs = 2 * get_padding(self.waveunet_out.kernel_size[0])
        radius = spectral + self.waveunet.radius + unet_convs + self.mask_net.radius
        if self.head is not None:
            # The head (a transposed conv spanning 2 samples, then output-rate layers) beside the input's
            # sinc upsampling: the wider of the two.
            head = 2 + -(-(self.head[1].radius + unet_convs) // self.ratio)
            radius += max(head, self.upsample_input.radius)
        return radius

    def wavlm_features(self, x: torch.Tensor, frames: int) -> torch.Tensor:
        """WavLM features of ``x`` (B, 1, T) at the centres of the ``frames`` mel frames: (B, D, frames)."""
        hop, window = FrozenWavLM.hop, FrozenWavLM.window
        count = -(-x.shape[-1] // hop)
        left = (window - hop) // 2
        padded = F.pad(x, (left, (count - 1) * hop + window - x.shape[-1] - left))
        features = self.wavlm(padded)  # WavLM frame m is centred on sample m * hop + hop / 2
        centres = torch.arange(frames, device=x.device, dtype=torch.float64) * self.hop + self.hop / 2
        position = ((centres - hop / 2) / hop).clamp(0, count - 1)
        index = position.floor().long()
        weight = (position - index).to(features.dtype)
        upper = (index + 1).clamp(max=count - 1)
        return features[..., index] * (1 - weight) + features[..., upper] * weight

    def generate(self, x: torch.Tensor) -> torch.Tensor:
        mel = torch.einsum("mf,bfn->bmn", self.mel_fbank, magnitude(*self.mel_stft(x)))
        h = self.spectral_unet(torch.log(mel.clamp_min(self.log_floor))[:, None])[:, 0]
        h = self.pre(h)
        if self.wavlm is not None:
            h = h + self.wavlm_proj(self.wavlm_features(x, h.shape[-1]))
        h = self.upsampler(h)
        w = self.waveunet_out(self.waveunet(self.waveunet_in(torch.cat([h, x], dim=1))))
        y = self.mask_net(w)
        if self.head is None:
            return y
        upsampled = self.upsample_input(y)
        return upsampled + self.head(y)
