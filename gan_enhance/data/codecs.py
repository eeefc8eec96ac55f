"""The ``Codec`` degradation (random codec and bitrate; see :mod:`gan_enhance.codecs`) and the pitch-shift round trip."""

from __future__ import annotations

import numpy as np
import scipy.signal

from gan_enhance.codecs import (
    CODECS,
    MP3_KBPS_RANGE,
    MP3_RATES,
    OPUS_KBPS_RANGE,
    OPUS_RATES,
    codec_round_trip,
    fit_length,
)
from gan_enhance.data.transforms import DEGRADATIONS, Degradation, Params, check_range, log_uniform, uniform
from gan_enhance.errors import ConfigError


@DEGRADATIONS.register("Codec")
class Codec(Degradation):
    """Encode and decode with a lossy codec at a random bitrate, keeping length and alignment.

    Items whose rate an encoder does not accept are resampled to the nearest higher accepted rate (or the
    highest) and back. MP3 bitrates below 32 kbps need an MPEG-2 rate, so such items are encoded at
    24 kHz or lower, as real low-bitrate MP3 encoders do (the result is band-limited too).

    Parameters
    ----------
    codecs : list[str]
        Picked uniformly per item from mp3, vorbis, opus.
    mp3_kbps : list[float]
        [min, max] MP3 constant bitrate, drawn log-uniformly.
    vorbis_quality : list[float]
        [min, max] Vorbis quality in [0, 1] (0 lowest bitrate).
    opus_kbps : list[float]
        [min, max] Opus bitrate, drawn log-uniformly.
    prob : float
        Probability that an item gets this degradation.
    """

    def __init__(
        self,
        codecs: list[str] = list(CODECS),  # noqa: B006
        mp3_kbps: list[float] = [8.0, 64.0],  # noqa: B006
        vorbis_quality: list[float] = [0.0, 0.5],  # noqa: B006
        opus_kbps: list[float] = [6.0, 32.0],  # noqa: B006
        prob: float = 1.0,
    ):
        super().__init__(prob)
        unknown = sorted(set(codecs) - set(CODECS))
        if unknown or not codecs:
            raise ConfigError(f"Codec.codecs: unknown {unknown}; use some of {list(CODECS)}")
        self.codecs = list(codecs)
        self.mp3_kbps = check_range(
            "Codec.mp3_kbps", mp3_kbps, MP3_KBPS_RANGE["mpeg2"][0], MP3_KBPS_RANGE["mpeg1"][1]
        )
        self.vorbis_quality = check_range("Codec.vorbis_quality", vorbis_quality, 0.0, 1.0)
        self.opus_kbps = check_range("Codec.opus_kbps", opus_kbps, *OPUS_KBPS_RANGE)

    def sample(self, state: np.random.RandomState, sample_rate: int) -> Params:
        return {
            "codec": self.codecs[int(state.randint(len(self.codecs)))],
            "mp3_kbps": log_uniform(state, self.mp3_kbps),
            "vorbis_quality": uniform(state, self.vorbis_quality),
            "opus_kbps": log_uniform(state, self.opus_kbps),
        }

    @staticmethod
    def encoding_setup(codec: str, sample_rate: int, params: Params) -> tuple[int, float]:
        """The rate to encode at and libsndfile's compression level for the drawn bitrate."""
        if codec == "vorbis":
            return sample_rate, 1.0 - params["vorbis_quality"]
        if codec == "opus":
            rate = min((r for r in OPUS_RATES if r >= sample_rate), default=OPUS_RATES[-1])
            low, high = OPUS_KBPS_RANGE
            return rate, (high - params["opus_kbps"]) / (high - low)
        kbps = params["mp3_kbps"]
        allowed = [r for r in MP3_RATES if r <= sample_rate] or [MP3_RATES[0]]
        if kbps < MP3_KBPS_RANGE["mpeg1"][0]:
            allowed = [r for r in allowed if r < 32000] or [MP3_RATES[0]]
        rate = sample_rate if sample_rate in allowed else max(allowed)
        low, high = MP3_KBPS_RANGE["mpeg1" if rate >= 32000 else "mpeg2"]
        return rate, (high - kbps) / (high - low)

    def transform(self, wav: np.ndarray, sample_rate: int, params: Params) -> np.ndarray:
        codec = params["codec"]
        rate, level = self.encoding_setup(codec, sample_rate, params)
        return codec_round_trip(wav, sample_rate, codec, level, encode_rate=rate)


@DEGRADATIONS.register("PitchShift")
class PitchShift(Degradation):
    """Shift the pitch by N semitones and (by default) back again: the phase-vocoder artifacts stay.

    The shift runs at ``oversample`` times the item's rate: shifting up through resampling discards the
    top of the band, so at the item's own rate the round trip would also act as a low-pass filter, which
    is not the artifact to learn.

    Parameters
    ----------
    semitones : list[float]
        [min, max] shift; values within ``min_semitones`` of zero are pushed out to it.
    min_semitones : float
        Smallest shift magnitude (a near-zero shift leaves almost no artifact).
    round_trip : bool
        Shift back by the same amount (True) or keep the shifted pitch (False).
    oversample : int
        Work at this multiple of the item's rate.
    n_fft : int
        Phase-vocoder window at the working rate.
    prob : float
        Probability that an item gets this degradation.
    """

    def __init__(
        self,
        semitones: list[float] = [-5.0, 5.0],  # noqa: B006
        min_semitones: float = 0.5,
        round_trip: bool = True,
        oversample: int = 2,
        n_fft: int = 2048,
        prob: float = 1.0,
    ):
        super().__init__(prob)
        self.semitones = check_range("PitchShift.semitones", semitones)
        self.min_semitones = float(min_semitones)
        self.round_trip = round_trip
        if oversample < 1:
            raise ConfigError(f"PitchShift.oversample must be >= 1, got {oversample}")
        self.oversample = int(oversample)
        self.n_fft = int(n_fft)

    def sample(self, state: np.random.RandomState, sample_rate: int) -> Params:
        steps = uniform(state, self.semitones)
        if abs(steps) < self.min_semitones:
            steps = self.min_semitones if steps >= 0 else -self.min_semitones
        return {"semitones": steps}

    def transform(self, wav: np.ndarray, sample_rate: int, params: Params) -> np.ndarray:
        import librosa  # heavy import, only where the effect is used

        rate = sample_rate * self.oversample
        work = scipy.signal.resample_poly(wav.astype(np.float64), self.oversample, 1).astype(np.float32)
        shifts = [params["semitones"], -params["semitones"]] if self.round_trip else [params["semitones"]]
        for steps in shifts:
            work = librosa.effects.pitch_shift(
                work, sr=rate, n_steps=steps, n_fft=self.n_fft, res_type="soxr_hq"
            )
        back = fit_length(scipy.signal.resample_poly(work.astype(np.float64), 1, self.oversample), wav.size)
        # The phase vocoder loses a few dB where it smears phases; the artifact to learn is the smearing,
        # not a level change, so the item's level is restored.
        power = np.mean(back**2)
        return back * np.sqrt(np.mean(np.square(wav, dtype=np.float64)) / power) if power > 0 else back
