"""Building blocks of the generators: exact lengths, fast paths equal to the reference ops."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from gan_enhance.nn.convnext import DepthwiseConv1d
from gan_enhance.nn.frames import FramedSTFT, magnitude
from gan_enhance.nn.sampling import Downsample1d, Upsample1d


@pytest.mark.parametrize("bias", [False, True])
def test_depthwise_fast_path_equals_the_convolution(bias):
    conv = DepthwiseConv1d(6, 9, bias=bias).eval()
    x = torch.randn(3, 6, 101)
    with torch.no_grad():
        fast = conv(x)
    reference = F.conv1d(x, conv.weight, conv.bias, padding=4, groups=6)
    assert (fast - reference).abs().max() < 1e-6


@pytest.mark.parametrize("factor", [2, 3, 4, 5, 8])
def test_strided_convs_have_exact_lengths(factor):
    x = torch.randn(1, 4, 7 * factor)
    assert Downsample1d(4, 6, factor)(x).shape == (1, 6, 7)
    assert Upsample1d(4, 6, factor)(x).shape == (1, 6, 7 * factor * factor)


@pytest.mark.parametrize("n_fft, hop", [(64, 16), (512, 128), (96, 32)])
@pytest.mark.parametrize("dft_matmul", [False, True])
def test_framed_stft_reconstructs_exactly(n_fft, hop, dft_matmul, monkeypatch):
    monkeypatch.setattr(FramedSTFT, "dft_matmul", dft_matmul)
    stft = FramedSTFT(n_fft, hop)
    x = torch.randn(2, 1, 20 * hop)
    real, imag = stft(x)
    assert real.shape == imag.shape == (2, n_fft // 2 + 1, 20)
    assert (stft.inverse(real, imag) - x).abs().max() < 1e-5


@pytest.mark.parametrize("n_fft, hop", [(64, 16), (1536, 384)])
def test_framed_stft_kernels_equal_a_hand_computed_dft(n_fft, hop, monkeypatch):
    x = torch.randn(2, 1, 12 * hop, dtype=torch.float64)
    # Frame j covers padded samples [j * hop, j * hop + n_fft), padded by (n_fft - hop) / 2 zeros per side.
    padded = np.pad(x[:, 0].numpy(), ((0, 0), ((n_fft - hop) // 2,) * 2))
    frames = np.stack([padded[:, j * hop : j * hop + n_fft] for j in range(12)], axis=-1)
    expected = np.fft.rfft(frames * np.hanning(n_fft + 1)[:-1, None], axis=1)
    stft = FramedSTFT(n_fft, hop)
    results = {}
    for dft_matmul in (False, True):
        monkeypatch.setattr(FramedSTFT, "dft_matmul", dft_matmul)
        real, imag = stft(x.float())
        np.testing.assert_allclose(real.double().numpy(), expected.real, atol=2e-4 * np.sqrt(n_fft))
        np.testing.assert_allclose(imag.double().numpy(), expected.imag, atol=2e-4 * np.sqrt(n_fft))
        # Imaginary parts of DC and Nyquist are ignored by the inverse, as irfft does.
        imag = imag.clone()
        imag[:, [0, -1]] = 1.0
        results[dft_matmul] = stft.inverse(real, imag)
    torch.testing.assert_close(results[True], results[False], atol=1e-5, rtol=0)
    torch.testing.assert_close(results[True].double(), x, atol=1e-5, rtol=0)


def test_spectral_magnitude_has_zero_gradient_at_zero():
    real = torch.tensor([0.0, 3.0], requires_grad=True)
    imag = torch.tensor([0.0, 4.0], requires_grad=True)
    value = magnitude(real, imag)
    value.sum().backward()
    torch.testing.assert_close(value, torch.tensor([0.0, 5.0]), atol=1e-12, rtol=0)
    torch.testing.assert_close(real.grad, torch.tensor([0.0, 0.6]))
    torch.testing.assert_close(imag.grad, torch.tensor([0.0, 0.8]))
