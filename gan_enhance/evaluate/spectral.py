"""Spectral distances between an estimate and its reference, and the cutoff of a band-limited input.

All functions take 1-D float arrays at one sample rate (the reference's) and return a float. They use
the shared STFT and mel helpers of :mod:`gan_enhance.nn.spectral`, so "mel distance" here is the same
quantity the mel loss measures during training.

Definitions (each is 0 for identical signals):

- log-spectral distance (LSD, as in NU-Wave / AudioSR):
  ``mean_t sqrt(mean_f (log10 P_ref(t, f) - log10 P_est(t, f))^2)`` over power spectra ``P``; restricted
  to the bins above (``lsd_high``) or below (``lsd_low``) a cutoff for bandwidth extension.
- multi-scale mel distance (DAC's mel loss): ``sum_s mean |log10 max(M_est, eps) - log10 max(M_ref, eps)|``
  over mel magnitude spectrograms ``M`` at several (window, n_mels) scales. Summed, not averaged, so the
  figure is comparable with the "mel distance" DAC reports.
- multi-resolution STFT distance (Parallel WaveGAN): ``mean_r (SC_r + mean |ln |X_est| - ln |X_ref||)``
  with spectral convergence ``SC = ||X_ref| - |X_est||_F / ||X_ref||_F``.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.signal
import torch

from gan_enhance.nn import spectral

# DAC's mel-loss scales (conf/base.yml of descript-audio-codec): window lengths and mel bands per scale.
MEL_WINDOWS = [32, 64, 128, 256, 512, 1024, 2048]
MEL_BANDS = [5, 10, 20, 40, 80, 160, 320]
MEL_CLAMP = 1e-5
# Parallel WaveGAN's three resolutions: (n_fft, hop, window).
STFT_RESOLUTIONS = [(512, 128, 512), (1024, 256, 1024), (2048, 512, 2048)]
STFT_CLAMP = 1e-7
# LSD settings of the bandwidth-extension literature (NU-Wave, AudioSR at 48 kHz).
LSD_N_FFT = 2048
LSD_HOP = 512
LSD_EPS = 1e-10


def _tensor(x: np.ndarray, length: int) -> torch.Tensor:
    """(T,) array -> (1, T') float32 tensor, zero-padded to at least ``length`` samples."""
    wav = torch.as_tensor(np.asarray(x, dtype=np.float32))
    if wav.shape[-1] < length:
        wav = torch.nn.functional.pad(wav, (0, length - wav.shape[-1]))
    return wav[None]


def _magnitudes(estimate, reference, n_fft: int, hop: int, win: int = 0, power: float = 1.0):
    """Magnitude (or power) spectrograms of both signals, ``(F, frames)`` each."""
    length = n_fft + 1
    pair = torch.cat([_tensor(estimate, length), _tensor(reference, length)])
    spec = spectral.stft(pair, n_fft=n_fft, hop_length=hop, win_length=win or n_fft)
    mags = spec.abs().pow(power)
    return mags[0], mags[1]


def log_spectral_distance(
    estimate: np.ndarray,
    reference: np.ndarray,
    sample_rate: int,
    low_hz: float = 0.0,
    high_hz: float = 0.0,
    n_fft: int = LSD_N_FFT,
    hop: int = LSD_HOP,
) -> float:
    """LSD over the bins in ``[low_hz, high_hz]`` (``high_hz = 0``: up to Nyquist).

    Returns NaN when the band holds no bin (e.g. a cutoff at Nyquist).
    """
    est, ref = _magnitudes(estimate, reference, n_fft, hop, power=2.0)
    freqs = torch.linspace(0.0, sample_rate / 2, est.shape[0])
    high_hz = high_hz or sample_rate / 2
    band = (freqs >= low_hz) & (freqs <= high_hz)
    if not bool(band.any()):
        return math.nan
    diff = torch.log10(ref[band] + LSD_EPS) - torch.log10(est[band] + LSD_EPS)
    return float(diff.pow(2).mean(dim=0).sqrt().mean())


def estimate_cutoff(wav: np.ndarray, sample_rate: int, drop_db: float = 50.0, n_fft: int = 2048) -> float:
    """Highest frequency (Hz) whose average power is within ``drop_db`` of the spectrum's peak.

    This finds the band limit of a low-passed, resampled or codec-compressed input: above it the power
    falls far below anything the signal holds. Returns the Nyquist frequency for a full-band signal.
    """
    wav = np.asarray(wav, dtype=np.float64)
    segment = min(n_fft, len(wav))
    freqs, power = scipy.signal.welch(wav, fs=sample_rate, nperseg=segment)
    peak = power.max()
    if peak <= 0:
        return float(sample_rate / 2)
    above = np.nonzero(power >= peak * 10 ** (-drop_db / 10))[0]
    return float(freqs[above[-1]])


def mel_distance(
    estimate: np.ndarray,
    reference: np.ndarray,
    sample_rate: int,
    windows: list[int] = MEL_WINDOWS,
    n_mels: list[int] = MEL_BANDS,
    clamp: float = MEL_CLAMP,
) -> float:
    """Multi-scale log-mel L1 distance (DAC's mel loss with its default scales), summed over scales."""
    total = 0.0
    for window, bands in zip(windows, n_mels, strict=True):
        est, ref = _magnitudes(estimate, reference, window, window // 4)
        filters = spectral.mel_filterbank(sample_rate, window, bands)
        est_mel, ref_mel = filters @ est, filters @ ref
        total += float((est_mel.clamp(min=clamp).log10() - ref_mel.clamp(min=clamp).log10()).abs().mean())
    return total


def stft_distance(
    estimate: np.ndarray,
    reference: np.ndarray,
    resolutions: list[tuple[int, int, int]] = STFT_RESOLUTIONS,
    clamp: float = STFT_CLAMP,
) -> float:
    """Multi-resolution STFT distance: spectral convergence plus log-magnitude L1, averaged."""
    total = 0.0
    for n_fft, hop, win in resolutions:
        est, ref = _magnitudes(estimate, reference, n_fft, hop, win)
        convergence = torch.linalg.norm(ref - est) / torch.linalg.norm(ref).clamp(min=clamp)
        log_l1 = (est.clamp(min=clamp).log() - ref.clamp(min=clamp).log()).abs().mean()
        total += float(convergence + log_l1)
    return total / len(resolutions)
