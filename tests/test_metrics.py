"""Each metric against a value worked out by hand: identical signals, a known SNR, a known gain, a known
cutoff; and the no-reference plug-ins' loading paths (DNSMOS itself: test_dnsmos.py)."""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest
import torch

from gan_enhance.errors import ConfigError
from gan_enhance.evaluate import metrics, quality, spectral

SR = 16000


def speech_like(seconds: float = 3.0, seed: int = 0) -> np.ndarray:
    """Voiced 'syllables': a gliding harmonic complex under a syllable-rate envelope (PESQ needs speech)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    f0 = 120 + 30 * np.sin(2 * np.pi * 0.5 * t)
    phase = 2 * np.pi * np.cumsum(f0) / SR
    x = sum(np.sin(k * phase + rng.uniform(0, 2 * np.pi)) / k for k in range(1, 30))
    envelope = np.clip(np.sin(2 * np.pi * 2 * t), 0, None) ** 2
    return (0.3 * x * envelope / np.abs(x).max()).astype(np.float32)


def white(seconds: float = 2.0, seed: int = 0, level: float = 0.1) -> np.ndarray:
    return (level * np.random.default_rng(seed).standard_normal(int(seconds * SR))).astype(np.float32)


def noise_at_snr(signal: np.ndarray, snr_db: float, seed: int = 1) -> np.ndarray:
    """Zero-mean noise orthogonal to the zero-mean signal, scaled to exactly ``snr_db`` below it."""
    s = signal.astype(np.float64) - signal.mean()
    n = np.random.default_rng(seed).standard_normal(len(s))
    n -= n.mean()
    n -= s * np.dot(n, s) / np.dot(s, s)
    return n * np.sqrt(np.dot(s, s) / np.dot(n, n) / 10 ** (snr_db / 10))


def test_identical_signals_score_perfectly():
    x = speech_like()
    names = [name for name in metrics.DEFAULT_METRICS if name not in metrics.NO_REFERENCE_METRICS]
    scores = metrics.compute_metrics(x, x, SR, names, cutoff_hz=4000.0)
    assert scores["si_sdr"] > 80
    # 4.644 and 4.549 are the ceilings of the P.862.2 and P.862.1 mappings.
    assert scores["pesq_wb"] == pytest.approx(4.644, abs=1e-3)
    assert scores["pesq_nb"] == pytest.approx(4.549, abs=1e-3)
    assert scores["stoi"] == pytest.approx(1.0, abs=1e-6)
    assert scores["estoi"] == pytest.approx(1.0, abs=1e-6)
    for name in ("lsd", "lsd_low", "lsd_high", "mel_distance", "stft_distance", "clip_rate", "loudness_diff"):
        assert scores[name] == pytest.approx(0.0, abs=1e-6), name
    # The defaults also hold the no-reference DNSMOS columns (scored in test_dnsmos.py).
    assert set(metrics.NO_REFERENCE_METRICS) <= set(metrics.DEFAULT_METRICS)


def test_no_reference_scoring_refuses_intrusive_metrics():
    with pytest.raises(
        ConfigError, match="si_sdr need a clean reference; without one choose from dnsmos_sig"
    ):
        metrics.check_metric_names(["dnsmos_ovrl", "si_sdr"], reference=False)
    assert metrics.check_metric_names(["dnsmos_ovrl"], reference=False) == ["dnsmos_ovrl"]
    with pytest.raises(ConfigError, match="si_sdr need a clean reference"):
        metrics.compute_metrics(speech_like(0.5), None, SR, ["si_sdr"])


@pytest.mark.parametrize("snr_db", [0.0, 10.0, 25.0])
def test_si_sdr_equals_a_known_snr_and_ignores_scale(snr_db):
    s = speech_like()
    noisy = s + noise_at_snr(s, snr_db)
    assert metrics.si_sdr(noisy, s) == pytest.approx(snr_db, abs=1e-4)
    assert metrics.si_sdr(0.25 * noisy, s) == pytest.approx(snr_db, abs=1e-4)


def test_pesq_and_stoi_fall_with_noise():
    s = speech_like()
    clean = metrics.compute_metrics(s, s, SR, ["pesq_wb", "stoi"])
    noisy = metrics.compute_metrics(s + noise_at_snr(s, 0.0), s, SR, ["pesq_wb", "stoi"])
    assert noisy["pesq_wb"] < clean["pesq_wb"] - 1.0
    assert noisy["stoi"] < clean["stoi"] - 0.05


def test_pesq_resamples_and_refuses_wide_band_below_16k():
    from gan_enhance.audio import resample

    s = speech_like()
    s48 = resample(torch.from_numpy(s), SR, 48000).numpy()
    assert metrics.pesq_score(s48, s48, 48000, "wb") == pytest.approx(4.644, abs=1e-3)
    s8 = resample(torch.from_numpy(s), SR, 8000).numpy()
    assert math.isnan(metrics.pesq_score(s8, s8, 8000, "wb"))
    assert metrics.pesq_score(s8, s8, 8000, "nb") == pytest.approx(4.549, abs=1e-3)


def test_a_gain_of_two_gives_the_hand_computed_distances():
    # White noise keeps every bin far above the floors, so each log ratio is exactly the gain's.
    y = white()
    scores = metrics.compute_metrics(2 * y, y, SR, ["lsd", "mel_distance", "stft_distance", "loudness_diff"])
    assert scores["lsd"] == pytest.approx(math.log10(4), abs=1e-4)  # power ratio 4 in every bin
    assert scores["mel_distance"] == pytest.approx(7 * math.log10(2), abs=1e-4)  # 7 scales, summed
    assert scores["stft_distance"] == pytest.approx(1 + math.log(2), abs=1e-4)  # convergence 1 + ln 2
    assert scores["loudness_diff"] == pytest.approx(20 * math.log10(2), abs=1e-6)


def test_a_silent_output_has_a_loudness_difference_not_a_missing_value():
    """An untrained model that outputs silence must show in the loudness column, not leave it blank."""
    y = white()
    reference = metrics.integrated_loudness(y, SR)
    for silent in (np.zeros_like(y), 1e-6 * y):  # digital silence; -120 dB, under the absolute gate
        scores = metrics.compute_metrics(silent, y, SR, ["loudness_diff"])
        assert scores["loudness_diff"] == pytest.approx(-70.0 - reference, abs=1e-9)
    assert math.isnan(metrics.compute_metrics(y, np.zeros_like(y), SR, ["loudness_diff"])["loudness_diff"])


def brickwall(x: np.ndarray, cutoff_hz: float, gain_above: float = 0.0) -> np.ndarray:
    spectrum = np.fft.rfft(x)
    spectrum[np.fft.rfftfreq(len(x), 1 / SR) > cutoff_hz] *= gain_above
    return np.fft.irfft(spectrum, len(x)).astype(np.float32)


def test_cutoff_of_a_band_limited_input():
    y = white()
    assert spectral.estimate_cutoff(brickwall(y, 4000.0), SR) == pytest.approx(4000.0, abs=50.0)
    assert spectral.estimate_cutoff(brickwall(y, 6000.0), SR) == pytest.approx(6000.0, abs=50.0)
    assert spectral.estimate_cutoff(y, SR) == SR / 2


def test_lsd_splits_at_the_cutoff():
    # Above 4 kHz the estimate is 10x the reference in amplitude (100x in power): log10 ratio 2 there,
    # 0 below. Bins next to the edge see window leakage, hence the tolerances.
    y = white()
    estimate = brickwall(y, 4000.0, gain_above=10.0)
    scores = metrics.compute_metrics(estimate, y, SR, ["lsd_low", "lsd_high"], cutoff_hz=4000.0)
    assert scores["lsd_low"] < 0.15  # a few leaking bins under the edge, against 2.0 above it
    assert scores["lsd_high"] == pytest.approx(2.0, abs=0.05)
    no_cutoff = metrics.compute_metrics(estimate, y, SR, ["lsd_low", "lsd_high"], cutoff_hz=SR / 2)
    assert math.isnan(no_cutoff["lsd_low"]) and math.isnan(no_cutoff["lsd_high"])


def test_clipping_rate_counts_full_scale_samples():
    x = np.full(1000, 0.5, dtype=np.float32)
    x[:30] = 1.0
    x[30:50] = -1.0
    assert metrics.clipping_rate(x) == pytest.approx(5.0)


def test_multichannel_scores_are_channel_means_and_unknown_names_fail():
    s = speech_like()
    noisy = s + noise_at_snr(s, 10.0)
    stereo_est = np.stack([s, noisy])
    stereo_ref = np.stack([s, s])
    value = metrics.compute_metrics(stereo_est, stereo_ref, SR, ["si_sdr"])["si_sdr"]
    assert value == pytest.approx((metrics.si_sdr(s, s) + 10.0) / 2, abs=1e-3)
    with pytest.raises(ConfigError, match="pesq_xx"):
        metrics.compute_metrics(s, s, SR, ["pesq_xx"])


def test_quality_plugins_report_missing_files_and_runtimes(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="does not exist"):
        quality.build_quality_model(f"utmos:{tmp_path / 'absent.pt'}")
    with pytest.raises(ConfigError, match="unknown quality model 'nomos'"):
        quality.build_quality_model("nomos:/x")
    # DNSMOS is a built-in metric now: the old plug-in spec says so instead of asking for a model file.
    with pytest.raises(ConfigError, match="DNSMOS needs no model file.*dnsmos_ovrl"):
        quality.build_quality_model(f"dnsmos:{tmp_path / 'sig_bak_ovr.onnx'}")
    present = tmp_path / "utmos.onnx"
    present.write_bytes(b"not a model")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if it were not installed
    with pytest.raises(ConfigError, match="pip install onnxruntime"):
        quality.build_quality_model(f"utmos:{present}")


class ConstantMOS(torch.nn.Module):
    """Stands in for an exported UTMOS: 3 + 10 * mean |x| per waveform, shape (B,)."""

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        return 3.0 + 10.0 * wav.abs().mean(dim=-1)


@pytest.mark.parametrize("kind", [pytest.param("export", marks=pytest.mark.slow), "torchscript"])
def test_utmos_plugin_runs_a_local_model_file_at_16k(tmp_path, kind):
    if kind == "export":
        path = tmp_path / "utmos.pt2"
        time = torch.export.Dim("time", min=16, max=16000 * 600)
        program = torch.export.export(ConstantMOS(), (torch.zeros(1, 16000),), dynamic_shapes=({1: time},))
        torch.export.save(program, str(path))
    else:
        path = tmp_path / "utmos.pt"
        with pytest.warns(DeprecationWarning):  # torch 2.13 deprecates TorchScript; released UTMOS uses it
            torch.jit.script(ConstantMOS()).save(str(path))
    model = quality.build_quality_model(f"utmos:{path}")
    wav = torch.full((2, 48000), 0.05)  # stereo, 48 kHz: mixed to mono and resampled to 16 kHz first
    score = model.score(wav, 48000)
    assert set(score) == {"utmos"}
    assert score["utmos"] == pytest.approx(3.5, abs=1e-3)
    assert metrics.METRICS["utmos"].better == metrics.HIGHER


def test_a_plugin_module_registers_its_own_model(tmp_path, monkeypatch):
    (tmp_path / "my_loudness_mos.py").write_text(
        "from gan_enhance.evaluate.quality import QualityModel, register_quality_model\n"
        "@register_quality_model('meanmos')\n"
        "class MeanMOS(QualityModel):\n"
        "    sample_rate = 8000\n"
        "    outputs = {'meanmos': 'higher'}\n"
        "    def __init__(self, path, scale='1'):\n"
        "        self.scale = float(scale)\n"
        "    def predict(self, wav):\n"
        "        return {'meanmos': self.scale * float(abs(wav).mean())}\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    model = quality.build_quality_model("meanmos:unused,scale=2", ["my_loudness_mos"])
    assert model.score(torch.full((1, 16000), 0.25), 16000)["meanmos"] == pytest.approx(0.5, abs=1e-2)
    with pytest.raises(ConfigError, match="cannot import"):
        quality.build_quality_model("meanmos:x", ["no_such_module_here"])


def test_stoi_of_a_clip_too_short_to_score_is_undefined_not_zero():
    stoi_score = metrics.stoi_score
    rng = np.random.default_rng(0)
    short = rng.standard_normal(3000) * 0.1  # 0.19 s at 16 kHz: under pystoi's 30 frames
    assert math.isnan(stoi_score(short, short, 16000))
    long = rng.standard_normal(16000) * 0.1
    assert stoi_score(long, long, 16000) == pytest.approx(1.0, abs=1e-6)
