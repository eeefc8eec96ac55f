"""Additive noise at a signal-to-noise ratio, and reverberation with real or synthetic room responses."""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable

import numpy as np
import scipy.signal

from gan_enhance.audio import read_audio, resample
from gan_enhance.data.files import find_audio_files
from gan_enhance.data.transforms import (
    DEGRADATIONS,
    Degradation,
    Params,
    check_range,
    log_uniform,
    uniform,
)
from gan_enhance.errors import AudioFileError, ConfigError

logger = logging.getLogger(__name__)

NOISE_COLORS = {"white": 0.0, "pink": 1.0, "brown": 2.0, "blue": -1.0}
# The colour "shaped" (:func:`shaped_noise`): a random tilt and a random envelope of this many points with
# gains of this spread.
SHAPED = "shaped"
SHAPED_POINTS = 8
SHAPED_SPREAD_DB = 8.0
# Impulse-response folders are small; two minutes of 48 kHz responses per worker holds typical sets whole.
RIR_CACHE_SAMPLES = 120 * 48000


class _DecodedCache:
    """Decoded, resampled files kept in memory (least recently used first out), bounded in samples.

    Noise and impulse-response folders are small next to speech corpora, and decoding + resampling the
    same file for every item was the main cost of these degradations.
    """

    def __init__(self, max_samples: int):
        self.max_samples = max_samples
        self._items: OrderedDict[tuple[str, int], np.ndarray] = OrderedDict()
        self._size = 0

    def get(self, path: str, sample_rate: int) -> np.ndarray:
        key = (path, sample_rate)
        if key in self._items:
            self._items.move_to_end(key)
            return self._items[key]
        wav, _ = read_audio(path)
        wav = resample(wav, _file_rate(path), sample_rate).numpy().astype(np.float32)
        self._items[key] = wav
        self._size += wav.size
        while self._size > self.max_samples and len(self._items) > 1:
            _, dropped = self._items.popitem(last=False)
            self._size -= dropped.size
        return wav


def _file_rate(path: str) -> int:
    from gan_enhance.audio import audio_info

    return audio_info(path).sample_rate


def _usable_files(folders: list[str], kind: str) -> list[str]:
    files = find_audio_files(folders)
    if folders and not files:
        raise ConfigError(f"no audio files found in the {kind} folders {folders}; check the paths")
    return files


def colored_noise(state: np.random.RandomState, length: int, exponent: float) -> np.ndarray:
    """Gaussian noise whose power spectrum falls as ``1 / f**exponent`` (0 white, 1 pink, 2 brown)."""
    return _gaussian_under(state, length, lambda frequencies: frequencies ** (-exponent / 2.0))


def shaped_noise(
    state: np.random.RandomState, length: int, sample_rate: int, spread_db: float = SHAPED_SPREAD_DB
) -> np.ndarray:
    """Gaussian noise under a random smooth spectrum: a tilt times a random envelope.

    The tilt is ``1 / f**e`` in power with ``e`` uniform in [-1, 2] (blue to brown). The envelope has
    gains of ``N(0, spread_db)`` dB at :data:`SHAPED_POINTS` frequencies log-spaced from 50 Hz to Nyquist,
    interpolated in dB over log frequency and held beyond the end points: broad hisses, rumbles and humps
    of any balance (no narrow tones). A few noise recordings cover few spectra; this covers the space
    between them.
    """
    exponent = state.uniform(-1.0, 2.0)
    anchors = np.log(np.geomspace(50.0, sample_rate / 2.0, SHAPED_POINTS))
    gains_db = state.normal(0.0, spread_db, SHAPED_POINTS)

    def amplitude(frequencies: np.ndarray) -> np.ndarray:
        hertz = frequencies * sample_rate
        envelope_db = np.interp(np.log(hertz), anchors, gains_db)
        return frequencies ** (-exponent / 2.0) * 10.0 ** (envelope_db / 20.0)

    return _gaussian_under(state, length, amplitude)


def _gaussian_under(
    state: np.random.RandomState, length: int, amplitude: Callable[[np.ndarray], np.ndarray]
) -> np.ndarray:
    """White Gaussian noise of ``length`` samples with its spectrum multiplied by ``amplitude(f)`` (``f`` in
    cycles per sample, 0 replaced by the lowest bin), scaled to unit standard deviation."""
    spectrum = np.fft.rfft(state.standard_normal(length))
    frequencies = np.fft.rfftfreq(length)
    frequencies[0] = frequencies[1] if length > 1 else 1.0
    noise = np.fft.irfft(spectrum * amplitude(frequencies), n=length)
    return (noise / (np.std(noise) + 1e-12)).astype(np.float32)


def _listing(paths: list[str], shown: int = 3) -> str:
    """The first ``shown`` of ``paths``, then how many more."""
    more = f" and {len(paths) - shown} more" if len(paths) > shown else ""
    return ", ".join(paths[:shown]) + more


@DEGRADATIONS.register("AddNoise")
class AddNoise(Degradation):
    """Add noise scaled to a signal-to-noise ratio drawn from ``snr_db``.

    Parameters
    ----------
    snr_db : list[float]
        [min, max] SNR in dB (power of the clean item over power of the added noise).
    noise_dirs : list[str]
        Folders (searched recursively) of noise recordings. Empty: synthetic coloured noise.
    colors : list[str]
        Synthetic noise colours to pick from (white, pink, brown, blue, or shaped: a random tilt and a
        random smooth spectral envelope, see :func:`shaped_noise`): for every item when no folders are
        given, else for a ``synthetic_prob`` share of them.
    synthetic_prob : float
        With folders given, the share of noisy items that get synthetic coloured noise instead of a
        recording: broadens a small noise collection (a few files cover few spectra).
    cache_seconds : float
        Decoded noise kept in memory per worker (seconds at the working rate).
    prob : float
        Probability of adding noise to an item.
    """

    def __init__(
        self,
        snr_db: list[float] = [-5.0, 20.0],  # noqa: B006
        noise_dirs: list[str] = [],  # noqa: B006
        colors: list[str] = ["white", "pink", "brown"],  # noqa: B006
        cache_seconds: float = 1800.0,
        prob: float = 1.0,
        synthetic_prob: float = 0.0,
    ):
        super().__init__(prob)
        if not 0.0 <= synthetic_prob <= 1.0:
            raise ConfigError(f"AddNoise.synthetic_prob: {synthetic_prob} is not a probability; use 0-1")
        self.synthetic_prob = synthetic_prob
        self.snr_db = check_range("AddNoise.snr_db", snr_db)
        self.noise_dirs = list(noise_dirs)
        self.files = _usable_files(self.noise_dirs, "noise")
        known = [*NOISE_COLORS, SHAPED]
        unknown = sorted(set(colors) - set(known))
        if unknown or not colors:
            raise ConfigError(f"AddNoise.colors: unknown {unknown}; use some of {known}")
        self.colors = list(colors)
        self.cache_seconds = cache_seconds
        self._cache: dict[int, _DecodedCache] = {}

    def sample(self, state: np.random.RandomState, sample_rate: int) -> Params:
        params = {
            "snr_db": uniform(state, self.snr_db),
            "file": int(state.randint(len(self.files))) if self.files else -1,
            "color": self.colors[int(state.randint(len(self.colors)))],
            "position": float(state.uniform()),
            "seed": int(state.randint(2**31 - 1)),
        }
        # Drawn only when asked for, so the random stream (and every seeded pair) is unchanged at 0.
        if self.files and self.synthetic_prob > 0 and state.uniform() < self.synthetic_prob:
            params["file"] = -1
        return params

    def describe(self) -> str:
        colors = ", ".join(self.colors)
        if not self.files:
            return f"noise: synthetic ({colors}; no folder given), {self.share()}"
        line = f"noise: {len(self.files)} files in {_listing(self.noise_dirs)}, {self.share()}"
        if self.synthetic_prob > 0:
            line += f"; {self.synthetic_prob:.0%} of those get synthetic noise ({colors})"
        return line

    def noise(self, length: int, sample_rate: int, params: Params) -> np.ndarray:
        """The noise for one item, ``(length,)``, before scaling."""
        state = np.random.RandomState(params["seed"])
        if params["file"] < 0:
            if params["color"] == SHAPED:
                return shaped_noise(state, length, sample_rate)
            return colored_noise(state, length, NOISE_COLORS[params["color"]])
        cache = self._cache.setdefault(sample_rate, _DecodedCache(int(self.cache_seconds * sample_rate)))
        recording = cache.get(self.files[params["file"]], sample_rate)
        channel = recording[state.randint(recording.shape[0])]
        if channel.size < length:  # loop short recordings
            channel = np.tile(channel, int(np.ceil(length / channel.size)))
        start = int(params["position"] * (channel.size - length))
        return channel[start : start + length]

    def transform(self, wav: np.ndarray, sample_rate: int, params: Params) -> np.ndarray:
        noise = self.noise(wav.size, sample_rate, params).astype(np.float64)
        signal_power = np.mean(np.square(wav, dtype=np.float64))
        noise_power = np.mean(np.square(noise))
        if signal_power <= 0 or noise_power <= 0:
            return wav
        scale = np.sqrt(signal_power / (noise_power * 10.0 ** (params["snr_db"] / 10.0)))
        return wav + scale * noise


def synthetic_rir(
    state: np.random.RandomState,
    sample_rate: int,
    rt60: float,
    direct_to_reverberant_db: float,
    high_frequency_damping: float,
) -> np.ndarray:
    """An impulse response: a direct-path impulse followed by exponentially decaying noise.

    The tail decays 60 dB in ``rt60`` seconds at low frequencies and faster at high ones (air and wall
    absorption), modelled by splitting the tail into two bands with different decay rates.
    """
    length = max(int(rt60 * sample_rate * 1.2), 16)
    time = np.arange(length) / sample_rate
    decay = np.exp(-6.9078 * time / rt60)  # ln(1000): 60 dB of amplitude decay at rt60
    fast_decay = np.exp(-6.9078 * time / (rt60 / high_frequency_damping))
    noise = state.standard_normal(length)
    crossover = min(4000.0, 0.45 * sample_rate) / (sample_rate / 2)
    sos = scipy.signal.butter(2, crossover, output="sos")
    low = scipy.signal.sosfilt(sos, noise)
    tail = low * decay + (noise - low) * fast_decay
    # The first few milliseconds are the gap before early reflections arrive.
    gap = int(state.uniform(0.002, 0.01) * sample_rate)
    tail[:gap] = 0.0
    rir = np.zeros(length)
    rir[0] = 1.0
    tail_energy = np.sum(tail**2)
    if tail_energy > 0:
        rir += tail * np.sqrt(10.0 ** (-direct_to_reverberant_db / 10.0) / tail_energy)
    return rir.astype(np.float32)


def prepare_rir(rir: np.ndarray, sample_rate: int, max_seconds: float) -> np.ndarray:
    """Start the response at its direct path (so the reverberant signal stays aligned with the dry
    target), cut it to ``max_seconds`` and normalise it to unit energy."""
    start = int(np.argmax(np.abs(rir)))
    rir = rir[start : start + int(max_seconds * sample_rate)].astype(np.float64)
    energy = np.sqrt(np.sum(rir**2))
    return (rir / energy).astype(np.float32) if energy > 0 else rir.astype(np.float32)


@DEGRADATIONS.register("Reverb")
class Reverb(Degradation):
    """Convolve with a room impulse response, keeping the item's length, alignment and level.

    Parameters
    ----------
    rir_dirs : list[str]
        Folders (recursive) of measured impulse responses; one channel of one file is drawn per item.
        Empty: synthetic responses drawn from the ranges below.
    rt60 : list[float]
        [min, max] reverberation time in seconds of synthetic responses.
    drr_db : list[float]
        [min, max] direct-to-reverberant energy ratio in dB of synthetic responses.
    hf_damping : list[float]
        [min, max] how many times faster the tail decays above 4 kHz than below (synthetic responses).
    max_seconds : float
        Longest response used (longer ones are cut).
    prob : float
        Probability of reverberating an item.
    """

    def __init__(
        self,
        rir_dirs: list[str] = [],  # noqa: B006
        rt60: list[float] = [0.2, 1.2],  # noqa: B006
        drr_db: list[float] = [-6.0, 12.0],  # noqa: B006
        hf_damping: list[float] = [1.0, 3.0],  # noqa: B006
        max_seconds: float = 2.0,
        prob: float = 1.0,
    ):
        super().__init__(prob)
        self.rir_dirs = list(rir_dirs)
        self.files = _usable_files(self.rir_dirs, "impulse-response")
        self.rt60 = check_range("Reverb.rt60", rt60, low=1e-3)
        self.drr_db = check_range("Reverb.drr_db", drr_db)
        self.hf_damping = check_range("Reverb.hf_damping", hf_damping, low=1.0)
        self.max_seconds = max_seconds
        self._cache = _DecodedCache(RIR_CACHE_SAMPLES)

    def sample(self, state: np.random.RandomState, sample_rate: int) -> Params:
        return {
            "file": int(state.randint(len(self.files))) if self.files else -1,
            "rt60": log_uniform(state, self.rt60),
            "drr_db": uniform(state, self.drr_db),
            "hf_damping": uniform(state, self.hf_damping),
            "seed": int(state.randint(2**31 - 1)),
        }

    def describe(self) -> str:
        if not self.files:
            low, high = self.rt60
            return f"impulse responses: synthetic (RT60 {low:g}-{high:g} s; no folder given), {self.share()}"
        return f"impulse responses: {len(self.files)} files in {_listing(self.rir_dirs)}, {self.share()}"

    def impulse_response(self, sample_rate: int, params: Params) -> np.ndarray:
        """The normalised response for one item, ``(L,)``, starting at its direct path."""
        state = np.random.RandomState(params["seed"])
        if params["file"] < 0:
            rir = synthetic_rir(state, sample_rate, params["rt60"], params["drr_db"], params["hf_damping"])
        else:
            path = self.files[params["file"]]
            try:
                recording = self._cache.get(path, sample_rate)
            except AudioFileError as error:
                logger.warning("skipping unreadable impulse response: %s", error)
                return np.ones(1, dtype=np.float32)
            rir = recording[state.randint(recording.shape[0])]
        return prepare_rir(rir, sample_rate, self.max_seconds)

    def transform(self, wav: np.ndarray, sample_rate: int, params: Params) -> np.ndarray:
        rir = self.impulse_response(sample_rate, params)
        wet = scipy.signal.oaconvolve(wav.astype(np.float64), rir.astype(np.float64))[: wav.size]
        # Keep the item's level: reverberation should change its character, not its loudness.
        wet_power = np.mean(wet**2)
        if wet_power > 0:
            wet *= np.sqrt(np.mean(np.square(wav, dtype=np.float64)) / wet_power)
        return wet
