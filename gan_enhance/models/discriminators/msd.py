"""Multi-scale waveform discriminator (HiFi-GAN's MSD).

The same 1-D conv stack looks at the waveform, its 2x average-pooled copy and its 4x average-pooled copy.
HiFi-GAN puts spectral norm on the full-rate scale and weight norm on the others.
"""

from __future__ import annotations

from gan_enhance.models.discriminators.base import (
    DISCRIMINATORS,
    AvgPoolFrontEnd,
    ConvStack,
    DiscriminatorFamily,
    SubDiscriminator,
)

# List defaults below are what `gan-enhance train --help` shows (argbind's generated help); values are
# checked against the type hints; the defaults are never mutated.


@DISCRIMINATORS.register("msd")
class MultiScaleDiscriminator(DiscriminatorFamily):
    """One grouped 1-D conv stack per scale.

    Parameters
    ----------
    scales : int
        Number of scales; scale ``i`` sees the waveform average-pooled ``i`` times.
    channels, kernel_sizes, strides, groups : list[int]
        Per hidden layer (all the same length).
    post_kernel_size : int
        Kernel of the final conv to one logit map.
    pool_kernel_size, pool_stride : int
        Average pooling between scales.
    negative_slope : float
        LeakyReLU slope.
    first_scale_norm, norm : str
        Norm of the full-rate scale and of the others (``"weight"``, ``"spectral"``, ``"none"``).

    Notes
    -----
    Logits of scale ``i`` are ``(B, 1, ~T / (pool_stride**i * prod(strides)))``.
    """

    def __init__(
        self,
        scales: int = 3,
        channels: list[int] = [128, 128, 256, 512, 1024, 1024, 1024],  # noqa: B006
        kernel_sizes: list[int] = [15, 41, 41, 41, 41, 41, 5],  # noqa: B006
        strides: list[int] = [1, 2, 2, 4, 4, 1, 1],  # noqa: B006
        groups: list[int] = [1, 4, 16, 16, 16, 16, 1],  # noqa: B006
        post_kernel_size: int = 3,
        pool_kernel_size: int = 4,
        pool_stride: int = 2,
        negative_slope: float = 0.1,
        first_scale_norm: str = "spectral",
        norm: str = "weight",
    ):
        super().__init__(
            [
                SubDiscriminator(
                    f"msd/s{scale}",
                    AvgPoolFrontEnd(scale, pool_kernel_size, pool_stride),
                    ConvStack(
                        dim=1,
                        in_channels=1,
                        channels=list(channels),
                        kernel_sizes=list(kernel_sizes),
                        strides=list(strides),
                        groups=list(groups),
                        post_kernel_size=post_kernel_size,
                        negative_slope=negative_slope,
                        norm=first_scale_norm if scale == 0 else norm,
                    ),
                )
                for scale in range(scales)
            ]
        )
