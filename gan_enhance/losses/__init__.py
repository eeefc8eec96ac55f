"""Losses: each an ``nn.Module`` whose ``forward`` returns a scalar; the trainer logs each under its key.

``adv/disc``, ``adv/gen`` (:class:`AdversarialLoss`), ``adv/feat`` (:class:`FeatureMatchingLoss`),
``mel/loss`` (:class:`MultiScaleMelLoss`), ``stft/loss`` (:class:`MultiResolutionSTFTLoss`), ``l1/loss``
(:class:`WaveformL1Loss`), ``sisdr/loss`` (:class:`SISDRLoss`), ``wavlm/loss`` (:class:`WavLMFeatureLoss`;
transformers is imported only when it is built).
"""

from __future__ import annotations

from gan_enhance.losses.adversarial import AdversarialLoss, FeatureMatchingLoss
from gan_enhance.losses.spectral import MultiResolutionSTFTLoss, MultiScaleMelLoss
from gan_enhance.losses.waveform import SISDRLoss, WaveformL1Loss
from gan_enhance.losses.wavlm import WavLMFeatureLoss

__all__ = [
    "AdversarialLoss",
    "FeatureMatchingLoss",
    "MultiResolutionSTFTLoss",
    "MultiScaleMelLoss",
    "SISDRLoss",
    "WaveformL1Loss",
    "WavLMFeatureLoss",
]
