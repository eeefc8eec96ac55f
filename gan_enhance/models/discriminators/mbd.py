"""Multi-band multi-resolution STFT discriminator (DAC's MRD, BigVGAN v2's MBD).

Each resolution's complex STFT is split into frequency bands; every band has its own conv stack (so low
and high frequencies are judged by different weights), the band outputs are joined along frequency and
one shared conv turns them into logits.
"""

from __future__ import annotations

from torch import nn

from gan_enhance.models.discriminators.base import (
    DISCRIMINATORS,
    NORMS,
    BandStacks,
    ConvStack,
    DiscriminatorFamily,
    STFTFrontEnd,
    SubDiscriminator,
)
from gan_enhance.nn.layers import get_padding

# List defaults below are what `gan-enhance train --help` shows (argbind's generated help); values are
# checked against the type hints; the defaults are never mutated.


@DISCRIMINATORS.register("mbd")
class MultiBandDiscriminator(DiscriminatorFamily):
    """One band-split sub-discriminator per STFT window length.

    Parameters
    ----------
    window_lengths : list[int]
        STFT window (= FFT size) of each sub-discriminator.
    hop_fraction : float
        Hop as a fraction of the window.
    band_edges : list[float]
        Band boundaries as fractions of the frequency bins, from 0.0 to 1.0 (``k + 1`` edges, ``k`` bands).
    channels : int
        Channels of every conv.
    kernel_size, stride : list[int]
        ``(time, frequency)`` kernel and stride of the strided layers.
    layers : int
        Hidden layers per band: one unstrided, ``layers - 2`` strided, one square-kernel layer.
    normalized : bool
        Divide the STFT by the window norm (DAC does not).
    negative_slope : float
        LeakyReLU slope.
    norm : str
        ``"weight"``, ``"spectral"`` or ``"none"``.

    Notes
    -----
    Logits are ``(B, 1, T // hop + 1, sum of the strided band widths)``.
    """

    def __init__(
        self,
        window_lengths: list[int] = [2048, 1024, 512],  # noqa: B006
        hop_fraction: float = 0.25,
        band_edges: list[float] = [0.0, 0.1, 0.25, 0.5, 0.75, 1.0],  # noqa: B006
        channels: int = 32,
        kernel_size: list[int] = [3, 9],  # noqa: B006
        stride: list[int] = [1, 2],  # noqa: B006
        layers: int = 5,
        normalized: bool = False,
        negative_slope: float = 0.1,
        norm: str = "weight",
    ):
        if layers < 2:
            raise ValueError(f"MultiBandDiscriminator needs layers >= 2, got {layers}")
        if list(band_edges) != sorted(band_edges) or band_edges[0] != 0.0 or band_edges[-1] != 1.0:
            raise ValueError(f"band_edges must rise from 0.0 to 1.0, got {list(band_edges)}")
        kernel, square_kernel = tuple(kernel_size), (kernel_size[0], kernel_size[0])
        stack_settings = dict(
            dim=2,
            in_channels=2,
            channels=[channels] * layers,
            kernel_sizes=[kernel] * (layers - 1) + [square_kernel],
            strides=[1] + [tuple(stride)] * (layers - 2) + [1],
            negative_slope=negative_slope,
            norm=norm,
        )
        discriminators = []
        for window in window_lengths:
            front_end = STFTFrontEnd(window, max(1, int(window * hop_fraction)), normalized=normalized)
            edges = [int(fraction * front_end.n_bins) for fraction in band_edges]
            post = NORMS[norm](
                nn.Conv2d(channels, 1, square_kernel, padding=tuple(get_padding(k) for k in square_kernel))
            )
            bands = list(zip(edges[:-1], edges[1:]))
            body = BandStacks(bands, [ConvStack(**stack_settings) for _ in bands], post)
            discriminators.append(SubDiscriminator(f"mbd/w{window}", front_end, body))
        super().__init__(discriminators)
