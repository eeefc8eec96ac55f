"""``unet1d``: a 1-D U-Net of ConvNeXt blocks on patched waveform (fast on CPU, strong in practice)."""

from __future__ import annotations

import torch
from einops import rearrange

from gan_enhance.models.generators.base import Generator
from gan_enhance.models.generators.registry import GENERATORS
from gan_enhance.nn.convnext import ChannelNorm, ConvNeXtBlock1d
from gan_enhance.nn.layers import WNConv1d, get_padding, init_conv_weights
from gan_enhance.nn.sampling import SincUpsample1d
from gan_enhance.nn.unet import UNet1d


@GENERATORS.register("unet1d")
class ConvNeXtUNet(Generator):
    """Waveform U-Net: patching -> ConvNeXt U-Net -> un-patching (``patching * ratio`` samples per step).

    The input is cut into patches of ``patching`` samples (folded into channels), a U-Net of ConvNeXt blocks
    runs on the patch sequence, and a conv predicts ``patching * ratio`` output samples per patch, added to
    the (sinc-upsampled) input when ``residual`` is on. Every layer is time-local, so chunked output
    equals whole-file output; lengths are multiples of ``patching * prod(factors)``.

    Parameters
    ----------
    in_sample_rate, out_sample_rate : int
        Output rate an integer multiple of the input rate.
    patching : int
        Input samples per step of the first level.
    channels, blocks : list[int]
        Width and number of ConvNeXt blocks per level (encoder and decoder each; the deepest level once).
    factors : list[int]
        Time down/up-sampling between levels (one fewer than levels).
    scale_vs_channels : list[int]
        Per transition, the parameter-free shortcut's averaging group (``channels[i + 1] * s == channels[i]
        * factors[i]``); 0 turns that shortcut off.
    kernel_size : int
        Depthwise kernel of every ConvNeXt block (odd).
    expansion : int
        Pointwise MLP width as a multiple of the channels.
    layer_scale : float
        Initial residual-branch scale of the blocks.
    stem_kernel : int
        Kernel (in patch steps) of the input and output convs (odd).
    residual : bool
        Predict a correction to the input instead of the output itself.
    init_std : float
        Standard deviation of the initial conv weights.
    output_scale : float
        Initial gain of the output conv, which follows a norm: small, so that the model starts close to
        passing its input through (with ``residual``) instead of adding unit-scale noise to it.
    """

    def __init__(
        self,
        in_sample_rate: int = 16000,
        out_sample_rate: int = 16000,
        patching: int = 4,
        channels: list[int] = [64, 128, 256, 512],  # noqa: B006
        blocks: list[int] = [1, 1, 2, 3],  # noqa: B006
        factors: list[int] = [4, 4, 4],  # noqa: B006
        scale_vs_channels: list[int] = [2, 2, 2],  # noqa: B006
        kernel_size: int = 31,
        expansion: int = 2,
        layer_scale: float = 0.1,
        stem_kernel: int = 7,
        residual: bool = True,
        init_std: float = 0.02,
        output_scale: float = 0.01,
    ):
        super().__init__(in_sample_rate, out_sample_rate)
        self.patching, self.residual = patching, residual

        def make_block(width: int) -> ConvNeXtBlock1d:
            return ConvNeXtBlock1d(width, kernel_size, expansion, layer_scale)

        self.stem = WNConv1d(patching, channels[0], stem_kernel, padding=get_padding(stem_kernel))
        self.unet = UNet1d(channels, blocks, factors, scale_vs_channels, make_block, name="unet1d")
        self.head_norm = ChannelNorm(channels[0])
        self.head = WNConv1d(
            channels[0], patching * self.ratio, stem_kernel, padding=get_padding(stem_kernel)
        )
        self.upsample_input = SincUpsample1d(self.ratio)
        init_conv_weights(self, init_std)
        with torch.no_grad():
            self.head.parametrizations.weight.original0.mul_(output_scale)

    @property
    def alignment(self) -> int:
        return self.patching * self.unet.multiple

    def receptive_radius(self) -> int:
        steps = 2 * get_padding(self.head.kernel_size[0]) + self.unet.radius
        # A patch sees every sample of itself (patching - 1 away); the residual path's sinc upsampling
        # runs beside the network.
        radius = steps * self.patching + self.patching
        return max(radius, self.upsample_input.radius) if self.residual else radius

    def generate(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stem(rearrange(x, "b 1 (t p) -> b p t", p=self.patching))
        h = self.head(self.head_norm(self.unet(h)))
        y = rearrange(h, "b p t -> b 1 (t p)")
        if not self.residual:
            return y
        if self.ratio > 1:
            x = self.upsample_input(x)
        return x + y
