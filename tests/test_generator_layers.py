"""Building blocks of the generators: exact lengths, fast paths equal to the reference ops."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from gan_enhance.nn.convnext import DepthwiseConv1d
from gan_enhance.nn.frames import FramedSTFT
from gan_enhance.nn.sampling import Downsample1d, LinearUpsample1d, Upsample1d


@pytest.mark.parametrize("bias", [False, True])
def test_depthwise_fast_path_equals_the_convolution(bias):
    conv = DepthwiseConv1d(6, 9, bias=bias).eval()
    x = torch.randn(3, 6, 101)
    with torch.no_grad():
        fast = conv(x)
    reference = F.conv1d(x, conv.weight, conv.bias, padding=4, groups=6)
    assert (fast - reference).abs().max() < 1e-6


@pytest.mark.parametrize("factor", [2, 3, 4])
def test_linear_upsampling_matches_interpolate_and_ignores_position(factor):
    x = torch.randn(2, 3, 40, dtype=torch.float64)
    up = LinearUpsample1d(factor)
    expected = F.interpolate(x, scale_factor=factor, mode="linear", align_corners=False)
    assert (up(x) - expected).abs().max() < 1e-7
    # Far from the start, F.interpolate's float32 positions drift; ours only depend on the phase.
    long = torch.randn(1, 1, 200_000)
    tail = up(long)[..., -400 * factor :]
    assert (tail - up(long[..., -401:])[..., factor:]).abs().max() < 1e-6


@pytest.mark.parametrize("factor", [2, 3, 4, 5, 8])
def test_strided_convs_have_exact_lengths(factor):
    x = torch.randn(1, 4, 7 * factor)
    assert Downsample1d(4, 6, factor)(x).shape == (1, 6, 7)
    assert Upsample1d(4, 6, factor)(x).shape == (1, 6, 7 * factor * factor)


@pytest.mark.parametrize("n_fft, hop", [(64, 16), (512, 128), (96, 32)])
def test_framed_stft_reconstructs_exactly(n_fft, hop):
    stft = FramedSTFT(n_fft, hop)
    x = torch.randn(2, 1, 20 * hop)
    spec = stft(x)
    assert spec.shape == (2, n_fft // 2 + 1, 20)
    assert (stft.inverse(spec) - x).abs().max() < 1e-5
