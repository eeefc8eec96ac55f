"""Spectral reconstruction losses: DAC's multi-scale log-mel L1 and a multi-resolution STFT loss.

Windows and mel filterbanks come from :mod:`gan_enhance.nn.spectral`, which builds each once per
device, dtype and settings.
"""

from __future__ import annotations

import torch
from torch import nn

from gan_enhance.losses.waveform import check_same_shape
from gan_enhance.nn.spectral import magnitude, mel_spectrogram, stft

# List defaults below are what `gan-enhance train --help` shows (argbind's generated help); values are
# checked against the type hints; the defaults are never mutated.


def _check_lengths(**lists: list) -> None:
    lengths = {name: len(values) for name, values in lists.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"these settings must have the same length: {lengths}")


class MultiScaleMelLoss(nn.Module):
    """L1 distance of log10 mel spectrograms at several resolutions, summed over scales (``mel/loss``).

    The defaults are DAC's (7 scales, windows 32..2048, hop window/4, magnitude mel, clamp 1e-5), and the
    scales are summed as DAC sums them, so DAC's weight (15) carries over.

    Parameters
    ----------
    sample_rate : int
        Rate of the audio the loss sees.
    n_mels, window_lengths : list[int]
        Mel bands and STFT window (= FFT size) of each scale.
    hop_fraction : float
        Hop as a fraction of the window.
    f_min, f_max : float
        Mel band edges in Hz (``f_max = 0``: Nyquist).
    clamp_eps : float
        Floor of the mel values before the log.
    power : float
        Exponent applied to the clamped mel values before the log (1: magnitude).
    log_weight, magnitude_weight : float
        Weights of the log-mel L1 and of the linear mel L1 terms within each scale.
    """

    def __init__(
        self,
        sample_rate: int,
        n_mels: list[int] = [5, 10, 20, 40, 80, 160, 320],  # noqa: B006
        window_lengths: list[int] = [32, 64, 128, 256, 512, 1024, 2048],  # noqa: B006
        hop_fraction: float = 0.25,
        f_min: float = 0.0,
        f_max: float = 0.0,
        clamp_eps: float = 1e-5,
        power: float = 1.0,
        log_weight: float = 1.0,
        magnitude_weight: float = 0.0,
    ):
        super().__init__()
        _check_lengths(n_mels=n_mels, window_lengths=window_lengths)
        self.sample_rate = sample_rate
        self.scales = [
            (int(m), int(w), max(1, int(w * hop_fraction))) for m, w in zip(n_mels, window_lengths)
        ]
        self.f_min, self.f_max = f_min, f_max
        self.clamp_eps, self.power = clamp_eps, power
        self.log_weight, self.magnitude_weight = log_weight, magnitude_weight

    def forward(self, y_hat: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``(B, 1, T), (B, 1, T) -> ()``."""
        check_same_shape(y_hat, y)
        total = 0.0
        for n_mels, window, hop in self.scales:
            settings = dict(
                sample_rate=self.sample_rate,
                n_fft=window,
                hop_length=hop,
                n_mels=n_mels,
                f_min=self.f_min,
                f_max=self.f_max,
            )
            mel_hat, mel = mel_spectrogram(y_hat, **settings), mel_spectrogram(y, **settings)
            if self.log_weight:
                log_hat = mel_hat.clamp(min=self.clamp_eps).pow(self.power).log10()
                log_ref = mel.clamp(min=self.clamp_eps).pow(self.power).log10()
                total = total + self.log_weight * (log_hat - log_ref).abs().mean()
            if self.magnitude_weight:
                total = total + self.magnitude_weight * (mel_hat - mel).abs().mean()
        return total


class MultiResolutionSTFTLoss(nn.Module):
    """Spectral convergence + log-magnitude L1 at several STFT resolutions, averaged (``stft/loss``).

    Per resolution (Parallel WaveGAN's form): ``sc_weight * |(|Y| - |Y_hat|)|_F / |Y|_F
    + log_weight * mean|log |Y| - log |Y_hat||  + magnitude_weight * mean||Y| - |Y_hat||``.

    Parameters
    ----------
    n_ffts, hop_lengths, win_lengths : list[int]
        One STFT setting per resolution (same lengths).
    sc_weight, log_weight, magnitude_weight : float
        Weights of the three terms.
    eps : float
        Floor of the squared magnitude (keeps ``log`` and the gradient of ``|z|`` finite at silence).
    """

    def __init__(
        self,
        n_ffts: list[int] = [512, 1024, 2048],  # noqa: B006
        hop_lengths: list[int] = [50, 120, 240],  # noqa: B006
        win_lengths: list[int] = [240, 600, 1200],  # noqa: B006
        sc_weight: float = 1.0,
        log_weight: float = 1.0,
        magnitude_weight: float = 0.0,
        eps: float = 1e-7,
    ):
        super().__init__()
        _check_lengths(n_ffts=n_ffts, hop_lengths=hop_lengths, win_lengths=win_lengths)
        self.resolutions = [(int(n), int(h), int(w)) for n, h, w in zip(n_ffts, hop_lengths, win_lengths)]
        self.sc_weight, self.log_weight, self.magnitude_weight = sc_weight, log_weight, magnitude_weight
        self.eps = eps

    def forward(self, y_hat: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``(B, 1, T), (B, 1, T) -> ()``."""
        check_same_shape(y_hat, y)
        total = 0.0
        for n_fft, hop, win in self.resolutions:
            mag_hat = magnitude(stft(y_hat, n_fft, hop, win), eps=self.eps)
            mag = magnitude(stft(y, n_fft, hop, win), eps=self.eps)
            if self.sc_weight:
                convergence = torch.linalg.vector_norm(mag - mag_hat) / torch.linalg.vector_norm(mag)
                total = total + self.sc_weight * convergence
            if self.log_weight:
                total = total + self.log_weight * (mag.log() - mag_hat.log()).abs().mean()
            if self.magnitude_weight:
                total = total + self.magnitude_weight * (mag - mag_hat).abs().mean()
        return total / len(self.resolutions)
