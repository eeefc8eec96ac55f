"""Synthetic speech-like signals, so that demos and tests need no downloaded data.

The signal has the structure enhancement models care about: voiced stretches made of harmonics of a
moving fundamental, shaped by moving formant resonances and a glottal spectral tilt; unvoiced noise
bursts (fricatives) with a high-pass colour; and pauses. It is not intelligible speech, but it has the
harmonic structure, formant motion, onsets and silences that noise, reverberation, band limits and
codecs damage.
"""

from __future__ import annotations

import os
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


def _gate(length: int, segments, kind: int, ramp: int) -> np.ndarray:
    """1 inside the segments of ``kind``, 0 elsewhere, with raised-cosine ramps at the edges."""
    gate = np.zeros(length)
    for segment_kind, start, stop in segments:
        if segment_kind == kind:
            gate[start:stop] = 1.0
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
    frames = np.arange(0, length, frame)
    phase = 2.0 * np.pi * np.cumsum(f0) / sample_rate
    nyquist_limit = min(settings.max_harmonic_hz, 0.45 * sample_rate)
    harmonics = int(min(settings.max_harmonics, nyquist_limit // settings.f0_hz[0]))
    voiced = np.zeros(length)
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
        voiced += np.interp(np.arange(length), frames, amplitude) * np.sin(
            k * phase + state.uniform(0, 2 * np.pi)
        )
    voiced /= np.max(np.abs(voiced)) + 1e-12
    aspiration = state.standard_normal(length) * 10.0 ** (settings.aspiration_level_db / 20.0)
    voiced = (voiced + aspiration) * _gate(length, segments, 0, ramp)

    # Unvoiced bursts: noise high-passed at a random corner (fricative colour).
    corner = min(state.uniform(2000.0, 5000.0), 0.4 * sample_rate)
    sos = scipy.signal.butter(4, corner, btype="highpass", output="sos", fs=sample_rate)
    hiss = scipy.signal.sosfilt(sos, state.standard_normal(length))
    hiss *= 10.0 ** (settings.unvoiced_level_db / 20.0) / (np.std(hiss) + 1e-12)
    unvoiced = hiss * _gate(length, segments, 1, ramp // 3)

    signal = voiced + unvoiced
    peak = np.max(np.abs(signal))
    if peak > 0:
        signal *= settings.peak / peak
    return signal.astype(np.float32)


def write_synthetic_corpus(
    folder: str,
    num_files: int,
    seconds: float,
    sample_rate: int,
    seed: int = 0,
    num_speakers: int = 4,
) -> list[str]:
    """Write ``num_files`` speech-like FLAC files under ``folder/speaker_<k>/`` and return their paths.

    Files are spread over ``num_speakers`` folders (as corpora are); each file has its own seed derived
    from ``seed``, so the corpus is reproducible.
    """
    from gan_enhance.audio import write_audio

    paths = []
    for index in range(num_files):
        path = os.path.join(folder, f"speaker_{index % num_speakers}", f"utterance_{index:05d}.flac")
        write_audio(path, synthesize_speech(seconds, sample_rate, seed=seed * 100003 + index), sample_rate)
        paths.append(path)
    return paths
