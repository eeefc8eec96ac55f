"""Synthetic speech-like signals, so that demos and tests need no downloaded data.

The signal has the structure enhancement models care about: voiced stretches made of harmonics of a
moving fundamental, shaped by moving formant resonances and a glottal spectral tilt; unvoiced noise
bursts (fricatives) with a high-pass colour; and pauses. It is not intelligible speech, but it has the
harmonic structure, formant motion, onsets and silences that noise, reverberation, band limits and
codecs damage.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass

import numpy as np
import scipy.signal

# (F1, F2, F3) in Hz of a few vowels (averages of adult speakers); trajectories move between them.
VOWEL_FORMANTS = np.array(
    [
        (730, 1090, 2440),  # a
        (530, 1840, 2480),  # e
        (270, 2290, 3010),  # i
        (570, 840, 2410),  # o
        (300, 870, 2240),  # u
        (660, 1720, 2410),  # ae
        (490, 1350, 1690),  # er
    ],
    dtype=np.float64,
)
FORMANT_BANDWIDTHS = np.array([80.0, 120.0, 180.0])


@dataclass
class SpeechLikeSettings:
    """Ranges of the generator (seconds and Hz)."""

    f0_hz: tuple[float, float] = (85.0, 250.0)
    f0_variation: float = 0.25  # relative swing of the pitch contour around the speaker's f0
    voiced_seconds: tuple[float, float] = (0.08, 0.35)
    unvoiced_seconds: tuple[float, float] = (0.03, 0.15)
    pause_seconds: tuple[float, float] = (0.06, 0.4)
    segment_probabilities: tuple[float, float, float] = (0.55, 0.2, 0.25)  # voiced, unvoiced, pause
    formant_step_seconds: float = 0.08
    max_harmonics: int = 160
    max_harmonic_hz: float = 12000.0
    glottal_tilt: float = 1.2  # harmonic amplitude falls as k ** -tilt
    ramp_seconds: float = 0.015
    syllable_level_range_db: float = 12.0
    syllable_shape: float = 0.4  # exponent of the sine arch of each segment's envelope (0: flat)
    unvoiced_level_db: float = -12.0
    aspiration_level_db: float = -30.0
    peak: float = 0.5


def _segments(state: np.random.RandomState, length: int, sample_rate: int, settings: SpeechLikeSettings):
    """(kind, start, stop) triples covering ``length`` samples; kind 0 voiced, 1 unvoiced, 2 pause."""
    ranges = (settings.voiced_seconds, settings.unvoiced_seconds, settings.pause_seconds)
    segments, position = [], 0
    kind = 2  # start with a short pause, as recordings do
    while position < length:
        seconds = state.uniform(*ranges[kind])
        stop = min(length, position + max(1, int(seconds * sample_rate)))
        segments.append((kind, position, stop))
        position = stop
        kind = int(state.choice(3, p=settings.segment_probabilities))
    return segments


def _gate(length: int, segments, kind: int, ramp: int, levels: np.ndarray, shape: float) -> np.ndarray:
    """Envelope of the segments of ``kind``: each a syllable-like arch ``sin(pi t / n) ** shape`` scaled
    by its entry of ``levels``, 0 elsewhere, smoothed by raised-cosine ramps."""
    gate = np.zeros(length)
    for number, (segment_kind, start, stop) in enumerate(segments):
        if segment_kind == kind:
            arch = np.sin(np.pi * (np.arange(stop - start) + 0.5) / (stop - start)) ** shape
            gate[start:stop] = levels[number] * arch
    if ramp > 1:
        window = np.hanning(2 * ramp + 1)
        gate = np.convolve(gate, window / window.sum(), mode="same")
    return gate


def _smooth_contour(length: int, sample_rate: int, step_seconds: float, values: np.ndarray) -> np.ndarray:
    """Interpolate control points (one every ``step_seconds``) to a per-sample contour."""
    step = max(1, int(step_seconds * sample_rate))
    points = np.arange(0, length + step, step)
    return np.interp(np.arange(length), points, values[: points.size])


def synthesize_speech(
    duration: float, sample_rate: int, seed: int = 0, settings: SpeechLikeSettings | None = None
) -> np.ndarray:
    """A speech-like signal.

    Parameters
    ----------
    duration : float
        Seconds.
    sample_rate : int
    seed : int
        Same seed, same signal.
    settings : SpeechLikeSettings, optional

    Returns
    -------
    ndarray (T,)
        float32, peak ``settings.peak``.
    """
    settings = settings or SpeechLikeSettings()
    state = np.random.RandomState(seed)
    length = max(1, int(round(duration * sample_rate)))
    segments = _segments(state, length, sample_rate, settings)
    ramp = int(settings.ramp_seconds * sample_rate)

    # Pitch: a speaker's base f0, a slow random walk around it and a falling declination.
    base_f0 = state.uniform(*settings.f0_hz)
    count = int(np.ceil(length / (0.05 * sample_rate))) + 2
    walk = np.cumsum(state.normal(0.0, 0.3, count))
    walk = np.tanh(walk / 3.0) * settings.f0_variation
    declination = np.linspace(0.1, -0.1, count)
    f0 = base_f0 * (1.0 + _smooth_contour(length, sample_rate, 0.05, walk + declination))

    # Formants: move between random vowels.
    vowels = VOWEL_FORMANTS[
        state.randint(
            len(VOWEL_FORMANTS), size=int(length / (settings.formant_step_seconds * sample_rate)) + 2
        )
    ]
    vowels = vowels * state.uniform(0.9, 1.15)  # vocal-tract length of this "speaker"
    formants = np.stack(
        [_smooth_contour(length, sample_rate, settings.formant_step_seconds, vowels[:, i]) for i in range(3)]
    )

    # Harmonic amplitudes are evaluated on a coarse frame grid (5 ms) and interpolated.
    frame = max(1, int(0.005 * sample_rate))
    frames = np.minimum(np.arange(0, length + frame, frame), length - 1)  # one past the end for interpolation
    samples = np.arange(length)
    cell, weight = samples // frame, (samples % frame) / frame  # linear interpolation between frames
    phase = 2.0 * np.pi * np.cumsum(f0) / sample_rate
    nyquist_limit = min(settings.max_harmonic_hz, 0.45 * sample_rate)
    harmonics = int(min(settings.max_harmonics, nyquist_limit // settings.f0_hz[0]))
    voiced = np.zeros(length)
    # sin(k * phase) for k = 1, 2, ... by the Chebyshev recurrence (two operations per sample and
    # harmonic instead of a sine); a per-utterance phase offset keeps the pulse shape from being fixed.
    offset = state.uniform(0, 2 * np.pi)
    previous, current = np.full(length, np.sin(offset)), np.sin(phase + offset)
    twice_cos = 2.0 * np.cos(phase)
    for k in range(1, harmonics + 1):
        frequency = k * f0[frames]
        if np.all(frequency >= nyquist_limit):
            break
        envelope = np.zeros(frames.size)
        for i in range(3):
            centre, bandwidth = formants[i, frames], FORMANT_BANDWIDTHS[i]
            envelope += 1.0 / np.sqrt(
                (1 - (frequency / centre) ** 2) ** 2 + (frequency * bandwidth / centre**2) ** 2
            )
        amplitude = envelope * k**-settings.glottal_tilt * (frequency < nyquist_limit)
        voiced += (amplitude[cell] * (1.0 - weight) + amplitude[cell + 1] * weight) * current
        previous, current = current, twice_cos * current - previous
    voiced /= np.max(np.abs(voiced)) + 1e-12
    aspiration = state.standard_normal(length) * 10.0 ** (settings.aspiration_level_db / 20.0)
    # Syllables differ in loudness (levels in dB below the loudest) and swell and fade.
    levels = 10.0 ** (-state.uniform(0.0, settings.syllable_level_range_db, len(segments)) / 20.0)
    voiced = (voiced + aspiration) * _gate(length, segments, 0, ramp, levels, settings.syllable_shape)

    # Unvoiced bursts: noise high-passed at a random corner (fricative colour).
    corner = min(state.uniform(2000.0, 5000.0), 0.4 * sample_rate)
    sos = scipy.signal.butter(4, corner, btype="highpass", output="sos", fs=sample_rate)
    hiss = scipy.signal.sosfilt(sos, state.standard_normal(length))
    hiss *= 10.0 ** (settings.unvoiced_level_db / 20.0) / (np.std(hiss) + 1e-12)
    unvoiced = hiss * _gate(length, segments, 1, ramp // 3, levels, settings.syllable_shape)

    signal = voiced + unvoiced
    peak = np.max(np.abs(signal))
    if peak > 0:
        signal *= settings.peak / peak
    return signal.astype(np.float32)


# Words for espeak-ng sentences: common English words covering most phonemes.
ESPEAK_WORDS = (
    "the a of and to in is was he for it with as his on be at by had not are but from or have an they which one "
    "you were her all she there would their we him been has when who will more no if out so said what up its "
    "about into than them can only other new some could time these two may then do first any my now such like "
    "our over man me even most made after also did many before must through back years where much your way well "
    "down should because each just those people how too little state good very make world still own see men work "
    "long get here between both life being under never day same another know while last might us great old year "
    "off come since against go came right used take three small voice music river garden window yellow thirty "
    "fresh shadow pleasure zebra quickly judge vision church thought breathe azure"
).split()
ESPEAK_VOICES = ("en-us", "en-gb", "en-gb-scotland", "en-029", "en-gb-x-rp")
ESPEAK_VARIANTS = ("", "+m1", "+m2", "+m3", "+m4", "+f1", "+f2", "+f3", "+f4")


def espeak_available() -> bool:
    """Whether the optional ``espeak-ng`` program is installed."""
    return shutil.which("espeak-ng") is not None


def espeak_sentence(seed: int, sample_rate: int, words: tuple[int, int] = (6, 14)) -> np.ndarray:
    """A random English sentence spoken by espeak-ng (random voice, speed and pitch), at ``sample_rate``.

    espeak-ng renders at 22.05 kHz, so its content stops near 11 kHz whatever the output rate.
    """
    from gan_enhance.audio import read_audio
    from gan_enhance.errors import DataError

    if not espeak_available():
        raise DataError("espeak-ng is not installed; use the built-in synthetic speech (engine 'synthetic')")
    state = np.random.RandomState(seed)
    text = " ".join(state.choice(ESPEAK_WORDS, size=state.randint(words[0], words[1] + 1)))
    voice = (
        ESPEAK_VOICES[state.randint(len(ESPEAK_VOICES))]
        + ESPEAK_VARIANTS[state.randint(len(ESPEAK_VARIANTS))]
    )
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "sentence.wav")
        command = [
            "espeak-ng",
            "-v",
            voice,
            "-s",
            str(state.randint(130, 200)),
            "-p",
            str(state.randint(25, 75)),
        ]
        result = subprocess.run([*command, "-w", path, text], capture_output=True, text=True, check=False)
        if result.returncode != 0 or not os.path.exists(path):
            raise DataError(f"espeak-ng failed ({result.returncode}): {result.stderr.strip()[:200]}")
        wav, _ = read_audio(path, sample_rate=sample_rate, mono=True)
    wav = wav[0].numpy()
    peak = np.max(np.abs(wav))
    return (wav * (SpeechLikeSettings.peak / peak) if peak > 0 else wav).astype(np.float32)


def write_synthetic_corpus(
    folder: str,
    num_files: int,
    seconds: float,
    sample_rate: int,
    seed: int = 0,
    num_speakers: int = 4,
    engine: str = "synthetic",
) -> list[str]:
    """Write ``num_files`` speech-like FLAC files under ``folder/speaker_<k>/`` and return their paths.

    Files are spread over ``num_speakers`` folders (as corpora are); each file has its own seed derived
    from ``seed``, so the corpus is reproducible.

    ``engine``: ``"synthetic"`` (:func:`synthesize_speech`, no dependency), ``"espeak"`` (espeak-ng
    sentences, which must be installed; ``seconds`` is ignored, sentences take their natural length) or
    ``"auto"`` (espeak-ng when installed, else synthetic).
    """
    if engine not in ("synthetic", "espeak", "auto"):
        raise ValueError(f"engine must be synthetic, espeak or auto, got {engine!r}")
    use_espeak = engine == "espeak" or (engine == "auto" and espeak_available())
    from gan_enhance.audio import write_audio

    paths = []
    for index in range(num_files):
        path = os.path.join(folder, f"speaker_{index % num_speakers}", f"utterance_{index:05d}.flac")
        file_seed = seed * 100003 + index
        if use_espeak:
            wav = espeak_sentence(file_seed, sample_rate)
        else:
            wav = synthesize_speech(seconds, sample_rate, seed=file_seed)
        write_audio(path, wav, sample_rate)
        paths.append(path)
    return paths
