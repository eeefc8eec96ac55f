"""Chunked streaming inference: seamless chunks, exact lengths, any rate/channels, files and the CLI."""

from __future__ import annotations

import os

import numpy as np
import pytest
import soundfile
import torch
from test_bundle import tiny_generator
from torch import nn

from gan_enhance.bundle import save_bundle
from gan_enhance.cli import main as cli
from gan_enhance.enhance import Enhancer, resampled_length
from gan_enhance.errors import AudioFileError
from gan_enhance.models.generators import GENERATORS, Generator

RATE = 8000


class DilatedStack(Generator):
    """Stand-in backbone with a known receptive field: dilated convs (with biases) and a nearest upsampler.

    ``declared_radius`` lets a test under-report the context to show that chunking then breaks.
    """

    def __init__(self, ratio: int = 1, dilations: tuple = (1, 2, 4, 8), declared_radius: int = -1):
        super().__init__(RATE, RATE * ratio)
        self.convs = nn.ModuleList(
            nn.Conv1d(1 if i == 0 else 4, 4, 3, dilation=d, padding=d) for i, d in enumerate(dilations)
        )
        self.out = nn.Conv1d(4, ratio, 1)
        self.true_radius = sum(dilations)
        self.declared_radius = self.true_radius if declared_radius < 0 else declared_radius

    def receptive_radius(self) -> int:
        return self.declared_radius

    def generate(self, x: torch.Tensor) -> torch.Tensor:
        for conv in self.convs:
            x = torch.tanh(conv(x))
        y = self.out(x)  # (B, ratio, T): ratio output samples per input sample
        return y.transpose(1, 2).reshape(y.shape[0], 1, -1)


def whole(generator: nn.Module, wav: torch.Tensor) -> torch.Tensor:
    """Reference: the whole (C, T) signal in one forward pass, channels as the batch."""
    with torch.no_grad():
        return generator.eval()(wav[:, None])[:, 0]


@pytest.mark.parametrize("ratio", [1, 3])
def test_chunks_are_seamless_with_the_declared_context_and_not_without(ratio):
    torch.manual_seed(0)
    generator = DilatedStack(ratio)
    wav = torch.randn(1, 5 * RATE + 37)
    reference = whole(generator, wav)
    chunked, rate = Enhancer(generator, chunk_seconds=0.1, batch_size=3).enhance_waveform(wav, RATE)
    assert rate == RATE * ratio and chunked.shape == reference.shape == (1, wav.shape[-1] * ratio)
    torch.testing.assert_close(chunked, reference, atol=1e-6, rtol=0)

    short_sighted = DilatedStack(ratio, declared_radius=generator.true_radius // 2)
    short_sighted.load_state_dict(generator.state_dict())
    broken, _ = Enhancer(short_sighted, chunk_seconds=0.1, batch_size=3).enhance_waveform(wav, RATE)
    assert (broken - reference).abs().max() > 1e-3


@pytest.mark.slow
@pytest.mark.parametrize("name", GENERATORS.names())
def test_chunked_enhancement_of_30_seconds_equals_whole_signal_for_every_backbone(name):
    generator = tiny_generator(name, in_sample_rate=RATE, out_sample_rate=2 * RATE).eval()
    generator.remove_weight_norm()
    wav = 0.3 * torch.randn(1, 30 * RATE, generator=torch.Generator().manual_seed(1))
    reference = whole(generator, wav)
    # Chunks that are not a whole number of seconds, and a batch that splits the chunks unevenly.
    enhanced, rate = Enhancer(generator, chunk_seconds=1.3, batch_size=3).enhance_waveform(wav, RATE)
    assert rate == 2 * RATE and enhanced.shape == (1, 60 * RATE)
    torch.testing.assert_close(enhanced, reference, atol=1e-4, rtol=0)


def test_channels_are_enhanced_independently_and_lengths_follow_the_rates():
    generator = DilatedStack(ratio=2)
    enhancer = Enhancer(generator, chunk_seconds=0.25, batch_size=2)
    wav = torch.randn(3, 11025)  # 0.5 s at 22.05 kHz, three channels
    out, rate = enhancer.enhance_waveform(wav, 22050)
    assert rate == 16000 and out.shape == (3, resampled_length(11025, 22050, 16000)) == (3, 8000)
    for channel in range(3):
        alone, _ = enhancer.enhance_waveform(wav[channel], 22050)
        torch.testing.assert_close(out[channel], alone, atol=1e-6, rtol=0)
    back, rate = Enhancer(generator, chunk_seconds=0.25, keep_sample_rate=True).enhance_waveform(wav, 22050)
    assert rate == 22050 and back.shape == (3, 11025)
    odd, rate = enhancer.enhance_waveform(torch.randn(1, 1001), 44100)
    assert odd.shape == (1, resampled_length(1001, 44100, 16000)) == (1, 364)
    single, _ = enhancer.enhance_waveform(torch.randn(2, 1), RATE)
    assert single.shape == (2, 2)


def test_resampled_input_reaches_the_model_band_limited():
    """A 1 kHz tone at 44.1 kHz comes out of an identity model at 8 kHz as the same tone."""

    class Identity(Generator):
        def receptive_radius(self) -> int:
            return 0

        def generate(self, x):
            return x

    time = torch.arange(44100) / 44100
    tone = 0.5 * torch.sin(2 * torch.pi * 1000 * time)
    out, rate = Enhancer(Identity(RATE, RATE), chunk_seconds=0.1).enhance_waveform(tone, 44100)
    expected = 0.5 * torch.sin(2 * torch.pi * 1000 * torch.arange(RATE) / RATE)
    assert rate == RATE and out.shape == (RATE,)
    # Away from the edges (where the resampler's filter sees the signal start/stop) it is the tone.
    torch.testing.assert_close(out[400:-400], expected[400:-400], atol=2e-3, rtol=0)


def test_streaming_yields_output_before_the_input_is_exhausted():
    generator = DilatedStack()
    enhancer = Enhancer(generator, chunk_seconds=0.1, batch_size=1)
    consumed = []

    def blocks():
        for index in range(50):
            consumed.append(index)
            yield torch.randn(1, 400)

    stream = enhancer._pipeline(blocks(), 50 * 400, RATE, 1)
    first = next(stream)
    assert len(consumed) < 5  # memory is bounded by a few blocks, not by the file length
    assert first.shape[-1] + sum(block.shape[-1] for block in stream) == 50 * 400


def _write(path, wav: np.ndarray, rate: int, subtype: str = "FLOAT"):
    soundfile.write(path, wav.T, rate, subtype=subtype)


def test_files_are_enhanced_like_waveforms_and_written_atomically(tmp_path):
    generator = DilatedStack(ratio=2)
    enhancer = Enhancer(generator, chunk_seconds=0.2, batch_size=2)
    wav = (0.3 * np.random.default_rng(0).standard_normal((2, 9001))).astype(np.float32)
    _write(tmp_path / "in.wav", wav, 16000)
    enhancer.enhance_file(tmp_path / "in.wav", tmp_path / "out" / "in.wav")
    data, rate = soundfile.read(tmp_path / "out" / "in.wav", dtype="float32", always_2d=True)
    expected, expected_rate = enhancer.enhance_waveform(torch.from_numpy(wav), 16000)
    assert rate == expected_rate == 16000 and data.shape == (9001, 2)
    np.testing.assert_allclose(data.T, expected.clamp(-1, 1).numpy(), atol=1e-6)
    assert soundfile.info(tmp_path / "out" / "in.wav").subtype == "FLOAT"
    assert os.listdir(tmp_path / "out") == ["in.wav"]


def test_a_truncated_file_fails_without_leaving_an_output(tmp_path):
    _write(tmp_path / "cut.wav", np.zeros((1, 8000), np.float32), RATE, "PCM_16")
    data = (tmp_path / "cut.wav").read_bytes()
    (tmp_path / "cut.wav").write_bytes(data[: len(data) // 2])
    with pytest.raises(AudioFileError, match="truncated"):
        Enhancer(DilatedStack(), chunk_seconds=0.1).enhance_file(
            tmp_path / "cut.wav", tmp_path / "out" / "cut.wav"
        )
    assert os.listdir(tmp_path / "out") == []


def test_cli_enhances_files_and_folders_and_reports_each_bad_file(tmp_path, capsys):
    save_bundle(tiny_generator("unet1d", RATE, 2 * RATE), tmp_path / "model")
    rng = np.random.default_rng(0)
    (tmp_path / "set" / "sub").mkdir(parents=True)
    _write(tmp_path / "set" / "a.wav", 0.1 * rng.standard_normal((1, 4000)), 16000, "PCM_16")
    _write(tmp_path / "set" / "sub" / "b.flac", 0.1 * rng.standard_normal((2, 3000)), RATE, "PCM_24")
    (tmp_path / "set" / "sub" / "broken.wav").write_bytes(b"RIFF....not audio at all")
    _write(tmp_path / "single.wav", 0.1 * rng.standard_normal((1, 2205)), 44100)
    code = cli(
        ["enhance", str(tmp_path / "model"), str(tmp_path / "set"), str(tmp_path / "single.wav"),
         str(tmp_path / "missing.wav"), "--output", str(tmp_path / "out"), "--chunk-seconds", "0.2"]
    )  # fmt: skip
    lines = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in lines if ": note: " not in line]
    assert code == 1
    assert len(errors) == 3 and "2 of 5 files failed" in errors[-1]
    notes = [line for line in lines if ": note: " in line]  # an input above the model's rate, said once
    assert len(notes) == 1 and "single.wav' is at 44100 Hz" in notes[0]
    assert any("broken.wav" in line for line in errors) and any("missing.wav" in line for line in errors)
    assert soundfile.info(tmp_path / "out" / "a.wav").frames == 4000
    b = soundfile.info(tmp_path / "out" / "sub" / "b.flac")
    assert (b.frames, b.channels, b.samplerate, b.subtype) == (6000, 2, 16000, "PCM_24")
    assert soundfile.info(tmp_path / "out" / "single.wav").frames == 800
    assert not os.path.exists(tmp_path / "out" / "sub" / "broken.wav")

    code = cli(["enhance", str(tmp_path / "model"), str(tmp_path / "single.wav"), "--output",
                str(tmp_path / "kept"), "--keep-sample-rate", "--extension", "flac"])  # fmt: skip
    info = soundfile.info(tmp_path / "kept" / "single.flac")
    assert code == 0 and (info.samplerate, info.frames) == (44100, 2205)


@pytest.mark.gpu
def test_gpu_enhancement_matches_cpu():
    generator = tiny_generator("unet1d", RATE, 2 * RATE).eval()
    wav = 0.3 * torch.randn(2, 3 * RATE)
    on_cpu, _ = Enhancer(generator, chunk_seconds=0.7, batch_size=3).enhance_waveform(wav, RATE)
    on_gpu, _ = Enhancer(generator, chunk_seconds=0.7, batch_size=3, device="cuda").enhance_waveform(
        wav, RATE
    )
    torch.testing.assert_close(on_gpu, on_cpu, atol=1e-4, rtol=0)


def test_cli_never_overwrites_one_output_with_another_or_the_input(tmp_path, capsys):
    save_bundle(tiny_generator("unet1d", RATE, RATE), tmp_path / "model")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    for folder in ("a", "b"):
        _write(tmp_path / folder / "x.wav", np.zeros((1, 800), np.float32), RATE)
    model = str(tmp_path / "model")
    assert (
        cli(
            [
                "enhance",
                model,
                str(tmp_path / "a" / "x.wav"),
                str(tmp_path / "b" / "x.wav"),
                "-o",
                str(tmp_path / "out"),
            ]
        )
        == 1
    )
    assert "already written" in capsys.readouterr().err
    assert cli(["enhance", model, str(tmp_path / "a"), "-o", str(tmp_path / "a")]) == 1
    assert "overwrite the input" in capsys.readouterr().err
    assert soundfile.info(tmp_path / "a" / "x.wav").frames == 800
