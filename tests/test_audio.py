"""Audio file I/O: formats, rates, channels, sample types, atomic writes, clear errors, resampling."""

from __future__ import annotations

import os

import numpy as np
import pytest
import soundfile
import torch

from gan_enhance.audio import AudioReader, audio_info, iter_blocks, read_audio, resample, write_audio
from gan_enhance.errors import AudioFileError


def tone(frequency: float, sample_rate: int, seconds: float, channels: int = 1) -> torch.Tensor:
    time = torch.arange(int(sample_rate * seconds)) / sample_rate
    wav = 0.5 * torch.sin(2 * torch.pi * frequency * time)
    return torch.stack([wav * (0.5 + 0.5 * c) for c in range(channels)]) if channels > 1 else wav[None]


@pytest.mark.parametrize(
    "extension, subtype, tolerance",
    [(".wav", "PCM_16", 1e-4), (".wav", "PCM_24", 1e-6), (".wav", "FLOAT", 1e-7), (".flac", "PCM_16", 1e-4)],
)
def test_lossless_round_trip_keeps_samples(tmp_path, extension, subtype, tolerance):
    wav = tone(440, 22050, 0.5, channels=2)
    path = tmp_path / f"a{extension}"
    write_audio(path, wav, 22050, subtype=subtype)
    back, sample_rate = read_audio(path)
    assert sample_rate == 22050 and back.dtype == torch.float32 and back.shape == wav.shape
    assert torch.max(torch.abs(back - wav)) < tolerance
    info = audio_info(path)
    assert (info.sample_rate, info.frames, info.channels, info.subtype) == (22050, wav.shape[1], 2, subtype)


@pytest.mark.parametrize("extension", [".ogg", ".mp3", ".opus"])
def test_lossy_formats_read_back_close_and_same_length(tmp_path, extension):
    wav = tone(440, 48000, 1.0)
    path = tmp_path / f"a{extension}"
    write_audio(path, wav, 48000)
    back, sample_rate = read_audio(path)
    assert sample_rate == 48000 and back.shape == wav.shape
    error = torch.mean((back - wav) ** 2) / torch.mean(wav**2)
    assert error < 0.05


def test_integer_file_is_scaled_to_unit_range(tmp_path):
    path = tmp_path / "int.wav"
    soundfile.write(path, np.array([0, 16384, -32768, 32767], dtype=np.int16), 8000, subtype="PCM_16")
    wav, _ = read_audio(path)
    assert torch.allclose(wav[0], torch.tensor([0.0, 0.5, -1.0, 32767 / 32768]))


def test_mono_offset_duration_and_resampling(tmp_path):
    wav = torch.arange(16000, dtype=torch.float32)[None].repeat(2, 1) / 16000
    wav[1] *= -1
    write_audio(tmp_path / "ramp.wav", wav, 16000, subtype="FLOAT")
    part, _ = read_audio(tmp_path / "ramp.wav", offset=0.25, duration=0.5)
    assert part.shape == (2, 8000) and part[0, 0] == pytest.approx(0.25)
    mono, _ = read_audio(tmp_path / "ramp.wav", mono=True)
    assert mono.shape == (1, 16000) and torch.allclose(mono, torch.zeros_like(mono))
    up, rate = read_audio(tmp_path / "ramp.wav", sample_rate=48000)
    assert rate == 48000 and up.shape == (2, 48000)


def test_resample_keeps_a_tone_and_removes_what_the_new_rate_cannot_hold():
    low = tone(1000, 16000, 1.0)
    up = resample(low, 16000, 48000)
    assert up.shape == (1, 48000)
    # The resampled tone equals the tone computed at the new rate (away from the edges).
    assert torch.max(torch.abs(up - tone(1000, 48000, 1.0))[:, 1000:-1000]) < 1e-2
    high = tone(12000, 48000, 1.0)  # above 8 kHz: cannot survive 16 kHz
    assert resample(high, 48000, 16000)[:, 200:-200].abs().max() < 1e-2
    assert resample(low, 16000, 16000) is low


def test_write_is_atomic_and_leaves_no_temporary_files(tmp_path, monkeypatch):
    path = tmp_path / "sub" / "out.wav"
    write_audio(path, tone(440, 16000, 0.1), 16000)
    original = path.read_bytes()

    def fail(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(soundfile, "write", fail)
    with pytest.raises(AudioFileError, match="out.wav"):
        write_audio(path, tone(880, 16000, 0.1), 16000)
    assert path.read_bytes() == original
    assert os.listdir(path.parent) == ["out.wav"]


def test_a_write_to_a_pipe_or_through_a_link_keeps_the_pipe_and_the_link(tmp_path):
    """``--args.save /dev/stdout`` and the like: renaming a finished temporary file over a pipe, a device
    or a link would replace it with a regular file (run as root: /dev/stdout itself)."""
    import stat
    import threading

    from gan_enhance.atomic import write_text

    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    received = []

    def read():
        with open(pipe, encoding="utf-8") as stream:
            received.append(stream.read())

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    write_text(pipe, "name: run\n")
    reader.join(10)
    assert stat.S_ISFIFO(os.stat(pipe).st_mode)
    assert received == ["name: run\n"]
    # a link to a file: the file gets the new content (atomically), the link stays a link
    target = tmp_path / "configs" / "run.yml"
    target.parent.mkdir()
    target.write_text("old")
    link = tmp_path / "run.yml"
    link.symlink_to(target)
    write_text(link, "new")
    assert link.is_symlink() and target.read_text() == "new"
    assert sorted(os.listdir(target.parent)) == ["run.yml"]


def test_write_accepts_1d_and_numpy_and_clips_integer_formats(tmp_path):
    write_audio(tmp_path / "a.wav", np.array([0.0, 2.0, -3.0], dtype=np.float32), 8000)
    back, _ = read_audio(tmp_path / "a.wav")
    assert back.shape == (1, 3) and back.max() <= 1.0 and back.min() >= -1.0 and back[0, 1] > 0.99
    with pytest.raises(AudioFileError, match="unknown audio extension"):
        write_audio(tmp_path / "a.txt", np.zeros(10), 8000)


def test_clear_errors_name_the_file(tmp_path):
    with pytest.raises(AudioFileError, match="missing.wav.*does not exist"):
        read_audio(tmp_path / "missing.wav")
    (tmp_path / "empty.wav").write_bytes(b"")
    with pytest.raises(AudioFileError, match="empty.wav.*empty"):
        read_audio(tmp_path / "empty.wav")
    (tmp_path / "text.wav").write_text("not audio at all")
    with pytest.raises(AudioFileError, match="text.wav.*not a readable audio file"):
        audio_info(tmp_path / "text.wav")
    with pytest.raises(AudioFileError, match="folder"):
        read_audio(tmp_path)


@pytest.mark.parametrize("extension", [".wav", ".flac", ".ogg", ".mp3"])
def test_truncated_files_are_reported(tmp_path, extension):
    path = tmp_path / f"whole{extension}"
    write_audio(path, torch.randn(1, 32000) * 0.1, 16000)
    data = path.read_bytes()
    cut = tmp_path / f"cut{extension}"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(AudioFileError, match=f"cut{extension}"):
        read_audio(cut)


def test_block_reader_covers_the_file_exactly(tmp_path):
    wav = torch.randn(2, 10000) * 0.1
    write_audio(tmp_path / "a.wav", wav, 8000, subtype="FLOAT")
    blocks = list(iter_blocks(tmp_path / "a.wav", 3000))
    assert [start for start, _ in blocks] == [0, 3000, 6000, 9000]
    assert torch.equal(torch.cat([b for _, b in blocks], dim=1), wav)
    overlapping = list(iter_blocks(tmp_path / "a.wav", 4000, hop_frames=3000))
    assert torch.equal(overlapping[1][1], wav[:, 3000:7000])
    with AudioReader(tmp_path / "a.wav") as reader:
        assert (reader.sample_rate, reader.frames, reader.channels) == (8000, 10000, 2)
        assert torch.equal(reader.read(9500, 1000), wav[:, 9500:])
