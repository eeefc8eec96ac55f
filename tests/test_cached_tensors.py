"""Constant tensors cached per process (windows, mel filterbanks, DFT kernels, resampling kernels) serve
autograd even when the first call that built them ran under ``torch.inference_mode()``: enhancing or
evaluating first and training later in the same process (a sweep, a notebook) must not fail."""

from __future__ import annotations

import pytest
import torch

from gan_enhance._compat import patch

patch()

from gan_enhance.audio import resample  # noqa: E402
from gan_enhance.nn.frames import FramedSTFT  # noqa: E402
from gan_enhance.nn.spectral import mel_spectrogram, stft  # noqa: E402

# Sizes no other test uses, so each cache entry is first built inside inference mode here.
USES = {
    "stft window": lambda x: stft(x, 424, 106).abs(),
    "mel filterbank": lambda x: mel_spectrogram(x, 16000, 424, 106, n_mels=23),
    "dft kernels": lambda x: FramedSTFT(216, 54)(x[..., :3996])[0],  # the ONNX export's kernel
    "resampling kernel": lambda x: resample(x, 16000, 13000),
}


@pytest.mark.parametrize("use", sorted(USES))
def test_a_constant_first_built_in_inference_mode_serves_autograd_later(use, monkeypatch):
    monkeypatch.setattr(FramedSTFT, "dft_matmul", True)
    x = torch.randn(1, 1, 4000)
    with torch.inference_mode():
        USES[use](x)
    x.requires_grad_(True)
    USES[use](x).square().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
