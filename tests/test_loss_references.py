"""Our losses against independent implementations of the same definitions (audiotools / DAC, torchmetrics)."""

from __future__ import annotations

import warnings

import pytest
import torch

from gan_enhance._compat import patch

patch()

from gan_enhance.losses import MultiScaleMelLoss, SISDRLoss  # noqa: E402


@pytest.mark.parametrize("sample_rate", [16000, 44100])
def test_mel_loss_equals_dac_mel_loss(sample_rate):
    from audiotools import AudioSignal
    from audiotools.metrics.spectral import MelSpectrogramLoss

    generator = torch.Generator().manual_seed(0)
    y = 0.1 * torch.randn(2, 1, sample_rate // 4 + 1, generator=generator)
    y_hat = y + 0.02 * torch.randn(y.shape, generator=generator)
    dac = MelSpectrogramLoss(  # DAC's conf/base.yml settings
        n_mels=[5, 10, 20, 40, 80, 160, 320],
        window_lengths=[32, 64, 128, 256, 512, 1024, 2048],
        mag_weight=0.0,
        pow=1.0,
        mel_fmin=[0.0] * 7,
        mel_fmax=[None] * 7,
    )
    with warnings.catch_warnings():  # audiotools warns that it padded its STFT frames ("changed shape")
        warnings.simplefilter("ignore", UserWarning)
        expected = dac(AudioSignal(y_hat, sample_rate), AudioSignal(y, sample_rate))
    assert MultiScaleMelLoss(sample_rate)(y_hat, y).item() == pytest.approx(expected.item(), rel=1e-5)


def test_sisdr_equals_torchmetrics():
    from torchmetrics.functional.audio import scale_invariant_signal_distortion_ratio

    generator = torch.Generator().manual_seed(0)
    y = torch.randn(3, 1, 8000, generator=generator)
    y_hat = y + 0.3 * torch.randn(y.shape, generator=generator) + 0.1
    expected = -scale_invariant_signal_distortion_ratio(y_hat, y, zero_mean=True).mean()
    assert SISDRLoss()(y_hat, y).item() == pytest.approx(expected.item(), abs=1e-4)
