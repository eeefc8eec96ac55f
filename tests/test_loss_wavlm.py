"""WavLM conv-feature loss, loaded through the real ``from_pretrained`` path from a tiny random WavLM."""

from __future__ import annotations

import pytest
import torch

from gan_enhance._compat import patch

patch()  # transformers imports torchaudio

from gan_enhance.errors import ConfigError  # noqa: E402
from gan_enhance.losses import WavLMFeatureLoss  # noqa: E402


def signals(sample_rate: int, seconds: float = 0.5) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    length = int(sample_rate * seconds) + 1
    y = 0.1 * torch.randn(2, 1, length, generator=generator)
    return y, 0.1 * torch.randn(2, 1, length, generator=generator)


@pytest.mark.parametrize("sample_rate", [16000, 48000])
def test_value_falls_as_the_output_approaches_the_target(tiny_wavlm_dir, sample_rate):
    loss = WavLMFeatureLoss(tiny_wavlm_dir, sample_rate=sample_rate)
    y, disturbance = signals(sample_rate)
    values = [loss(y + a * disturbance, y).item() for a in (1.0, 0.5, 0.2, 0.05)]
    assert all(a > b for a, b in zip(values, values[1:])), values
    assert loss(y, y.clone()).item() == 0.0


def test_terms_match_wavlm_and_stft_computed_directly(tiny_wavlm_dir):
    from transformers import WavLMModel

    loss = WavLMFeatureLoss(
        tiny_wavlm_dir, feature_weight=3.0, stft_weight=0.5, stft_n_fft=512, stft_hop_length=128
    )
    y, disturbance = signals(16000)
    y_hat = y + disturbance
    reference = WavLMModel.from_pretrained(tiny_wavlm_dir).eval()
    with torch.no_grad():
        mse = (
            (reference.feature_extractor(y_hat[:, 0]) - reference.feature_extractor(y[:, 0])).square().mean()
        )
        spec = lambda w: torch.stft(
            w[:, 0], 512, 128, window=torch.hann_window(512), return_complex=True
        ).abs()
        l1 = (spec(y_hat) - spec(y)).abs().mean()
        feature_mse, stft_l1 = loss.terms(y_hat, y)
        torch.testing.assert_close(feature_mse, mse)
        torch.testing.assert_close(stft_l1, l1)
        torch.testing.assert_close(loss(y_hat, y), 3.0 * mse + 0.5 * l1)


def test_wavlm_stays_frozen_and_the_target_gets_no_gradient(tiny_wavlm_dir):
    loss = WavLMFeatureLoss(tiny_wavlm_dir, sample_rate=24000).train()
    assert not loss.encoder.training  # train() on the loss leaves WavLM in eval mode (no dropout)
    y, disturbance = signals(24000)
    y.requires_grad_(True)
    y_hat = (y.detach() + disturbance).requires_grad_(True)
    feature_mse, _ = loss.terms(y_hat, y)
    feature_mse.backward()
    assert y.grad is None  # target features are computed without a graph
    assert y_hat.grad is not None and y_hat.grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in loss.encoder.parameters())


def test_gradients_reach_the_generator(tiny_wavlm_dir):
    torch.manual_seed(0)
    generator = torch.nn.Conv1d(1, 1, 5, padding=2)
    y, x = signals(16000)
    WavLMFeatureLoss(tiny_wavlm_dir)(generator(x), y).backward()
    assert torch.isfinite(generator.weight.grad).all() and generator.weight.grad.abs().sum() > 0


def test_bf16_autocast_stays_close_to_float32(tiny_wavlm_dir):
    y, disturbance = signals(16000)
    full = WavLMFeatureLoss(tiny_wavlm_dir)(y + disturbance, y)
    half = WavLMFeatureLoss(tiny_wavlm_dir, use_bf16=True)(y + disturbance, y)
    assert half.dtype == torch.float32
    assert half.item() == pytest.approx(full.item(), rel=0.05)


def test_unloadable_weights_name_the_model(tmp_path):
    with pytest.raises(ConfigError, match=str(tmp_path)):
        WavLMFeatureLoss(str(tmp_path))


def test_too_short_input_is_a_clear_error(tiny_wavlm_dir):
    with pytest.raises(ValueError, match="at least 400 samples"):
        WavLMFeatureLoss(tiny_wavlm_dir)(torch.zeros(1, 1, 300), torch.zeros(1, 1, 300))


def test_normalized_input_makes_the_feature_term_level_invariant(tmp_path):
    from transformers import WavLMConfig, WavLMModel

    # WavLM-Large's encoder layout (layer norm after biased convs) is not invariant to the input level; the
    # tiny fixture's group-norm layout (WavLM-Base) already is, so it could not show the difference.
    torch.manual_seed(0)
    config = WavLMConfig(
        feat_extract_norm="layer",
        conv_bias=True,
        do_stable_layer_norm=True,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        conv_dim=(16,) * 7,
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
    )
    WavLMModel(config).save_pretrained(tmp_path)
    y, disturbance = signals(16000)
    for normalize, invariant in ((True, True), (False, False)):
        loss = WavLMFeatureLoss(str(tmp_path), normalize_input=normalize)
        quiet = loss.terms(y + disturbance, 0.2 * y)[0]
        loud = loss.terms(10 * (y + disturbance), 2 * y)[0]
        assert torch.allclose(quiet, loud, rtol=1e-3) == invariant


def test_an_uncached_hub_id_offline_fails_at_once_in_one_line(tmp_path, monkeypatch):
    import time

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    start = time.monotonic()
    with pytest.raises(ConfigError) as error:
        WavLMFeatureLoss("microsoft/wavlm-large")
    assert time.monotonic() - start < 5  # no download retries
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith("WavLMFeatureLoss.model: cannot load 'microsoft/wavlm-large'")
    assert "--wavlm none" in message
