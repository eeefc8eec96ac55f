"""Lossy codecs in memory through soundfile (MP3, Ogg/Vorbis, Opus, mu-law/A-law): encode, decode, align.

Shared by the ``Codec`` degradation and by the compatibility patch of audiotools' ``apply_codec``.
"""

from __future__ import annotations

import io
from fractions import Fraction

import numpy as np
import scipy.signal
import soundfile

# Sample rates each encoder accepts (MPEG-1/2/2.5 layer III; Opus).
MP3_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)
OPUS_RATES = (8000, 12000, 16000, 24000, 48000)
# libsndfile maps its compression level linearly onto these bitrate ranges (kbps): MPEG-1 layer III for
# rates >= 32 kHz, MPEG-2 below; Opus over its whole range.
MP3_KBPS_RANGE = {"mpeg1": (32.0, 320.0), "mpeg2": (8.0, 160.0)}
OPUS_KBPS_RANGE = (6.0, 256.0)
# libsndfile rejects a compression level of exactly 1.0 for MP3.
MAX_COMPRESSION_LEVEL = 0.99
CODECS = ("mp3", "vorbis", "opus")
# soundfile (container, subtype) per codec name; the PCM companders take no compression level.
FORMATS = {
    "mp3": ("MP3", "MPEG_LAYER_III"),
    "vorbis": ("OGG", "VORBIS"),
    "opus": ("OGG", "OPUS"),
    "ulaw": ("WAV", "ULAW"),
    "alaw": ("WAV", "ALAW"),
}
# Largest codec delay searched beyond the decoded surplus (samples); Opus' internal resampling shifts a
# few samples.
ALIGN_MAX_LAG = 64


def resample_poly(wav: np.ndarray, orig_sr: int, new_sr: int) -> np.ndarray:
    if orig_sr == new_sr:
        return wav
    ratio = Fraction(new_sr, orig_sr)
    return scipy.signal.resample_poly(wav, ratio.numerator, ratio.denominator)


def fit_length(wav: np.ndarray, length: int) -> np.ndarray:
    return wav[:length] if wav.size >= length else np.pad(wav, (0, length - wav.size))


def align_to(reference: np.ndarray, decoded: np.ndarray, max_lag: int = ALIGN_MAX_LAG) -> np.ndarray:
    """``decoded`` shifted onto ``reference`` (delay found by cross-correlation) and cut to its length.

    Decoders that honour the gapless-playback header return the input's length with no delay; when an
    encoder adds delay and padding instead (MP3 at low rates), or resamples internally (Opus), the
    decoded stream is late by the surplus or by a few samples. Searched lags: ``-max_lag`` to
    ``surplus + max_lag``.
    """
    surplus = max(decoded.size - reference.size, 0)
    correlation = scipy.signal.correlate(decoded, reference, mode="full", method="fft")
    zero = reference.size - 1  # index of lag 0
    low, high = max(zero - max_lag, 0), min(zero + surplus + max_lag, correlation.size - 1)
    delay = int(np.argmax(correlation[low : high + 1])) + low - zero
    if delay >= 0:
        shifted = decoded[delay:]
    else:
        shifted = np.concatenate([np.zeros(-delay, dtype=decoded.dtype), decoded])
    return fit_length(shifted, reference.size)


def encode_decode(wav: np.ndarray, sample_rate: int, codec: str, compression_level: float) -> np.ndarray:
    """Encode ``wav`` (T,) with ``codec`` in memory and decode it back (same rate, same length)."""
    container, subtype = FORMATS[codec]
    buffer = io.BytesIO()
    extra = {"bitrate_mode": "CONSTANT"} if codec == "mp3" else {}
    if codec in CODECS:
        extra["compression_level"] = min(max(compression_level, 0.0), MAX_COMPRESSION_LEVEL)
    soundfile.write(
        buffer,
        np.clip(wav, -1.0, 1.0).astype(np.float32),
        sample_rate,
        format=container,
        subtype=subtype,
        **extra,
    )
    buffer.seek(0)
    decoded, _ = soundfile.read(buffer, dtype="float32")
    if decoded.ndim > 1:
        decoded = decoded[:, 0]
    return align_to(wav.astype(np.float32), decoded)


def codec_round_trip(
    wav: np.ndarray, sample_rate: int, codec: str, compression_level: float, encode_rate: int = 0
) -> np.ndarray:
    """``wav`` (T,) through ``codec`` at ``encode_rate`` (default: the nearest rate the encoder accepts)
    and back to ``sample_rate``, with the input's length and alignment."""
    if not encode_rate:
        accepted = OPUS_RATES if codec == "opus" else MP3_RATES if codec == "mp3" else (sample_rate,)
        encode_rate = (
            sample_rate
            if sample_rate in accepted
            else min((r for r in accepted if r >= sample_rate), default=accepted[-1])
        )
    coded = resample_poly(wav.astype(np.float64), sample_rate, encode_rate).astype(np.float32)
    coded = encode_decode(coded, encode_rate, codec, compression_level)
    return fit_length(resample_poly(coded.astype(np.float64), encode_rate, sample_rate), wav.size)
