"""Every degradation changes the signal in the intended way, keeps length and alignment, and is seeded."""

from __future__ import annotations

import numpy as np
import pytest

from gan_enhance.audio import write_audio
from gan_enhance.data import (
    AddNoise,
    BandLimit,
    Choose,
    Clipping,
    Codec,
    Compose,
    Equalizer,
    Gain,
    PitchShift,
    Reverb,
    build_degradation,
    build_task,
    synthesize_speech,
)
from gan_enhance.data.noise_reverb import SHAPED_POINTS, SHAPED_SPREAD_DB, shaped_noise, synthetic_rir
from gan_enhance.data.presets import PRESETS
from gan_enhance.data.spectral import FILTER_TYPES
from gan_enhance.data.transforms import rms_db
from gan_enhance.errors import ConfigError

SR = 16000


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    return synthesize_speech(1.5, SR, seed=7)


def band_energy_db(wav: np.ndarray, low: float, high: float, sample_rate: int = SR) -> float:
    spectrum = np.abs(np.fft.rfft(wav.astype(np.float64))) ** 2
    frequencies = np.fft.rfftfreq(wav.size, 1 / sample_rate)
    return 10 * np.log10(spectrum[(frequencies >= low) & (frequencies < high)].sum() + 1e-30)


def snr_db(clean: np.ndarray, degraded: np.ndarray) -> float:
    return 10 * np.log10(
        np.mean(clean.astype(np.float64) ** 2) / np.mean((degraded - clean.astype(np.float64)) ** 2)
    )


def best_lag(reference: np.ndarray, other: np.ndarray, max_lag: int = 200) -> int:
    core = reference[max_lag:-max_lag]
    scores = [
        np.dot(core, other[max_lag + lag : other.size - max_lag + lag])
        for lag in range(-max_lag, max_lag + 1)
    ]
    return int(np.argmax(scores)) - max_lag


@pytest.mark.parametrize("snr", [-5.0, 0.0, 7.5, 20.0])
def test_synthetic_noise_is_added_at_the_asked_snr(speech, snr):
    noisy = AddNoise(snr_db=[snr, snr])(speech, SR, np.random.RandomState(1))
    assert noisy.shape == speech.shape
    assert abs(snr_db(speech, noisy) - snr) < 0.5


def test_noise_from_folders_at_the_asked_snr_and_rate(tmp_path, speech):
    # A 22.05 kHz recording shorter than the item: it is resampled and looped.
    noise = np.random.RandomState(0).standard_normal(11025).astype(np.float32) * 0.05
    write_audio(tmp_path / "noise" / "hum.flac", noise, 22050)
    degradation = AddNoise(snr_db=[3.0, 3.0], noise_dirs=[str(tmp_path / "noise")])
    params = degradation.instantiate(np.random.RandomState(2), SR)
    assert params["file"] == 0
    noisy = degradation.apply(speech, SR, params)
    assert abs(snr_db(speech, noisy) - 3.0) < 0.5
    with pytest.raises(ConfigError, match="no audio files"):
        AddNoise(noise_dirs=[str(tmp_path / "empty")])


@pytest.mark.parametrize("filter_type", FILTER_TYPES)
@pytest.mark.parametrize("cutoff", [2500.0, 6000.0])
def test_band_limit_removes_energy_above_the_cutoff(speech, filter_type, cutoff):
    degradation = BandLimit(cutoff_hz=[cutoff, cutoff], filter_types=[filter_type], orders=[4])
    limited = degradation(speech, SR, np.random.RandomState(0))
    assert limited.shape == speech.shape
    drop = band_energy_db(speech, cutoff, SR / 2) - band_energy_db(limited, cutoff, SR / 2)
    assert drop >= 40.0
    # The band well below the cutoff is kept (within the ripple/roll-off of gentle filters).
    assert abs(band_energy_db(speech, 100, cutoff / 4) - band_energy_db(limited, 100, cutoff / 4)) < 3.0
    assert best_lag(speech, limited) == 0  # zero phase: still aligned with the target


def test_band_limit_above_nyquist_leaves_the_item_alone(speech):
    degradation = BandLimit(cutoff_hz=[7900.0, 7900.0])
    assert np.array_equal(degradation(speech, SR, np.random.RandomState(0)), speech)


@pytest.mark.parametrize("soft", [False, True])
def test_clipping_caps_the_peak(speech, soft):
    degradation = Clipping(threshold_db=[-9.0, -9.0], soft_prob=float(soft))
    clipped = degradation(speech, SR, np.random.RandomState(0))
    threshold = np.max(np.abs(speech)) * 10 ** (-9 / 20)
    assert np.max(np.abs(clipped)) <= threshold * (1 + 1e-6)
    if not soft:
        assert np.sum(np.isclose(np.abs(clipped), threshold)) > 10
        quiet = np.abs(speech) < threshold
        assert np.allclose(clipped[quiet], speech[quiet])


@pytest.mark.parametrize("codec", ["mp3", "vorbis", "opus"])
@pytest.mark.parametrize("sample_rate", [16000, 22050, 48000])
def test_codec_keeps_length_and_alignment_and_changes_the_signal(codec, sample_rate):
    clean = synthesize_speech(1.0, sample_rate, seed=3)
    degradation = Codec(
        codecs=[codec], mp3_kbps=[16.0, 16.0], opus_kbps=[12.0, 12.0], vorbis_quality=[0.1, 0.1]
    )
    coded = degradation(clean, sample_rate, np.random.RandomState(0))
    assert coded.shape == clean.shape and coded.dtype == np.float32
    assert best_lag(clean, coded) == 0
    assert 3.0 < snr_db(clean, coded) < 40.0  # audibly degraded, still the same signal


def test_codec_bitrate_changes_the_damage():
    clean = synthesize_speech(1.0, SR, seed=4)
    low = Codec(codecs=["mp3"], mp3_kbps=[8.0, 8.0])(clean, SR, np.random.RandomState(0))
    high = Codec(codecs=["mp3"], mp3_kbps=[64.0, 64.0])(clean, SR, np.random.RandomState(0))
    assert snr_db(clean, high) > snr_db(clean, low) + 3.0


@pytest.mark.slow
def test_pitch_shift_round_trip_keeps_length_level_and_full_band():
    clean = synthesize_speech(1.0, SR, seed=5)
    top = (0.35 * SR, 0.5 * SR)
    shifted = PitchShift(semitones=[5.0, 5.0])(clean, SR, np.random.RandomState(0))
    assert shifted.shape == clean.shape
    assert snr_db(clean, shifted) < 10.0  # phase-vocoder smearing is there
    assert abs(10 * np.log10(np.mean(shifted**2) / np.mean(clean**2))) < 0.1
    # Working at twice the rate keeps the top of the band; at the item's rate it is lost.
    without = PitchShift(semitones=[5.0, 5.0], oversample=1)(clean, SR, np.random.RandomState(0))
    kept = band_energy_db(shifted, *top) - band_energy_db(clean, *top)
    lost = band_energy_db(without, *top) - band_energy_db(clean, *top)
    assert kept > -6.0 and lost < kept - 6.0


def test_equalizer_band_gain_matches_at_its_centre():
    time = np.arange(SR) / SR
    probe = (0.1 * np.sin(2 * np.pi * 1000 * time)).astype(np.float32)
    degradation = Equalizer(bands=[1, 1], gain_db=[9.0, 9.0], frequency_hz=[1000.0, 1000.0], q=[1.0, 1.0])
    boosted = degradation(probe, SR, np.random.RandomState(0))
    gain = 20 * np.log10(np.std(boosted[SR // 2 :]) / np.std(probe[SR // 2 :]))
    assert abs(gain - 9.0) < 0.2


def test_gain_scales_the_level(speech):
    louder = Gain(gain_db=[4.0, 4.0])(speech, SR, np.random.RandomState(0))
    assert 20 * np.log10(np.std(louder) / np.std(speech)) == pytest.approx(4.0, abs=1e-3)


def test_synthetic_reverb_has_the_asked_decay_and_keeps_alignment_and_level(speech):
    rir = synthetic_rir(
        np.random.RandomState(0), SR, rt60=0.6, direct_to_reverberant_db=0.0, high_frequency_damping=1.0
    )
    decay = np.cumsum(rir[::-1] ** 2)[::-1]
    decay_db = 10 * np.log10(decay / decay[0])
    t20 = 3 * (np.argmax(decay_db < -25) - np.argmax(decay_db < -5)) / SR  # T20 estimate of RT60
    assert t20 == pytest.approx(0.6, rel=0.15)
    wet = Reverb(rt60=[0.6, 0.6], drr_db=[0.0, 0.0])(speech, SR, np.random.RandomState(0))
    assert wet.shape == speech.shape
    assert best_lag(speech, wet) == 0
    assert np.std(wet) == pytest.approx(np.std(speech), rel=1e-3)
    assert snr_db(speech, wet) < 5.0


def test_reverb_from_folder_convolves_with_the_recorded_response(tmp_path):
    response = np.zeros(800, dtype=np.float32)
    response[100], response[300], response[700] = 1.0, 0.5, -0.25  # pre-delay, then two reflections
    write_audio(tmp_path / "rir" / "room.wav", response, SR, subtype="FLOAT")
    impulse = np.zeros(2000, dtype=np.float32)
    impulse[500] = 1.0
    wet = Reverb(rir_dirs=[str(tmp_path / "rir")])(impulse, SR, np.random.RandomState(0))
    expected = np.zeros(2000)
    expected[[500, 700, 1100]] = [1.0, 0.5, -0.25]  # the pre-delay is removed: aligned with the dry item
    assert np.allclose(wet / wet[500], expected, atol=1e-5)


def test_same_state_same_result_and_different_state_different_result(speech):
    chain = Compose([AddNoise(), Equalizer(), BandLimit(), Clipping(), Gain()])
    first = chain(speech, SR, np.random.RandomState(11))
    again = chain(speech, SR, np.random.RandomState(11))
    other = chain(speech, SR, np.random.RandomState(12))
    assert np.array_equal(first, again)
    assert not np.allclose(first, other)


def test_probabilities_gate_each_step(speech):
    never = Compose([AddNoise(prob=0.0), Gain(prob=0.0)])
    assert np.array_equal(never(speech, SR, np.random.RandomState(0)), speech)
    states = [
        Gain(gain_db=[6.0, 6.0], prob=0.3).instantiate(np.random.RandomState(s), SR) for s in range(400)
    ]
    assert 0.22 < np.mean([p["active"] for p in states]) < 0.38


def test_choose_applies_exactly_one_option(speech):
    choose = Choose([Gain(gain_db=[-6.0, -6.0]), Gain(gain_db=[6.0, 6.0])], weights=[1.0, 0.0])
    quieter = choose(speech, SR, np.random.RandomState(0))
    assert np.allclose(quieter, speech * 10 ** (-6 / 20), atol=1e-6)


def test_settings_are_checked():
    with pytest.raises(ConfigError, match="snr_db"):
        AddNoise(snr_db=[20.0, -5.0])
    with pytest.raises(ConfigError, match="filter_types"):
        BandLimit(filter_types=["chebyshev"])
    with pytest.raises(ConfigError, match="prob"):
        Gain(prob=1.5)
    with pytest.raises(ConfigError, match="no setting 'snr'"):
        build_degradation("AddNoise", snr=[0, 1])
    with pytest.raises(ConfigError, match="unknown degradation"):
        build_degradation("Telephone")
    assert build_degradation("Gain", gain_db=[1.0, 2.0]).build_config == {
        "name": "Gain",
        "kwargs": {"gain_db": [1.0, 2.0], "prob": 1.0},
    }


@pytest.mark.slow
def test_audiotools_transforms_work_as_seeded_steps(speech):
    from gan_enhance.data import Audiotools

    quantize = Audiotools("MuLawQuantization", '{"channels": ["const", 16]}')
    quantized = quantize(speech, SR, np.random.RandomState(0))
    assert quantized.shape == speech.shape and 0.0 < snr_db(speech, quantized) < 30.0
    assert len(np.unique(np.round(quantized, 5))) <= 16
    low_pass = Audiotools("LowPass", '{"cutoff": ["const", 2000]}')
    filtered = low_pass(speech, SR, np.random.RandomState(0))
    assert band_energy_db(speech, 3000, SR / 2) - band_energy_db(filtered, 3000, SR / 2) > 20.0
    chain = Compose([Audiotools("FrequencyNoise"), Gain()])
    assert np.array_equal(
        chain(speech, SR, np.random.RandomState(4)), chain(speech, SR, np.random.RandomState(4))
    )
    with pytest.raises(ConfigError, match="self-contained"):
        Audiotools("BackgroundNoise")
    with pytest.raises(ConfigError, match="JSON"):
        Audiotools("LowPass", "{cutoff")


def test_synthetic_share_beside_noise_folders(tmp_path, speech):
    # A low hum recording; synthetic_prob sends that share of the items to coloured noise instead.
    hum = (0.05 * np.sin(2 * np.pi * 60 * np.arange(SR) / SR)).astype(np.float32)
    write_audio(tmp_path / "noise" / "hum.wav", hum, SR)
    folders = [str(tmp_path / "noise")]
    states = [np.random.RandomState(seed) for seed in range(400)]
    mixed = AddNoise(noise_dirs=folders, synthetic_prob=0.25)
    share = np.mean([mixed.instantiate(state, SR)["file"] == -1 for state in states])
    assert 0.18 < share < 0.32
    # Default 0: every item uses a recording, and the draws (hence seeded pairs) are as before.
    plain = AddNoise(noise_dirs=folders)
    assert all(plain.instantiate(np.random.RandomState(seed), SR)["file"] == 0 for seed in range(50))
    first, second = np.random.RandomState(7), np.random.RandomState(7)
    plain.instantiate(first, SR)
    AddNoise(noise_dirs=folders, synthetic_prob=0.0).instantiate(second, SR)
    assert first.uniform() == second.uniform()
    # A synthetic item is broadband noise at the asked SNR, not the hum.
    params = {**mixed.instantiate(np.random.RandomState(0), SR), "file": -1, "color": "white", "snr_db": 5.0}
    noisy = mixed.apply(speech, SR, params)
    assert abs(snr_db(speech, noisy) - 5.0) < 0.5
    residual = np.abs(np.fft.rfft(noisy - speech)) ** 2
    assert residual[SR // 4 :].sum() > 0.3 * residual.sum()
    with pytest.raises(ConfigError, match="synthetic_prob"):
        AddNoise(synthetic_prob=1.5)


def test_shaped_noise_follows_its_drawn_spectrum(speech):
    # The envelope computed by hand from the same draws (tilt exponent, then the gains at 50 Hz..Nyquist):
    # every third-octave band of the noise sits at the envelope's power, relative to the 1 kHz band.
    length = 4 * SR
    noise = shaped_noise(np.random.RandomState(3), length, SR)
    draws = np.random.RandomState(3)
    exponent, gains_db = draws.uniform(-1.0, 2.0), draws.normal(0.0, SHAPED_SPREAD_DB, SHAPED_POINTS)
    anchors = np.log(np.geomspace(50.0, SR / 2, SHAPED_POINTS))

    def expected_db(low: float, high: float) -> float:
        hertz = np.linspace(low, high, 64)
        power = (hertz / SR) ** -exponent * 10 ** (np.interp(np.log(hertz), anchors, gains_db) / 10)
        return 10 * np.log10(power.mean() * (high - low))

    centres = 1000 * 2.0 ** (np.arange(-12, 9) / 3)  # 63 Hz - 6.3 kHz
    edges = [(centre * 2 ** (-1 / 6), centre * 2 ** (1 / 6)) for centre in centres]
    measured = np.array([band_energy_db(noise, low, high) for low, high in edges])
    predicted = np.array([expected_db(low, high) for low, high in edges])
    reference = int(np.argmin(np.abs(centres - 1000)))
    np.testing.assert_allclose(measured - measured[reference], predicted - predicted[reference], atol=1.5)
    assert noise.dtype == np.float32 and noise.std() == pytest.approx(1.0, abs=1e-3)
    assert np.array_equal(noise, shaped_noise(np.random.RandomState(3), length, SR))
    # Spectra differ from draw to draw: the low band against the high band varies by > 6 dB sd over 20 draws.
    tilts = [
        band_energy_db(shaped, 100, 300) - band_energy_db(shaped, 2000, 6000)
        for shaped in (shaped_noise(np.random.RandomState(seed), SR, SR) for seed in range(20))
    ]
    assert np.std(tilts) > 6.0
    # Through AddNoise, as one of the colours, at the asked SNR.
    params = {**AddNoise(colors=["shaped"]).instantiate(np.random.RandomState(0), SR), "snr_db": 5.0}
    assert abs(snr_db(speech, AddNoise(colors=["shaped"]).apply(speech, SR, params)) - 5.0) < 0.5
    with pytest.raises(ConfigError, match="AddNoise.colors: unknown \\['purple'\\]"):
        AddNoise(colors=["shaped", "purple"])


def test_denoising_pairs_keep_the_speech_level(speech):
    # A level change applied to the input but not to the target can only be undone by outputting one
    # fixed level: the level range comes from CleanSource instead, on both sides of the pair. With the
    # noise inaudible, every denoising input is the target at the target's level.
    task = build_task("denoise", settings={"AddNoise": {"snr_db": [80.0, 80.0], "synthetic_prob": 1.0}})
    for seed in range(32):
        degraded = task.degradation(speech, SR, np.random.RandomState(seed))
        assert rms_db(degraded) == pytest.approx(rms_db(speech), abs=0.01), seed
    # Nor does any other preset change the input's level on its own.
    assert not [name for name, preset in PRESETS.items() if "Gain" in [step for step, _ in preset["steps"]]]
