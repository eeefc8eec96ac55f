"""Each compatibility patch works, and acts only where the library lacks the thing."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import soundfile
import torch

from gan_enhance import _compat

_compat.patch()

import torchaudio  # noqa: E402
from audiotools import AudioSignal  # noqa: E402
from audiotools.core import util  # noqa: E402

SR = 16000


def sine(freq: float, seconds: float = 1.0, sr: int = SR, amplitude: float = 0.5) -> torch.Tensor:
    t = torch.arange(int(seconds * sr)) / sr
    return amplitude * torch.sin(2 * torch.pi * freq * t)


def dominant_frequency(x: np.ndarray, sr: int) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spectrum) * sr / len(x))


def test_patch_is_idempotent_and_torchaudio_imports():
    first = _compat.patch()
    assert _compat.patch() == first
    assert torchaudio.functional.resample(sine(440.0)[None], SR, 8000).shape == (1, 8000)


def test_native_stand_in_only_when_native_library_fails():
    native = _compat.torchaudio_native_available()
    assert ("torchaudio-native-extension" in _compat.patch()) == (not native)


def test_info_matches_file(tmp_path):
    path = tmp_path / "a.wav"
    soundfile.write(path, np.zeros(12345, dtype=np.float32), 22050)
    info = util.info(path)
    assert (info.sample_rate, info.num_frames) == (22050, 12345)
    signal = AudioSignal.excerpt(str(path), duration=0.1)
    assert signal.signal_length == 2205


def test_loudness_matches_reference_meter():
    import pyloudnorm

    torch.manual_seed(0)
    x = 0.1 * torch.randn(1, 1, SR)
    ours = AudioSignal(x.clone(), SR).loudness().item()
    reference = pyloudnorm.Meter(SR).integrated_loudness(x[0, 0].double().numpy())
    assert ours == pytest.approx(reference, abs=0.05)


@pytest.mark.parametrize("preset", ["MP3", "Ogg", "Vorbis", "8-bit"])
def test_apply_codec_keeps_length_and_changes_signal(preset):
    x = sine(440.0)[None, None].repeat(2, 1, 1)
    y = AudioSignal(x.clone(), SR).apply_codec(preset).audio_data
    assert y.shape == x.shape
    error = (y - x).pow(2).mean() / x.pow(2).mean()
    assert 0 < error < 0.5  # lossy but still the same tone


def test_opus_at_a_rate_libopus_lacks():
    from gan_enhance.codecs import codec_round_trip

    x = sine(440.0, sr=44100).numpy()
    y = codec_round_trip(x, 44100, "opus", 0.5)
    assert y.shape == x.shape
    assert dominant_frequency(y, 44100) == pytest.approx(440.0, abs=3)


def test_pitch_shift_an_octave_doubles_frequency():
    x = sine(220.0)[None, None]
    y = AudioSignal(x.clone(), SR).pitch_shift(12).audio_data
    assert y.shape == x.shape
    assert dominant_frequency(y[0, 0].numpy(), SR) == pytest.approx(440.0, abs=4)


def test_time_stretch_changes_length():
    y = AudioSignal(sine(220.0)[None, None], SR).time_stretch(2.0)
    assert y.signal_length == pytest.approx(SR / 2, rel=0.02)


def test_audiotools_left_alone_where_the_library_has_the_thing(monkeypatch):
    """With torchaudio providing apply_codec/info/sox_effects, the audiotools methods stay untouched."""

    def original_codec(self):
        return "original"

    def original_info(path):
        return "original"

    monkeypatch.setattr(AudioSignal, "apply_codec", original_codec)
    monkeypatch.setattr(util, "info", original_info)
    monkeypatch.setattr(torchaudio.functional, "apply_codec", lambda *a, **k: None, raising=False)
    monkeypatch.setattr(torchaudio, "info", lambda *a, **k: None, raising=False)
    monkeypatch.setattr(_compat, "_applied", [])
    _compat._patch_audiotools()
    assert AudioSignal.apply_codec is original_codec
    assert util.info is original_info
    assert "audiotools-apply-codec" not in _compat._applied
    assert "audiotools-info" not in _compat._applied


def test_a_users_script_imports_torchaudio_and_audiotools_after_gan_enhance():
    """``import gan_enhance`` stays cheap (no torch, no numpy) and makes a following ``import torchaudio``
    or ``import audiotools`` work where torchaudio's native library cannot load (its CUDA wheel on CPU
    torch)."""
    script = (
        "import sys, gan_enhance\n"
        "assert 'torch' not in sys.modules and 'numpy' not in sys.modules\n"
        "import torchaudio, audiotools\n"
        "import torch\n"
        "wave = torch.randn(1, 1600)\n"
        "assert torchaudio.functional.resample(wave, 16000, 8000).shape == (1, 800)\n"
        "assert audiotools.AudioSignal(wave, 16000).duration == 0.1\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
