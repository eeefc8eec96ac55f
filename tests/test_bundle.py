"""Generator bundles: save -> load round trip, atomic writes, and clear errors for bad folders."""

from __future__ import annotations

import json
import os
import pickle

import numpy as np
import pytest
import torch

import gan_enhance
from gan_enhance.bundle import CONFIG_FILE, WEIGHTS_FILE, load_generator, save_bundle
from gan_enhance.errors import CheckpointError, ConfigError
from gan_enhance.models.generators import GENERATORS, build_generator
from gan_enhance.nn.layers import has_weight_norm

# Small settings per backbone so every test here runs in well under a second per backbone. A backbone
# missing from this table is still tested, with its default settings (slower): add it here.
TINY_SETTINGS = {
    "unet1d": dict(channels=[8, 16], blocks=[1, 1], factors=[4], scale_vs_channels=[2], kernel_size=7),
    "dac": dict(channels=4, strides=[2, 4], dilations=[1, 3]),
    "hifipp": dict(
        n_fft=256,
        n_mels=16,
        spectral_widths=[4, 8],
        upsample_rates=[4, 4, 4],
        upsample_channels=16,
        resblock_kernels=[3],
        resblock_dilations=[1, 3],
        waveunet_widths=[4, 8],
        waveunet_factors=[4],
        mask_n_fft=256,
        mask_hop=64,
        mask_widths=[4, 8],
        head_widths=[4, 8],
        head_factors=[4],
        # The published init (0.01) starts near silence; 0.2 gives outputs of order 0.1 to compare.
        init_std=0.2,
    ),
    "spectral": dict(n_fft=256, hop=64, channels=16, blocks=2),
}


def tiny_generator(name: str, in_sample_rate: int = 8000, out_sample_rate: int = 16000, seed: int = 0):
    """A small randomly initialised backbone ``name`` (weight norm on, as in training)."""
    torch.manual_seed(seed)
    settings = dict(TINY_SETTINGS.get(name, {}))
    return build_generator(name, in_sample_rate=in_sample_rate, out_sample_rate=out_sample_rate, **settings)


@pytest.fixture
def generator():
    return tiny_generator("unet1d")


@pytest.mark.parametrize("name", GENERATORS.names())
def test_saved_and_loaded_generator_gives_the_same_output(name, tmp_path):
    generator = tiny_generator(name).eval()
    # Perturb every parameter so a loader that silently kept fresh initial weights would be caught.
    with torch.no_grad():
        for parameter in generator.parameters():
            parameter.add_(0.01 * torch.randn_like(parameter))
    save_bundle(generator, tmp_path / "bundle", extra={"step": 7})
    loaded = load_generator(tmp_path / "bundle")
    x = 0.5 * torch.randn(2, 1, 3001)
    with torch.no_grad():
        expected, actual = generator(x), loaded(x)
    assert actual.shape == (2, 1, 3001 * generator.ratio)
    torch.testing.assert_close(actual, expected, atol=1e-5, rtol=0)
    assert not has_weight_norm(loaded)
    assert not loaded.training


def test_saving_keeps_weight_norm_on_the_original_and_writes_the_documented_config(generator, tmp_path):
    with torch.no_grad():
        before = generator(torch.ones(1, 1, 800))
    save_bundle(generator, tmp_path / "bundle", extra={"checkpoint": "runs/x/checkpoints/best/checkpoint.pt"})
    assert has_weight_norm(generator)
    with torch.no_grad():
        torch.testing.assert_close(generator(torch.ones(1, 1, 800)), before)
    assert sorted(os.listdir(tmp_path / "bundle")) == [CONFIG_FILE, WEIGHTS_FILE]
    config = json.loads((tmp_path / "bundle" / CONFIG_FILE).read_text())
    assert config["format"] == "gan_enhance.generator"
    assert config["generator"] == {"name": "unet1d", "kwargs": generator.build_config["kwargs"]}
    assert (config["in_sample_rate"], config["out_sample_rate"]) == (8000, 16000)
    assert config["context"] == generator.context and config["alignment"] == generator.alignment
    assert config["source"]["checkpoint"].endswith("checkpoint.pt")
    assert config["version"] == gan_enhance.__version__


def test_saving_replaces_an_old_bundle_but_never_a_foreign_folder(generator, tmp_path):
    save_bundle(tiny_generator("unet1d", seed=1), tmp_path / "bundle")
    save_bundle(generator, tmp_path / "bundle")
    x = torch.randn(1, 1, 500)
    with torch.no_grad():
        torch.testing.assert_close(load_generator(tmp_path / "bundle")(x), generator(x), atol=1e-5, rtol=0)

    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "notes.txt").write_text("keep me")
    with pytest.raises(CheckpointError, match="not an exported model folder"):
        save_bundle(generator, tmp_path / "data")
    assert os.listdir(tmp_path / "data") == ["notes.txt"]
    assert sorted(os.listdir(tmp_path)) == ["bundle", "data"]  # no staging folders left behind


def test_a_failed_save_leaves_the_previous_bundle_untouched(generator, tmp_path):
    save_bundle(generator, tmp_path / "bundle")
    config_before = (tmp_path / "bundle" / CONFIG_FILE).read_text()
    with pytest.raises(CheckpointError, match="JSON"):
        save_bundle(tiny_generator("unet1d", seed=1), tmp_path / "bundle", extra={"bad": object()})
    assert (tmp_path / "bundle" / CONFIG_FILE).read_text() == config_before
    assert os.listdir(tmp_path) == ["bundle"]


def _corrupt_config(folder):
    (folder / CONFIG_FILE).write_text("{not json")


def _drop_weights(folder):
    os.remove(folder / WEIGHTS_FILE)


def _garbage_weights(folder):
    (folder / WEIGHTS_FILE).write_bytes(b"\x00garbage" * 10)


def _other_architecture(folder):
    config = json.loads((folder / CONFIG_FILE).read_text())
    config["generator"]["kwargs"]["channels"] = [16, 32]
    (folder / CONFIG_FILE).write_text(json.dumps(config))


def _unknown_backbone(folder):
    config = json.loads((folder / CONFIG_FILE).read_text())
    config["generator"]["name"] = "no-such-backbone"
    (folder / CONFIG_FILE).write_text(json.dumps(config))


def _newer_format(folder):
    config = json.loads((folder / CONFIG_FILE).read_text())
    config["format_version"] = 99
    (folder / CONFIG_FILE).write_text(json.dumps(config))


@pytest.mark.parametrize(
    "damage, file, message",
    [
        (_corrupt_config, CONFIG_FILE, "not valid JSON"),
        (_drop_weights, WEIGHTS_FILE, "is missing"),
        (_garbage_weights, WEIGHTS_FILE, "corrupt"),
        (_other_architecture, WEIGHTS_FILE, "does not fit"),
        (_unknown_backbone, CONFIG_FILE, "no-such-backbone"),
        (_newer_format, CONFIG_FILE, "upgrade gan_enhance"),
    ],
)
def test_damaged_bundles_raise_a_checkpoint_error_naming_the_file(generator, tmp_path, damage, file, message):
    save_bundle(generator, tmp_path / "bundle")
    damage(tmp_path / "bundle")
    with pytest.raises(CheckpointError, match=message) as error:
        load_generator(tmp_path / "bundle")
    assert file in str(error.value)


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_generator(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match=CONFIG_FILE):
        load_generator(tmp_path / "empty")


class _Exploit:
    """Unpickling this runs ``open(marker, "w")``: proof that something unpickled the file."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_loading_never_unpickles_anything_in_the_folder(generator, tmp_path):
    save_bundle(generator, tmp_path / "bundle")
    marker = str(tmp_path / "unpickled")
    payload = pickle.dumps({"state_dict": _Exploit(marker)})
    for name in ("pytorch_model.bin", "model.pt", "checkpoint.pt", "model.pkl"):
        (tmp_path / "bundle" / name).write_bytes(payload)
    load_generator(tmp_path / "bundle")
    # A pickle put in place of the weights is refused, not executed.
    (tmp_path / "bundle" / WEIGHTS_FILE).write_bytes(payload)
    with pytest.raises(CheckpointError, match=WEIGHTS_FILE):
        load_generator(tmp_path / "bundle")
    assert not os.path.exists(marker)


def test_loaded_generator_has_an_enhance_method(generator, tmp_path):
    save_bundle(generator, tmp_path / "bundle")
    loaded = load_generator(tmp_path / "bundle")
    wav = 0.1 * torch.randn(2, 12000)
    enhanced, rate = loaded.enhance(wav, 8000, chunk_seconds=0.5)
    assert rate == 16000 and enhanced.shape == (2, 24000)
    with torch.no_grad():
        torch.testing.assert_close(enhanced, loaded(wav[:, None])[:, 0], atol=1e-5, rtol=0)
    mono, rate = loaded.enhance(wav[0], 8000, keep_sample_rate=True)
    assert rate == 8000 and mono.shape == (12000,)


def test_enhance_takes_tensors_channels_first_and_numpy_frames_first(generator, tmp_path):
    save_bundle(generator, tmp_path / "bundle")
    loaded = load_generator(tmp_path / "bundle")
    wav = 0.1 * torch.randn(2, 6000)
    expected, _ = loaded.enhance(wav, 8000)
    # soundfile.read's layout: (T, C) in, (T, C) out, as numpy.
    frames_first, rate = loaded.enhance(wav.T.numpy(), 8000)
    assert isinstance(frames_first, np.ndarray) and frames_first.shape == (12000, 2) and rate == 16000
    np.testing.assert_allclose(frames_first, expected.T.numpy(), atol=1e-6)
    mono, _ = loaded.enhance(wav[0].numpy(), 8000)
    assert mono.shape == (12000,)
    np.testing.assert_allclose(mono, expected[0].numpy(), atol=1e-6)
    # int16 PCM is scaled to [-1, 1].
    pcm = np.round(wav.T.numpy() * 32768).astype(np.int16)
    from_pcm, _ = loaded.enhance(pcm, 8000)
    np.testing.assert_allclose(from_pcm, loaded.enhance(pcm / 32768.0, 8000)[0], atol=1e-6)
    assert np.abs(from_pcm - frames_first).max() < 1e-2


@pytest.mark.parametrize(
    "waveform, message",
    [
        (np.zeros((2, 6000)), r"numpy array shaped \(2, 6000\), read as \(T, C\).*pass waveform.T"),
        (torch.zeros(6000, 2), r"tensor shaped \(6000, 2\), read as \(C, T\).*pass waveform.T"),
        (torch.zeros(1, 1, 6000), r"shaped \(T,\) or \(C, T\), got a tensor shaped \(1, 1, 6000\)"),
        (np.zeros(0, np.float32), r"non-empty .* got a numpy array shaped \(0,\)"),
    ],
)
def test_enhance_names_a_shape_it_cannot_read(generator, tmp_path, waveform, message):
    save_bundle(generator, tmp_path / "bundle")
    with pytest.raises(ConfigError, match=message) as caught:
        load_generator(tmp_path / "bundle").enhance(waveform, 8000)
    assert "\n" not in str(caught.value)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_an_unavailable_device_is_one_line(generator, tmp_path):
    save_bundle(generator, tmp_path / "bundle")
    with pytest.raises(ConfigError, match=r"device 'cuda': .* without CUDA; use cpu"):
        load_generator(tmp_path / "bundle", device="cuda")
    with pytest.raises(ConfigError, match="'gpu' is not a device name"):
        load_generator(tmp_path / "bundle", device="gpu")


def test_package_lists_its_public_api():
    assert gan_enhance.load_generator is load_generator
    assert {"load_generator", "save_bundle", "Enhancer", "export_checkpoint", "build_generator"} <= set(
        gan_enhance.__all__
    )
    for name in gan_enhance.__all__:
        assert getattr(gan_enhance, name) is not None and name in dir(gan_enhance)
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        gan_enhance.nothing


@pytest.fixture
def wavlm_dir(request):
    """``tiny_wavlm_dir`` with the compatibility patches applied first (transformers imports torchaudio)."""
    from gan_enhance._compat import patch

    patch()
    return request.getfixturevalue("tiny_wavlm_dir")


@pytest.mark.slow
def test_wavlm_conditioned_generator_loads_without_its_wavlm_folder(wavlm_dir, tmp_path):
    """The frozen WavLM travels inside the bundle (architecture in JSON, weights in safetensors)."""
    import shutil

    wavlm_copy = shutil.copytree(wavlm_dir, tmp_path / "wavlm")
    settings = dict(TINY_SETTINGS["hifipp"], wavlm=str(wavlm_copy), wavlm_layer=0)
    torch.manual_seed(0)
    generator = build_generator("hifipp", in_sample_rate=16000, out_sample_rate=16000, **settings).eval()
    save_bundle(generator, tmp_path / "bundle")
    shutil.rmtree(wavlm_copy)
    loaded = load_generator(tmp_path / "bundle")
    x = 0.3 * torch.randn(1, 1, 8000)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), generator(x), atol=1e-5, rtol=0)
