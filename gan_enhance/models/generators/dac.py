"""``dac``: a DAC-style convolutional encoder/decoder (Snake, dilated residual units, weight norm) with
encoder-decoder skip connections and no quantizer."""

from __future__ import annotations

import torch
from torch import nn

from gan_enhance.models.generators.base import Generator
from gan_enhance.models.generators.registry import GENERATORS
from gan_enhance.nn.layers import WNConv1d, get_padding, init_conv_weights
from gan_enhance.nn.sampling import Downsample1d, SincUpsample1d, Upsample1d
from gan_enhance.nn.snake import Snake1d


class ResidualUnit(nn.Module):
    """Snake -> dilated conv -> Snake -> 1x1 conv, plus the input (DAC's residual unit)."""

    def __init__(self, channels: int, kernel_size: int, dilation: int):
        super().__init__()
        padding = get_padding(kernel_size, dilation)
        self.layers = nn.Sequential(
            Snake1d(channels),
            WNConv1d(channels, channels, kernel_size, dilation=dilation, padding=padding),
            Snake1d(channels),
            WNConv1d(channels, channels, 1),
        )
        self.radius = padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.layers(x)


def residual_units(channels: int, kernel_size: int, dilations: list[int]) -> nn.Sequential:
    return nn.Sequential(*(ResidualUnit(channels, kernel_size, d) for d in dilations))


class EncoderBlock(nn.Module):
    """Residual units at ``channels``, then Snake and a strided conv to ``2 * channels`` (time / stride)."""

    def __init__(self, channels: int, stride: int, kernel_size: int, dilations: list[int]):
        super().__init__()
        self.units = residual_units(channels, kernel_size, dilations)
        self.activation = Snake1d(channels)
        self.down = Downsample1d(channels, 2 * channels, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(self.activation(self.units(x)))


class DecoderBlock(nn.Module):
    """Snake and a transposed strided conv to ``out_channels`` (time * stride), then residual units."""

    def __init__(
        self, in_channels: int, out_channels: int, stride: int, kernel_size: int, dilations: list[int]
    ):
        super().__init__()
        self.activation = Snake1d(in_channels)
        self.up = Upsample1d(in_channels, out_channels, stride)
        self.units = residual_units(out_channels, kernel_size, dilations)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.units(self.up(self.activation(x)))


@GENERATORS.register("dac")
class DACGenerator(Generator):
    """Encoder (width doubling per stride) -> latent convs -> mirrored decoder, with the encoder's output at
    each resolution added to the decoder's input at that resolution. For ``ratio > 1`` one more decoder
    block upsamples by the ratio at the end.

    Parameters
    ----------
    in_sample_rate, out_sample_rate : int
        Output rate an integer multiple of the input rate.
    channels : int
        Width of the first encoder level (doubles at each stride).
    strides : list[int]
        Encoder downsampling factors; the decoder mirrors them.
    dilations : list[int]
        Dilations of the residual units in every block.
    kernel_size : int
        Kernel of the residual units' dilated convs (odd).
    latent_kernel : int
        Kernel of the two convs at the bottleneck (odd).
    input_downsample : int
        Extra down/up-sampling at the input and output (2 halves time and memory at full rate); 1 = off.
    residual : bool
        Predict a correction to the (sinc-upsampled) input.
    init_std : float
        Standard deviation of the initial conv weights.
    """

    def __init__(
        self,
        in_sample_rate: int = 16000,
        out_sample_rate: int = 16000,
        channels: int = 16,
        strides: list[int] = [2, 4, 5, 8],  # noqa: B006
        dilations: list[int] = [1, 3, 9],  # noqa: B006
        kernel_size: int = 7,
        latent_kernel: int = 7,
        input_downsample: int = 2,
        residual: bool = True,
        init_std: float = 0.02,
    ):
        super().__init__(in_sample_rate, out_sample_rate)
        self.strides, self.input_downsample, self.residual = list(strides), input_downsample, residual
        widths = [channels * 2**i for i in range(len(strides) + 1)]
        if input_downsample > 1:
            self.input = Downsample1d(1, channels, input_downsample)
        else:
            self.input = WNConv1d(1, channels, kernel_size, padding=get_padding(kernel_size))
        self.encoder = nn.ModuleList(
            EncoderBlock(widths[i], s, kernel_size, dilations) for i, s in enumerate(strides)
        )
        self.latent = nn.Sequential(
            Snake1d(widths[-1]),
            WNConv1d(widths[-1], widths[-1], latent_kernel, padding=get_padding(latent_kernel)),
            Snake1d(widths[-1]),
            WNConv1d(widths[-1], widths[-1], latent_kernel, padding=get_padding(latent_kernel)),
        )
        self.decoder = nn.ModuleList(
            DecoderBlock(widths[i + 1], widths[i], s, kernel_size, dilations)
            for i, s in reversed(list(enumerate(strides)))
        )
        # The decoder ends at the input's rate (divided by input_downsample); the output stage brings it to
        # the output rate: one upsampling by input_downsample * ratio.
        out_factor = input_downsample * self.ratio
        self.output_activation = Snake1d(channels)
        if out_factor > 1:
            self.output = nn.Sequential(
                Upsample1d(channels, channels // 2, out_factor),
                residual_units(channels // 2, kernel_size, dilations[:1]),
                Snake1d(channels // 2),
                WNConv1d(channels // 2, 1, kernel_size, padding=get_padding(kernel_size)),
            )
        else:
            self.output = WNConv1d(channels, 1, kernel_size, padding=get_padding(kernel_size))
        self.upsample_input = SincUpsample1d(self.ratio)
        init_conv_weights(self, init_std)

    @property
    def alignment(self) -> int:
        total = self.input_downsample
        for stride in self.strides:
            total *= stride
        return total

    def receptive_radius(self) -> int:
        """Summed along the deepest path, in input samples (output-rate layers count 1 / ratio)."""
        step = self.input_downsample
        # Input stage: a plain conv, or a strided conv of kernel 2 * input_downsample.
        radius = 2 * step if step > 1 else self.input.kernel_size[0] // 2
        for block, stride in zip(self.encoder, self.strides):
            units = sum(unit.radius for unit in block.units)
            # Encoder and decoder units at this level; the strided conv on each side (kernel 2 * stride).
            radius += (2 * units + 2 * 2 * stride) * step
            step *= stride
        radius += 2 * (self.latent[1].kernel_size[0] // 2) * step
        # Output stage: an upsampling conv spanning 2 input steps, then layers at the output rate.
        output_convs = [m for m in self.output.modules() if isinstance(m, nn.Conv1d)]
        output_samples = sum(c.dilation[0] * (c.kernel_size[0] // 2) for c in output_convs)
        if isinstance(self.output, nn.Sequential):
            radius += 2 * self.input_downsample
        radius += -(-output_samples // self.ratio)
        # The residual path's sinc upsampling, beside the network.
        return max(radius, self.upsample_input.radius) if self.residual else radius

    def generate(self, x: torch.Tensor) -> torch.Tensor:
        h = self.input(x)
        skips = []
        for block in self.encoder:
            skips.append(h)
            h = block(h)
        h = self.latent(h)
        for block in self.decoder:
            h = block(h) + skips.pop()
        y = self.output(self.output_activation(h))
        if not self.residual:
            return y
        if self.ratio > 1:
            x = self.upsample_input(x)
        return x + y
