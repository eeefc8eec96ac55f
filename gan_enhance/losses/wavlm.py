"""FINALLY's LMOS loss: distance between WavLM convolutional-encoder features, plus STFT magnitudes.

The conv encoder of WavLM (seven strided convs, 20 ms hop at 16 kHz) maps speech to features that track
phonetic content and are insensitive to small phase differences, which makes it a good regression target
for enhancement (FINALLY chose it over the transformer layers). The network is frozen: gradients reach the
generator's output, never WavLM's weights.
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from gan_enhance._compat import patch
from gan_enhance.audio import resample
from gan_enhance.losses.waveform import check_same_shape
from gan_enhance.nn.spectral import stft
from gan_enhance.nn.wavlm import WAVLM_SAMPLE_RATE, FrozenWavLM, load_wavlm

# The config key that names the model, and what a user without it can do: both in every error message.
MODEL_KEY = "WavLMFeatureLoss.model"
MODEL_HINT = (
    "pass a local folder (save_pretrained) or turn the loss off with lambdas.wavlm/loss 0 "
    "(in a recipe: --wavlm PATH or --wavlm none)"
)


class WavLMFeatureLoss(nn.Module):
    """``feature_weight * MSE(WavLM-conv(y_hat), WavLM-conv(y)) + stft_weight * L1(|Y_hat|, |Y|)``.

    Logged as ``wavlm/loss``. A run that gives it weight 0 never builds it (``loads_model``), so the WavLM
    model is only ever loaded when the loss trains the generator.

    Parameters
    ----------
    model : str
        Hub id (``"microsoft/wavlm-large"``, as FINALLY) or a folder written by ``save_pretrained``. Only
        its convolutional encoder is kept (4 M of WavLM-Large's 315 M weights).
    sample_rate : int
        Rate of the audio the loss sees; it is resampled to 16 kHz for WavLM (gradients pass through).
    feature_weight, stft_weight : float
        Weights of the feature MSE and of the STFT-magnitude L1 (FINALLY: 100 and 1).
    stft_n_fft, stft_hop_length : int
        STFT of the magnitude term, at ``sample_rate``.
    normalize_input : bool
        Scale each example to zero mean and unit variance before WavLM, as WavLM-Large's own feature
        extractor does (``do_normalize``); the feature term then ignores the output's level (the STFT
        term still sees it).
    use_bf16 : bool
        Run the WavLM encoder under bfloat16 autocast (about half the activation memory on GPU); the
        distances are computed in float32.
    eps : float
        Added to the variance in ``normalize_input``.
    resample_quality : str
        ``"fast"``, ``"default"`` or ``"best"`` (see :func:`gan_enhance.audio.resample`).

    Raises
    ------
    ConfigError
        One line naming ``WavLMFeatureLoss.model`` when the model cannot be loaded (offline and not in
        the local cache fails at once, without download retries).
    """

    loads_model = True  # an external model: not built just to log the loss at weight 0

    def __init__(
        self,
        model: str = "microsoft/wavlm-large",
        sample_rate: int = 16000,
        feature_weight: float = 100.0,
        stft_weight: float = 1.0,
        stft_n_fft: int = 1024,
        stft_hop_length: int = 256,
        normalize_input: bool = False,
        use_bf16: bool = False,
        eps: float = 1e-7,
        resample_quality: str = "default",
    ):
        super().__init__()
        patch()  # transformers imports torchaudio, which needs the CPU-only workaround here
        # Keep the conv encoder only: the transformer is never run, so it need not occupy memory.
        self.encoder = load_wavlm(model, MODEL_KEY, MODEL_HINT).feature_extractor
        self.encoder.eval()
        self.encoder.requires_grad_(False)
        self.model_name = model
        self.sample_rate = sample_rate
        self.feature_weight, self.stft_weight = feature_weight, stft_weight
        self.stft_n_fft, self.stft_hop_length = stft_n_fft, stft_hop_length
        self.normalize_input, self.use_bf16, self.eps = normalize_input, use_bf16, eps
        self.resample_quality = resample_quality

    def train(self, mode: bool = True) -> WavLMFeatureLoss:
        """Keep the encoder in eval mode whatever the trainer asks (no dropout, fixed norms)."""
        super().train(mode)
        self.encoder.eval()
        return self

    def features(self, wav: torch.Tensor) -> torch.Tensor:
        """``(B, 1, T)`` at ``sample_rate`` -> WavLM conv features ``(B, C, frames)`` in float32."""
        wav = resample(wav.float(), self.sample_rate, WAVLM_SAMPLE_RATE, self.resample_quality)
        if wav.shape[-1] < FrozenWavLM.window:
            raise ValueError(
                f"WavLMFeatureLoss needs at least {FrozenWavLM.window} samples at {WAVLM_SAMPLE_RATE} Hz, "
                f"got {wav.shape[-1]}"
            )
        if self.normalize_input:
            wav = (wav - wav.mean(dim=-1, keepdim=True)) / torch.sqrt(
                wav.var(dim=-1, keepdim=True) + self.eps
            )
        autocast = (
            torch.autocast(device_type=wav.device.type, dtype=torch.bfloat16)
            if self.use_bf16
            else contextlib.nullcontext()
        )
        with autocast:
            return self.encoder(wav[:, 0]).float()

    def terms(self, y_hat: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The unweighted ``(feature MSE, STFT-magnitude L1)`` of ``(B, 1, T)`` output and target."""
        check_same_shape(y_hat, y)
        with torch.no_grad():
            target_features = self.features(y)
        feature_mse = (self.features(y_hat) - target_features).square().mean()
        magnitude_hat = stft(y_hat, self.stft_n_fft, self.stft_hop_length).abs()
        magnitude = stft(y, self.stft_n_fft, self.stft_hop_length).abs()
        return feature_mse, (magnitude_hat - magnitude).abs().mean()

    def forward(self, y_hat: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``(B, 1, T), (B, 1, T) -> ()``."""
        feature_mse, stft_l1 = self.terms(y_hat, y)
        return self.feature_weight * feature_mse + self.stft_weight * stft_l1
