"""Multi-scale complex-STFT discriminator (EnCodec / audiocraft MS-STFT).

Each scale takes the normalised complex STFT (real and imaginary parts as two channels) and runs 2-D convs
over (time, frequency): kernel ``(3, 9)``, stride 2 along frequency, dilations growing along time.
"""

from __future__ import annotations

from gan_enhance.models.discriminators.base import (
    DISCRIMINATORS,
    DiscriminatorFamily,
    STFTFrontEnd,
    SubDiscriminator,
    dilated_stack,
)

# List defaults below are what `gan-enhance train --help` shows (argbind's generated help); values are
# checked against the type hints; the defaults are never mutated.


@DISCRIMINATORS.register("msstft")
class MultiScaleSTFTDiscriminator(DiscriminatorFamily):
    """One conv stack per STFT resolution.

    Parameters
    ----------
    n_ffts : list[int]
        FFT size (= window length) of each scale.
    hop_fraction : float
        Hop as a fraction of the FFT size.
    filters, max_filters, filters_scale : int
        Layer ``i`` has ``min(filters * filters_scale**i, max_filters)`` channels.
    kernel_size, stride : list[int]
        ``(time, frequency)`` kernel and stride of the dilated layers.
    dilations : list[int]
        Time dilation of each dilated layer (one layer per entry).
    normalized : bool
        Divide the STFT by the window norm (EnCodec does), which keeps its scale independent of ``n_fft``.
    negative_slope : float
        LeakyReLU slope.
    norm : str
        ``"weight"``, ``"spectral"`` or ``"none"``.

    Notes
    -----
    Logits are ``(B, 1, T // hop + 1, ~(n_fft // 2 + 1) / stride[1]**len(dilations))``.
    """

    def __init__(
        self,
        n_ffts: list[int] = [1024, 2048, 512, 256, 128],  # noqa: B006
        hop_fraction: float = 0.25,
        filters: int = 32,
        max_filters: int = 1024,
        filters_scale: int = 1,
        kernel_size: list[int] = [3, 9],  # noqa: B006
        stride: list[int] = [1, 2],  # noqa: B006
        dilations: list[int] = [1, 2, 4],  # noqa: B006
        normalized: bool = True,
        negative_slope: float = 0.2,
        norm: str = "weight",
    ):
        channels = [min(filters * filters_scale**i, max_filters) for i in range(len(dilations) + 2)]
        super().__init__(
            [
                SubDiscriminator(
                    f"msstft/n{n_fft}",
                    STFTFrontEnd(n_fft, max(1, int(n_fft * hop_fraction)), normalized=normalized),
                    dilated_stack(channels, kernel_size, stride, dilations, negative_slope, norm),
                )
                for n_fft in n_ffts
            ]
        )
