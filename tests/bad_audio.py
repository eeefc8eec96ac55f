"""A corpus of bad (and a few good) audio files, for testing that every tool handles them.

:func:`write_bad_corpus` writes one file per case into a folder and says, per case, what a tool that
accepts any audio (``enhance``, ``evaluate``, the datasets) must do with it:

- ``"ok"``: a correct result comes out (right length, rate and channel count, finite values);
- ``"error"``: exactly one clear error line naming the file, and no output for it.

A tool with its own minimum length (a dataset cutting 1 s segments, a metric needing one STFT frame) may
skip or reject a short "ok" file instead; ``frames`` and ``sample_rate`` are recorded so its test can say so.

The module depends only on numpy and soundfile, not on the tools it tests.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass

import numpy as np
import soundfile

OK, ERROR = "ok", "error"
# Length of the normal cases: short, so a corpus run stays fast even through a model.
SECONDS = 0.25
# A file name that shell quoting, path joining and encoding must all survive.
UNICODE_NAME = "voix été 声音 ünï.wav"


@dataclass(frozen=True)
class CorpusEntry:
    """One file of the corpus.

    Attributes
    ----------
    path : str
        The file.
    expected : str
        ``"ok"`` or ``"error"`` (see the module docstring).
    frames, sample_rate, channels : int
        What the file holds (0 for the ``"error"`` cases, which hold no usable audio).
    why : str
        The case, and why the expected outcome is the correct one.
    """

    path: str
    expected: str
    frames: int = 0
    sample_rate: int = 0
    channels: int = 0
    why: str = ""

    @property
    def name(self) -> str:
        return os.path.basename(self.path)


def _tone(
    frames: int, sample_rate: int, channels: int = 1, amplitude: float = 0.3, seed: int = 0
) -> np.ndarray:
    """``(T, C)`` float32: a 220 Hz tone plus a little noise, different per channel."""
    rng = np.random.default_rng(seed)
    t = np.arange(frames) / sample_rate
    columns = [
        amplitude * np.sin(2 * np.pi * 220.0 * (1 + 0.1 * c) * t) + 0.01 * rng.standard_normal(frames)
        for c in range(channels)
    ]
    return np.stack(columns, axis=1).astype(np.float32)


def _wav_bytes(data: np.ndarray, sample_rate: int, subtype: str) -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, data, sample_rate, subtype=subtype, format="WAV")
    return buffer.getvalue()


def write_bad_corpus(folder: str | os.PathLike, sample_rate: int = 16000) -> dict[str, CorpusEntry]:
    """Write every case into ``folder`` (created if missing).

    Parameters
    ----------
    folder : str or PathLike
    sample_rate : int
        Rate of the normal cases (the 8 kHz and 192 kHz cases keep their own).

    Returns
    -------
    dict[str, CorpusEntry]
        Case name -> entry, in a fixed order. The "ok" cases are ``good``, ``good_stereo`` (FLAC),
        ``one_sample``, ``eight_channels``, ``rate_8k``, ``rate_192k``, ``pcm24``, ``float``, ``clipped``,
        ``loud_float``, ``silent`` and ``unicode_name``; the "error" cases are ``empty``,
        ``zero_samples``, ``truncated_header``, ``truncated_data``, ``text``, ``nan`` and ``inf``.
    """
    folder = os.fspath(folder)
    os.makedirs(folder, exist_ok=True)
    frames = int(SECONDS * sample_rate)
    entries: dict[str, CorpusEntry] = {}

    def audio(case: str, name: str, data: np.ndarray, rate: int, subtype: str, why: str) -> None:
        path = os.path.join(folder, name)
        soundfile.write(path, data, rate, subtype=subtype)
        entries[case] = CorpusEntry(path, OK, data.shape[0], rate, data.shape[1], why)

    def broken(case: str, name: str, content: bytes, why: str) -> None:
        path = os.path.join(folder, name)
        with open(path, "wb") as handle:
            handle.write(content)
        entries[case] = CorpusEntry(path, ERROR, why=why)

    audio("good", "good.wav", _tone(frames, sample_rate), sample_rate, "PCM_16", "a normal mono file")
    audio(
        "good_stereo",
        "good_stereo.flac",
        _tone(frames, sample_rate, 2, seed=1),
        sample_rate,
        "PCM_16",
        "a normal stereo FLAC",
    )
    broken("empty", "empty.wav", b"", "0 bytes: nothing to decode")
    # A valid header with no samples. An error, not an empty output: an enhancer has nothing to enhance,
    # a metric nothing to score, and an empty input is almost always an upstream bug (a failed export or
    # copy) that an empty output would hide. This is also what reading it (read_audio) says.
    broken(
        "zero_samples",
        "zero_samples.wav",
        _wav_bytes(np.zeros((0, 1), np.float32), sample_rate, "PCM_16"),
        "a valid header with no samples",
    )
    whole = _wav_bytes(_tone(frames, sample_rate), sample_rate, "PCM_16")
    # Cut inside the 'fmt ' chunk: the header itself is incomplete.
    broken("truncated_header", "truncated_header.wav", whole[:30], "cut inside the header")
    broken("truncated_data", "truncated_data.wav", whole[: len(whole) // 2], "the header promises more data")
    broken("text", "text.wav", b"id,label\n1,speech\n2,noise\n" * 20, "a CSV file named .wav")
    poisoned = _tone(frames, sample_rate)
    poisoned[frames // 2 : frames // 2 + 10] = np.nan
    broken("nan", "nan.wav", _wav_bytes(poisoned, sample_rate, "FLOAT"), "float samples that are NaN")
    poisoned = _tone(frames, sample_rate)
    poisoned[frames // 3] = np.inf
    poisoned[frames // 3 + 1] = -np.inf
    broken("inf", "inf.wav", _wav_bytes(poisoned, sample_rate, "FLOAT"), "float samples that are +-Inf")
    audio(
        "one_sample",
        "one_sample.wav",
        np.full((1, 1), 0.5, np.float32),
        sample_rate,
        "PCM_16",
        "a single sample: output is ceil(rate ratio) samples",
    )
    audio(
        "eight_channels",
        "eight_channels.wav",
        _tone(frames, sample_rate, 8, seed=2),
        sample_rate,
        "PCM_16",
        "8 channels, each processed on its own",
    )
    audio("rate_8k", "rate_8k.wav", _tone(2000, 8000, seed=3), 8000, "PCM_16", "8 kHz (telephone band)")
    audio("rate_192k", "rate_192k.wav", _tone(48000, 192000, seed=4), 192000, "PCM_24", "192 kHz, 24-bit")
    audio("pcm24", "pcm24.wav", _tone(frames, sample_rate, seed=5), sample_rate, "PCM_24", "24-bit PCM")
    audio("float", "float.wav", _tone(frames, sample_rate, seed=6), sample_rate, "FLOAT", "32-bit float")
    loud = np.clip(30.0 * _tone(frames, sample_rate, seed=7), -1.0, 1.0)
    audio("clipped", "clipped.wav", loud, sample_rate, "PCM_16", "very loud: a tone clipped at full scale")
    audio(
        "loud_float",
        "loud_float.wav",
        8.0 * _tone(frames, sample_rate, seed=8),
        sample_rate,
        "FLOAT",
        "float samples far beyond full scale (peak ~2.5), legal in a float file",
    )
    audio(
        "silent",
        "silent.wav",
        np.zeros((frames, 1), np.float32),
        sample_rate,
        "PCM_16",
        "all-zero audio",
    )
    audio(
        "unicode_name",
        UNICODE_NAME,
        _tone(frames, sample_rate, seed=9),
        sample_rate,
        "PCM_16",
        "spaces and non-ASCII letters in the name",
    )
    return entries
