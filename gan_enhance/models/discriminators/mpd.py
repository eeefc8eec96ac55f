"""Multi-period discriminator (HiFi-GAN, also used by DAC and BigVGAN).

The waveform is folded into a 2-D ``(T / period, period)`` grid and convolved along time only, so each
sub-discriminator sees the signal's samples spaced ``period`` apart. Unlike the HiFi-GAN and BigVGAN
originals, the padding follows ``kernel_size``.
"""

from __future__ import annotations

from gan_enhance.models.discriminators.base import (
    DISCRIMINATORS,
    ConvStack,
    DiscriminatorFamily,
    PeriodFold,
    SubDiscriminator,
)

# List defaults below are what `gan-enhance train --help` shows (argbind's generated help); values are
# checked against the type hints; the defaults are never mutated.


@DISCRIMINATORS.register("mpd")
class MultiPeriodDiscriminator(DiscriminatorFamily):
    """One sub-discriminator per period.

    Parameters
    ----------
    periods : list[int]
        Fold periods in samples (prime periods avoid overlapping views).
    channels : list[int]
        Output channels of each hidden conv.
    strides : list[int]
        Stride along time of each hidden conv (same length as ``channels``).
    kernel_size : int
        Kernel length along time of every hidden conv.
    post_kernel_size : int
        Kernel length of the final conv to one logit map.
    negative_slope : float
        LeakyReLU slope.
    norm : str
        ``"weight"``, ``"spectral"`` or ``"none"``.

    Notes
    -----
    Logits are ``(B, 1, ~T / (period * prod(strides)), period)``.
    """

    def __init__(
        self,
        periods: list[int] = [2, 3, 5, 7, 11],  # noqa: B006
        channels: list[int] = [32, 128, 512, 1024, 1024],  # noqa: B006
        strides: list[int] = [3, 3, 3, 3, 1],  # noqa: B006
        kernel_size: int = 5,
        post_kernel_size: int = 3,
        negative_slope: float = 0.1,
        norm: str = "weight",
    ):
        super().__init__(
            [
                SubDiscriminator(
                    f"mpd/p{period}",
                    PeriodFold(period),
                    ConvStack(
                        dim=2,
                        in_channels=1,
                        channels=list(channels),
                        kernel_sizes=[(kernel_size, 1)] * len(channels),
                        strides=[(stride, 1) for stride in strides],
                        post_kernel_size=(post_kernel_size, 1),
                        negative_slope=negative_slope,
                        norm=norm,
                    ),
                )
                for period in periods
            ]
        )
