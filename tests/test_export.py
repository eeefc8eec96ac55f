"""Export: training checkpoint -> bundle (EMA weights), ONNX and TorchScript checked against PyTorch."""

from __future__ import annotations

import json
import os
import warnings

import numpy as np
import pytest
import soundfile
import torch
from test_bundle import tiny_generator

from gan_enhance.bundle import CONFIG_FILE, load_generator
from gan_enhance.cli import main as cli
from gan_enhance.errors import CheckpointError, ConfigError
from gan_enhance.export import AlignedInput, check_lengths, export_checkpoint, export_generator
from gan_enhance.models.generators import GENERATORS
from gan_enhance.nn.frames import FramedSTFT


def _perturbed(generator, scale: float, seed: int) -> dict:
    torch.manual_seed(seed)
    return {
        k: v + scale * torch.randn_like(v) if v.is_floating_point() else v
        for k, v in generator.state_dict().items()
    }


def write_run(folder, with_ema: bool = True, tag: str = "best"):
    """A run folder holding ``checkpoints/<tag>/checkpoint.pt`` laid out as docs/internal_api.md says."""
    generator = tiny_generator("unet1d")
    checkpoint = {
        "version": "0.1.0",
        "step": 1200,
        "generator": _perturbed(generator, 0.01, 1),
        "generator_config": generator.build_config,
        "discriminator": {"conv.weight": torch.randn(4, 1, 3)},
        "discriminator_config": {"names": ["mpd"]},
        "optimizers": {"generator": {"state": {}, "param_groups": []}},
        "metrics": {"mel/loss": 1.5, "pesq": torch.tensor(2.5)},
        "config": {"lambdas": {"mel/loss": 15.0}},
    }
    if with_ema:
        checkpoint["generator_ema"] = _perturbed(generator, 0.01, 2)
    path = folder / "checkpoints" / tag / "checkpoint.pt"
    path.parent.mkdir(parents=True)
    torch.save(checkpoint, path)
    return path, checkpoint


def _reference(checkpoint: dict, weights: str):
    generator = tiny_generator("unet1d")
    generator.load_state_dict(checkpoint[weights])
    return generator.eval()


@pytest.mark.parametrize("with_ema", [True, False])
def test_export_of_a_run_loads_back_with_the_trained_or_ema_weights(tmp_path, with_ema):
    _, checkpoint = write_run(tmp_path / "run", with_ema=with_ema)
    report = export_checkpoint(tmp_path / "run", tmp_path / "model", tag="best")
    weights = "generator_ema" if with_ema else "generator"
    assert report["source"]["weights"] == weights and report["source"]["step"] == 1200
    loaded = load_generator(tmp_path / "model")
    x = 0.5 * torch.randn(2, 1, 4001)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), _reference(checkpoint, weights)(x), atol=1e-5, rtol=0)
        other = _reference(checkpoint, "generator" if with_ema else "generator")(x)
    if with_ema:  # the EMA weights really differ, so the comparison above could fail
        assert (loaded(x) - other).abs().max() > 1e-3
    config = json.loads((tmp_path / "model" / CONFIG_FILE).read_text())
    assert config["source"]["metrics"] == {"mel/loss": 1.5, "pesq": 2.5}


def test_checkpoint_paths_tags_and_errors(tmp_path):
    path, _ = write_run(tmp_path / "run", tag="latest")
    export_checkpoint(path, tmp_path / "a")  # the checkpoint file itself
    export_checkpoint(path.parent, tmp_path / "b")  # its folder
    with pytest.raises(CheckpointError, match="tags: latest"):
        export_checkpoint(tmp_path / "run", tmp_path / "c", tag="best")
    with pytest.raises(CheckpointError, match="does not exist"):
        export_checkpoint(tmp_path / "nowhere", tmp_path / "c")
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable training checkpoint"):
        export_checkpoint(path, tmp_path / "c")
    torch.save({"step": 3}, path)
    with pytest.raises(CheckpointError, match="not a gan_enhance training checkpoint"):
        export_checkpoint(path, tmp_path / "c")
    assert not os.path.exists(tmp_path / "c")


def test_weights_that_do_not_fit_the_recorded_architecture_are_refused(tmp_path):
    path, checkpoint = write_run(tmp_path / "run")
    checkpoint["generator_config"]["kwargs"]["channels"] = [16, 32]
    torch.save(checkpoint, path)
    with pytest.raises(CheckpointError, match="does not fit generator 'unet1d'"):
        export_checkpoint(tmp_path / "run", tmp_path / "model")


def test_aligned_input_wrapper_matches_the_generator_at_any_length():
    generator = tiny_generator("unet1d").eval()
    wrapped = AlignedInput(generator)
    with torch.no_grad():
        for length in check_lengths(generator) + [1, generator.alignment - 1]:
            x = torch.randn(1, 1, length)
            torch.testing.assert_close(wrapped(x), generator(x))


@pytest.mark.parametrize("name", GENERATORS.names())
def test_onnx_export_matches_pytorch_within_tolerance(tmp_path, name):
    import onnxruntime

    generator = tiny_generator(name)
    report = export_generator(generator, tmp_path / "model", onnx=True)
    assert report["onnx_difference"] <= 1e-4
    # Check independently of the exporter's own check, at a length it did not use, with batch 3.
    session = onnxruntime.InferenceSession(
        str(tmp_path / "model" / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    x = (0.5 * np.random.default_rng(0).standard_normal((3, 1, 5 * generator.alignment + 77))).astype(
        np.float32
    )
    (onnx_output,) = session.run(None, {"audio": x})
    with torch.no_grad():
        expected = load_generator(tmp_path / "model")(torch.from_numpy(x)).numpy()
    assert onnx_output.shape == expected.shape == (3, 1, x.shape[-1] * generator.ratio)
    assert expected.std() > 0.05, "the comparison needs a non-trivial output"
    np.testing.assert_allclose(onnx_output, expected, atol=1e-4, rtol=0)


def test_onnx_export_of_an_inexpressible_model_is_refused_and_writes_nothing(tmp_path, monkeypatch):
    # Complex tensors are what the exporter cannot express: force the FFT kernel during export.
    monkeypatch.setattr(FramedSTFT, "_use_dft_matmul", lambda self: False)
    with pytest.raises(CheckpointError, match="export without --onnx"):
        export_generator(tiny_generator("spectral"), tmp_path / "model", onnx=True)
    assert not os.path.exists(tmp_path / "model")


@pytest.mark.parametrize("name", GENERATORS.names())
def test_torchscript_export_matches_pytorch(tmp_path, name):
    generator = tiny_generator(name)
    report = export_generator(generator, tmp_path / "model", torchscript=True)
    assert report["torchscript_difference"] <= 1e-4
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch 2.13 deprecates TorchScript
        scripted = torch.jit.load(str(tmp_path / "model" / "model.ts"))
    x = 0.5 * torch.randn(2, 1, 3 * generator.alignment + 5)
    with torch.no_grad():
        torch.testing.assert_close(scripted(x), generator.eval()(x), atol=1e-4, rtol=0)


def test_cli_export_writes_all_formats(tmp_path, capsys):
    write_run(tmp_path / "run")
    code = cli(["export", str(tmp_path / "run"), str(tmp_path / "model"), "--onnx", "--torchscript"])
    assert code == 0
    assert sorted(os.listdir(tmp_path / "model")) == [
        "config.json",
        "model.onnx",
        "model.safetensors",
        "model.ts",
    ]
    out = capsys.readouterr().out
    assert "generator_ema" in out and "step 1200" in out
    assert cli(["export", str(tmp_path / "run"), str(tmp_path / "other"), "--tag", "missing"]) == 1
    assert "no checkpoint for tag 'missing'" in capsys.readouterr().err


@pytest.mark.parametrize("with_ema", [True, False])
def test_a_run_folder_loads_like_its_export_with_the_ema_weights(tmp_path, with_ema):
    _, checkpoint = write_run(tmp_path / "run", with_ema=with_ema)
    export_checkpoint(tmp_path / "run", tmp_path / "model")
    exported, direct = load_generator(tmp_path / "model"), load_generator(tmp_path / "run")
    weights = "generator_ema" if with_ema else "generator"
    assert direct.provenance["weights"] == weights and direct.provenance["step"] == 1200
    x = 0.5 * torch.randn(2, 1, 4001)
    with torch.no_grad():
        torch.testing.assert_close(direct(x), exported(x), atol=1e-6, rtol=0)
        torch.testing.assert_close(direct(x), _reference(checkpoint, weights)(x), atol=1e-5, rtol=0)
    enhanced, rate = direct.enhance(x[0, 0], 8000)
    assert rate == 16000 and enhanced.shape == (8002,)


def test_an_ema_that_never_updated_is_not_used(tmp_path):
    path, checkpoint = write_run(tmp_path / "run")
    torch.save({**checkpoint, "ema_updates": 0}, path)
    assert load_generator(tmp_path / "run").provenance["weights"] == "generator"


def test_run_tags_checkpoint_files_and_wrong_paths(tmp_path):
    path, _ = write_run(tmp_path / "run", tag="latest")
    assert load_generator(path).provenance["checkpoint"] == str(path)  # the file
    assert load_generator(path.parent).provenance["checkpoint"] == str(path)  # its folder
    assert load_generator(tmp_path / "run", tag="latest").provenance["checkpoint"] == str(path)
    with pytest.raises(CheckpointError, match="no checkpoint for tag 'best'.*tags: latest"):
        load_generator(tmp_path / "run")
    (tmp_path / "other").mkdir()
    with pytest.raises(CheckpointError, match="neither an exported model .* nor a training run"):
        load_generator(tmp_path / "other")
    with pytest.raises(CheckpointError, match="does not exist; pass a folder made by gan-enhance export"):
        load_generator(tmp_path / "nowhere")
    export_checkpoint(path, tmp_path / "model")
    with pytest.raises(ConfigError, match="is an exported model; a tag"):
        load_generator(tmp_path / "model", tag="latest")


def test_cli_enhances_straight_from_a_run(tmp_path, capsys):
    write_run(tmp_path / "run")
    rng = np.random.default_rng(0)
    soundfile.write(tmp_path / "in.wav", (0.1 * rng.standard_normal(4000)).astype(np.float32), 8000)
    args = [str(tmp_path / "in.wav"), "-o", str(tmp_path / "out"), "--no-progress"]
    assert cli(["enhance", str(tmp_path / "run"), *args]) == 0
    assert "step 1200, generator_ema weights" in capsys.readouterr().err
    export_checkpoint(tmp_path / "run", tmp_path / "model")
    assert cli(["enhance", str(tmp_path / "model"), *args[:2], str(tmp_path / "out2"), "--no-progress"]) == 0
    direct, _ = soundfile.read(tmp_path / "out" / "in.wav")
    exported, _ = soundfile.read(tmp_path / "out2" / "in.wav")
    np.testing.assert_allclose(direct, exported, atol=1e-6)
    assert cli(["enhance", str(tmp_path / "run"), *args, "--tag", "latest"]) == 1
    assert "no checkpoint for tag 'latest'" in capsys.readouterr().err
    assert cli(["enhance", str(tmp_path / "model"), *args, "--tag", "latest"]) == 1
    assert "is an exported model" in capsys.readouterr().err


def test_exports_get_the_permissions_of_any_new_file(tmp_path):
    write_run(tmp_path / "run")
    previous = os.umask(0o022)
    try:
        export_checkpoint(tmp_path / "run", tmp_path / "model")
        os.umask(0o027)
        export_checkpoint(tmp_path / "run", tmp_path / "private")
    finally:
        os.umask(previous)
    modes = {
        name: os.stat(tmp_path / "model" / name).st_mode & 0o777 for name in os.listdir(tmp_path / "model")
    }
    assert modes == {"config.json": 0o644, "model.safetensors": 0o644}
    assert os.stat(tmp_path / "model").st_mode & 0o777 == 0o755
    assert os.stat(tmp_path / "private" / "model.safetensors").st_mode & 0o777 == 0o640
    assert os.stat(tmp_path / "private").st_mode & 0o777 == 0o750
