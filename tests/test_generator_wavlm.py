"""FINALLY-style WavLM conditioning of ``hifipp`` and the frozen WavLM loader."""

from __future__ import annotations

import pytest
import torch
from test_generators import TINY

from gan_enhance._compat import patch
from gan_enhance.errors import ConfigError
from gan_enhance.models.generators import build_generator
from gan_enhance.nn.wavlm import FrozenWavLM, load_wavlm

# The tiny_wavlm_dir fixture imports transformers, which may import torchaudio: patch it first.
patch()


def test_load_wavlm_is_frozen_and_names_a_missing_model(tiny_wavlm_dir, tmp_path):
    model = load_wavlm(tiny_wavlm_dir)
    assert not model.training
    assert not any(p.requires_grad for p in model.parameters())
    missing = str(tmp_path / "no-such-wavlm")
    with pytest.raises(ConfigError, match="no-such-wavlm"):
        load_wavlm(missing)


def test_frozen_wavlm_stays_in_eval_mode_and_passes_gradients_to_its_input(tiny_wavlm_dir):
    wavlm = FrozenWavLM(load_wavlm(tiny_wavlm_dir), layer=0)
    wavlm.train()
    assert not wavlm.model.training
    wav = torch.randn(1, 1, 1600, requires_grad=True)
    features = wavlm(wav)
    assert features.shape == (1, 32, (1600 - 400) // 320 + 1)
    features.sum().backward()
    assert wav.grad.abs().sum() > 0


def wavlm_generator(folder: str, **overrides):
    torch.manual_seed(0)
    return build_generator("hifipp", wavlm=folder, **{**TINY["hifipp"], **overrides})


@pytest.mark.parametrize("layer", [-1, 0])
def test_conditioning_changes_the_output_and_only_trains_the_projection(tiny_wavlm_dir, layer):
    model = wavlm_generator(tiny_wavlm_dir, wavlm_layer=layer)
    x = torch.randn(1, 1, 3 * model.alignment + 11)
    y = model(x)
    assert y.shape == x.shape
    y.pow(2).mean().backward()
    assert all(p.grad is None for p in model.wavlm.parameters())
    assert model.wavlm_proj.parametrizations.weight.original1.grad.abs().sum() > 0
    with torch.no_grad():
        model.wavlm_proj.parametrizations.weight.original0.zero_()
        assert (model(x) - y).abs().max() > 1e-6


def test_saved_config_rebuilds_without_the_original_folder(tiny_wavlm_dir, tmp_path):
    model = wavlm_generator(tiny_wavlm_dir).eval()
    config = model.build_config
    assert config["kwargs"]["wavlm"] == tiny_wavlm_dir
    assert config["kwargs"]["wavlm_config"]  # the WavLM architecture travels with the model
    # Rebuilding never reads the folder: point it somewhere that does not exist.
    kwargs = {**config["kwargs"], "wavlm": str(tmp_path / "gone")}
    rebuilt = build_generator(config["name"], **kwargs).eval()
    rebuilt.load_state_dict(model.state_dict())
    x = torch.randn(1, 1, 2 * model.alignment)
    with torch.no_grad():
        assert torch.equal(model(x), rebuilt(x))
        model.remove_weight_norm()
        rebuilt.remove_weight_norm()
        assert (model(x) - rebuilt(x)).abs().max() < 1e-5


def test_transformer_features_declare_an_approximate_context(tiny_wavlm_dir):
    model = wavlm_generator(tiny_wavlm_dir, wavlm_layer=-1, wavlm_context=0.5)
    assert not model.exact_context
    assert model.context >= 8000
    assert build_generator("hifipp", **TINY["hifipp"]).exact_context


def test_conditioning_needs_16_khz_input(tiny_wavlm_dir):
    with pytest.raises(ConfigError, match="16000"):
        wavlm_generator(tiny_wavlm_dir, in_sample_rate=48000, out_sample_rate=48000)


def test_conv_features_of_a_layer_norm_wavlm_chunk_exactly(tmp_path):
    from test_generators import chunked
    from transformers import WavLMConfig, WavLMModel

    torch.manual_seed(0)
    config = WavLMConfig(
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        conv_dim=(8,) * 7,
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
        feat_extract_norm="layer",  # as WavLM-Large: normalised per frame, not over time
    )
    WavLMModel(config).save_pretrained(tmp_path / "wavlm")
    model = wavlm_generator(str(tmp_path / "wavlm"), wavlm_layer=0).eval()
    assert model.exact_context and model.alignment % 320 == 0
    x = torch.randn(1, 1, 3 * model.alignment + 2 * model.context + 77)
    with torch.no_grad():
        whole, pieces = model(x), chunked(model, x, model.alignment)
    assert whole.std() > 0.1
    assert (pieces - whole).abs().max() < 1e-4
