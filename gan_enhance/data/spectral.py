"""Band limitation, equalisation, gain and clipping."""

from __future__ import annotations

import functools
from fractions import Fraction

import numpy as np
import scipy.signal

from gan_enhance.data.transforms import (
    DEGRADATIONS,
    Degradation,
    Params,
    check_range,
    log_uniform,
    uniform,
)
from gan_enhance.errors import ConfigError

IIR_TYPES = ("butter", "cheby1", "cheby2", "ellip", "bessel")
FILTER_TYPES = (*IIR_TYPES, "fir", "resample")
# Rates used for down-then-up resampling are rounded to this step, so the up/down ratio stays a small
# fraction (a random rate like 7351 Hz against 16 kHz would make a polyphase filter of 16000 phases).
RESAMPLE_RATE_STEP = 100
# cheby2 below this order loses much of its passband when its stopband starts at the cutoff.
CHEBY2_MIN_ORDER = 4
# Search of the stopband ratio of gentle IIR prototypes: largest ratio searched, bisection steps, and
# the stopband checked on a log grid of STOPBAND_GRID points spanning STOPBAND_SPAN x the ratio.
MAX_STOPBAND_RATIO = 100.0
DESIGN_BISECTIONS = 24
STOPBAND_GRID = 128
STOPBAND_SPAN = 1000.0
# IIR designs are cached on this cutoff grid (Hz).
IIR_CUTOFF_STEP = 25


@DEGRADATIONS.register("BandLimit")
class BandLimit(Degradation):
    """Remove the content above a random cutoff, as a low sample rate or a cheap codec would.

    Every filter runs forwards and backwards (zero phase), so the degraded item stays aligned with its
    target; ``resample`` goes down to twice the cutoff and back up with a polyphase anti-aliasing filter.

    Parameters
    ----------
    cutoff_hz : list[float]
        [min, max] cutoff in Hz, drawn log-uniformly. A cutoff at or above ``max_cutoff_ratio`` x Nyquist
        leaves the item unchanged.
    filter_types : list[str]
        Picked uniformly: butter, cheby1, cheby2, ellip, bessel (IIR, order from ``orders``), fir (Kaiser
        window, stopband from the cutoff up), resample (down to 2 x cutoff and back).
    orders : list[int]
        IIR orders to pick from.
    ripple_db : float
        Passband ripple of cheby1 and ellip.
    stopband_db : float
        Stopband attenuation of cheby2, ellip, fir and resample (one pass).
    transition : float
        Width of the fir/resample transition band as a fraction of the cutoff.
    max_cutoff_ratio : float
        Cutoffs above this fraction of the Nyquist frequency leave the item unchanged.
    prob : float
        Probability that an item gets this degradation.
    """

    def __init__(
        self,
        cutoff_hz: list[float] = [2000.0, 8000.0],  # noqa: B006
        filter_types: list[str] = list(FILTER_TYPES),  # noqa: B006
        orders: list[int] = [2, 4, 6, 8],  # noqa: B006
        ripple_db: float = 1.0,
        stopband_db: float = 60.0,
        transition: float = 0.1,
        max_cutoff_ratio: float = 0.95,
        prob: float = 1.0,
    ):
        super().__init__(prob)
        self.cutoff_hz = check_range("BandLimit.cutoff_hz", cutoff_hz, low=1.0)
        unknown = sorted(set(filter_types) - set(FILTER_TYPES))
        if unknown or not filter_types:
            raise ConfigError(f"BandLimit.filter_types: unknown {unknown}; use some of {list(FILTER_TYPES)}")
        if not orders or min(orders) < 1:
            raise ConfigError(f"BandLimit.orders must be positive integers, got {orders}")
        self.filter_types = list(filter_types)
        self.orders = [int(order) for order in orders]
        self.ripple_db = ripple_db
        self.stopband_db = stopband_db
        self.transition = transition
        self.max_cutoff_ratio = max_cutoff_ratio

    def sample(self, state: np.random.RandomState, sample_rate: int) -> Params:
        return {
            "cutoff_hz": log_uniform(state, self.cutoff_hz),
            "filter_type": self.filter_types[int(state.randint(len(self.filter_types)))],
            "order": self.orders[int(state.randint(len(self.orders)))],
        }

    def transform(self, wav: np.ndarray, sample_rate: int, params: Params) -> np.ndarray:
        cutoff, kind = params["cutoff_hz"], params["filter_type"]
        if cutoff >= self.max_cutoff_ratio * sample_rate / 2:
            return wav
        if kind == "resample":
            return self._resample_round_trip(wav, sample_rate, cutoff)
        if kind == "fir":
            return self._fir(wav, sample_rate, cutoff)
        return self._iir(wav, sample_rate, cutoff, kind, params["order"])

    def _iir(self, wav: np.ndarray, sample_rate: int, cutoff: float, kind: str, order: int) -> np.ndarray:
        # The design is cached on a cutoff grid (rounded down, so the stopband still starts at or below
        # the drawn cutoff): the bisection costs tens of milliseconds, a cache hit nothing.
        grid = int(cutoff // IIR_CUTOFF_STEP * IIR_CUTOFF_STEP) or int(cutoff)
        sos = zero_phase_lowpass(kind, order, grid, sample_rate, self.ripple_db, self.stopband_db)
        return scipy.signal.sosfiltfilt(sos, wav.astype(np.float64))

    def _fir(self, wav: np.ndarray, sample_rate: int, cutoff: float) -> np.ndarray:
        width = self.transition * cutoff / (sample_rate / 2)
        taps, beta = scipy.signal.kaiserord(self.stopband_db, width)
        taps |= 1  # odd length: a whole-sample delay that 'same' convolution removes exactly
        kernel = scipy.signal.firwin(
            taps, cutoff * (1 - self.transition / 2), window=("kaiser", beta), fs=sample_rate
        )
        return scipy.signal.oaconvolve(wav.astype(np.float64), kernel, mode="same")

    def _resample_round_trip(self, wav: np.ndarray, sample_rate: int, cutoff: float) -> np.ndarray:
        """Down to a rate whose Nyquist frequency is at most the cutoff, then back up.

        scipy's default polyphase filter has a transition band of several hundred Hz around the low
        Nyquist frequency; our own Kaiser filter puts the whole transition below it, so nothing above
        the cutoff survives (or aliases back).
        """
        low_rate = max(int(2 * cutoff // RESAMPLE_RATE_STEP * RESAMPLE_RATE_STEP), RESAMPLE_RATE_STEP)
        ratio = Fraction(low_rate, sample_rate)
        up_rate = sample_rate * ratio.numerator  # the polyphase filter runs at this rate
        stop_edge = low_rate / 2
        pass_edge = stop_edge * (1 - self.transition)
        taps, beta = scipy.signal.kaiserord(self.stopband_db, (stop_edge - pass_edge) / (up_rate / 2))
        kernel = scipy.signal.firwin(
            taps | 1, (stop_edge + pass_edge) / 2, window=("kaiser", beta), fs=up_rate
        )
        low = scipy.signal.resample_poly(
            wav.astype(np.float64), ratio.numerator, ratio.denominator, window=kernel
        )
        back = scipy.signal.resample_poly(low, ratio.denominator, ratio.numerator, window=kernel)
        return _fit_length(back, wav.size)


def _iir_design(
    kind: str,
    order: int,
    frequency: float,
    sample_rate: int,
    ripple_db: float,
    stopband_db: float,
    analog: bool = False,
):
    fs = None if analog else sample_rate
    output = "zpk" if analog else "sos"
    if kind == "bessel":
        return scipy.signal.bessel(order, frequency, norm="mag", output=output, analog=analog, fs=fs)
    if kind == "cheby2":  # its design frequency is where the stopband begins
        return scipy.signal.cheby2(order, stopband_db, frequency, output=output, analog=analog, fs=fs)
    return scipy.signal.iirfilter(
        order,
        frequency,
        rp=ripple_db,
        rs=stopband_db,
        btype="lowpass",
        ftype=kind,
        output=output,
        analog=analog,
        fs=fs,
    )


@functools.lru_cache(maxsize=256)
def stopband_ratio(kind: str, order: int, ripple_db: float, stopband_db: float) -> float:
    """How far above its design frequency an analog prototype is ``stopband_db`` down when run twice.

    The digital filter is the bilinear transform of the analog one with the design frequency pre-warped,
    so the same ratio holds between pre-warped digital frequencies, for any cutoff and rate: one search
    per (kind, order) instead of one per cutoff.
    """
    if kind == "cheby2":
        return 1.0
    low, high = 1.0, MAX_STOPBAND_RATIO
    z, p, k = _iir_design(kind, order, 1.0, 0, ripple_db, stopband_db, analog=True)
    for _ in range(DESIGN_BISECTIONS):
        middle = np.sqrt(low * high)
        _, response = scipy.signal.freqs_zpk(
            z, p, k, middle * np.geomspace(1.0, STOPBAND_SPAN, STOPBAND_GRID)
        )
        # Forward and backward filtering squares the magnitude: 20*log10(|H|^2) = 40*log10(|H|).
        worst_db = 40.0 * np.log10(np.max(np.abs(response)) + 1e-30)
        low, high = (low, middle) if worst_db <= -stopband_db else (middle, high)
    return high


@functools.lru_cache(maxsize=4096)
def zero_phase_lowpass(
    kind: str, order: int, cutoff: float, sample_rate: int, ripple_db: float, stopband_db: float
) -> np.ndarray:
    """Second-order sections of an IIR low-pass that, run forwards and backwards, is ``stopband_db``
    down from ``cutoff`` upwards.

    Gentle designs (butter, bessel, low orders) would leave much of the band above their design
    frequency, so their design frequency is lowered until the two-pass response meets the stopband at the
    cutoff: the filter type then shapes the roll-off below the cutoff.
    """
    if kind == "cheby2":
        return _iir_design(kind, max(order, CHEBY2_MIN_ORDER), cutoff, sample_rate, ripple_db, stopband_db)
    warped = np.tan(np.pi * cutoff / sample_rate) / stopband_ratio(kind, order, ripple_db, stopband_db)
    design = float(np.arctan(warped) * sample_rate / np.pi)
    return _iir_design(kind, order, design, sample_rate, ripple_db, stopband_db)


def _fit_length(wav: np.ndarray, length: int) -> np.ndarray:
    if wav.size >= length:
        return wav[:length]
    return np.pad(wav, (0, length - wav.size))


def peaking_sos(frequency: float, gain_db: float, q: float, sample_rate: int) -> np.ndarray:
    """One peaking-EQ biquad (Audio EQ Cookbook, R. Bristow-Johnson) as a (1, 6) sos row."""
    amplitude = 10.0 ** (gain_db / 40.0)
    omega = 2 * np.pi * frequency / sample_rate
    alpha = np.sin(omega) / (2 * q)
    b = [1 + alpha * amplitude, -2 * np.cos(omega), 1 - alpha * amplitude]
    a = [1 + alpha / amplitude, -2 * np.cos(omega), 1 - alpha / amplitude]
    return np.asarray([[*(np.array(b) / a[0]), 1.0, a[1] / a[0], a[2] / a[0]]])


@DEGRADATIONS.register("Equalizer")
class Equalizer(Degradation):
    """A random microphone/room colouration: a cascade of peaking filters.

    Parameters
    ----------
    bands : list[int]
        [min, max] number of peaking filters.
    gain_db : list[float]
        [min, max] gain of each filter at its centre.
    frequency_hz : list[float]
        [min, max] centre frequencies, drawn log-uniformly (capped below Nyquist).
    q : list[float]
        [min, max] quality factor (bandwidth) of each filter, drawn log-uniformly.
    prob : float
        Probability that an item gets this degradation.
    """

    def __init__(
        self,
        bands: list[int] = [1, 6],  # noqa: B006
        gain_db: list[float] = [-12.0, 12.0],  # noqa: B006
        frequency_hz: list[float] = [60.0, 12000.0],  # noqa: B006
        q: list[float] = [0.5, 4.0],  # noqa: B006
        prob: float = 1.0,
    ):
        super().__init__(prob)
        low, high = check_range("Equalizer.bands", bands, low=1)
        self.bands = [int(low), int(high)]
        self.gain_db = check_range("Equalizer.gain_db", gain_db)
        self.frequency_hz = check_range("Equalizer.frequency_hz", frequency_hz, low=1.0)
        self.q = check_range("Equalizer.q", q, low=1e-3)

    def sample(self, state: np.random.RandomState, sample_rate: int) -> Params:
        count = int(state.randint(self.bands[0], self.bands[1] + 1))
        return {
            "frequency_hz": [log_uniform(state, self.frequency_hz) for _ in range(count)],
            "gain_db": [uniform(state, self.gain_db) for _ in range(count)],
            "q": [log_uniform(state, self.q) for _ in range(count)],
        }

    def transform(self, wav: np.ndarray, sample_rate: int, params: Params) -> np.ndarray:
        nyquist_limit = 0.45 * sample_rate
        rows = [
            peaking_sos(min(f, nyquist_limit), g, q, sample_rate)
            for f, g, q in zip(params["frequency_hz"], params["gain_db"], params["q"], strict=True)
        ]
        return scipy.signal.sosfilt(np.concatenate(rows), wav.astype(np.float64))


@DEGRADATIONS.register("Gain")
class Gain(Degradation):
    """Change the level by a gain drawn from ``gain_db`` (no clipping: that is ``Clipping``'s job).

    In no task preset: a level change of the input alone teaches a model to output one fixed level. For
    chains of your own whose targets are at a known level (``CleanSource.target_level_db`` fixed).

    Parameters
    ----------
    gain_db : list[float]
        [min, max] gain in dB.
    prob : float
        Probability that an item gets this degradation.
    """

    def __init__(self, gain_db: list[float] = [-20.0, 6.0], prob: float = 1.0):  # noqa: B006
        super().__init__(prob)
        self.gain_db = check_range("Gain.gain_db", gain_db)

    def sample(self, state: np.random.RandomState, sample_rate: int) -> Params:
        return {"gain_db": uniform(state, self.gain_db)}

    def transform(self, wav: np.ndarray, sample_rate: int, params: Params) -> np.ndarray:
        return wav * np.float32(10.0 ** (params["gain_db"] / 20.0))


@DEGRADATIONS.register("Clipping")
class Clipping(Degradation):
    """Clip the item at a threshold below its peak, hard or soft (tanh).

    Parameters
    ----------
    threshold_db : list[float]
        [min, max] clipping threshold in dB relative to the item's peak (negative: below the peak).
    soft_prob : float
        Probability of soft (tanh) instead of hard clipping.
    prob : float
        Probability that an item gets this degradation.
    """

    def __init__(self, threshold_db: list[float] = [-20.0, -1.0], soft_prob: float = 0.3, prob: float = 1.0):  # noqa: B006
        super().__init__(prob)
        self.threshold_db = check_range("Clipping.threshold_db", threshold_db, high=0.0)
        self.soft_prob = soft_prob

    def sample(self, state: np.random.RandomState, sample_rate: int) -> Params:
        return {
            "threshold_db": uniform(state, self.threshold_db),
            "soft": bool(state.uniform() < self.soft_prob),
        }

    def transform(self, wav: np.ndarray, sample_rate: int, params: Params) -> np.ndarray:
        peak = float(np.max(np.abs(wav))) if wav.size else 0.0
        if peak <= 0:
            return wav
        threshold = peak * 10.0 ** (params["threshold_db"] / 20.0)
        if params["soft"]:
            return threshold * np.tanh(wav / threshold)
        return np.clip(wav, -threshold, threshold)
