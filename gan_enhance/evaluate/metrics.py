"""Metrics of an enhanced signal: intrusive ones against its clean reference, and DNSMOS without one.

Each metric has a :class:`MetricSpec` in :data:`METRICS` saying which way is better, so reports and
paired comparisons never have to guess. :func:`compute_metrics` scores one file (any channel count, the
per-channel values averaged) at the reference's sample rate; metrics with a fixed rate (PESQ, DNSMOS)
resample internally. The DNSMOS columns (:data:`NO_REFERENCE_METRICS`) need no reference, so they also
score recordings for which no clean file exists; :func:`mean_scores` averages any of them over a batch
(for validation during training).

Metrics that cannot be computed for a file (PESQ finds no speech, a signal too short for a loudness
block, a cutoff at Nyquist) give NaN for that file; reports count them and comparisons skip them.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from gan_enhance.evaluate import spectral

HIGHER = "higher"
LOWER = "lower"
# A signed difference whose ideal is 0 (e.g. loudness): compared by its absolute value.
ZERO = "zero"

PESQ_RATES = {"wb": 16000, "nb": 8000}
CLIP_THRESHOLD = 0.999
SI_SDR_EPS = 1e-8


@dataclass(frozen=True)
class MetricSpec:
    """What a metric column means: which direction is better, its unit and a one-line description."""

    name: str
    better: str
    unit: str
    description: str


METRICS: dict[str, MetricSpec] = {}


def register_metric(name: str, better: str, unit: str = "", description: str = "") -> MetricSpec:
    """Declare a metric column (also used by no-reference quality plug-ins for their outputs)."""
    if better not in (HIGHER, LOWER, ZERO):
        raise ValueError(
            f"metric {name!r}: 'better' must be {HIGHER!r}, {LOWER!r} or {ZERO!r}, got {better!r}"
        )
    METRICS[name] = MetricSpec(name, better, unit, description)
    return METRICS[name]


register_metric("si_sdr", HIGHER, "dB", "scale-invariant signal-to-distortion ratio")
register_metric("pesq_wb", HIGHER, "MOS-LQO", "PESQ wide-band (ITU-T P.862.2) at 16 kHz")
register_metric("pesq_nb", HIGHER, "MOS-LQO", "PESQ narrow-band (ITU-T P.862) at 8 kHz")
register_metric("stoi", HIGHER, "", "short-time objective intelligibility")
register_metric("estoi", HIGHER, "", "extended STOI")
register_metric("lsd", LOWER, "", "log-spectral distance, whole band")
register_metric("lsd_low", LOWER, "", "log-spectral distance below the input's cutoff")
register_metric("lsd_high", LOWER, "", "log-spectral distance above the input's cutoff")
register_metric("mel_distance", LOWER, "", "multi-scale log-mel L1 (DAC's 7 scales, summed)")
register_metric("stft_distance", LOWER, "", "multi-resolution STFT distance (convergence + log-mag L1)")
register_metric("clip_rate", LOWER, "%", "percentage of samples at or beyond full scale")
register_metric("loudness_diff", ZERO, "LU", "integrated loudness (BS.1770) of estimate minus reference")
register_metric("dnsmos_sig", HIGHER, "MOS", "DNSMOS P.835 speech signal quality (no reference)")
register_metric("dnsmos_bak", HIGHER, "MOS", "DNSMOS P.835 background noise quality (no reference)")
register_metric("dnsmos_ovrl", HIGHER, "MOS", "DNSMOS P.835 overall quality (no reference)")
register_metric("dnsmos_p808", HIGHER, "MOS", "DNSMOS P.808 overall quality (no reference)")

# Metrics of the estimate alone: column -> key of gan_enhance.evaluate.dnsmos.dnsmos()'s result.
NO_REFERENCE_METRICS = {
    "dnsmos_sig": "sig",
    "dnsmos_bak": "bak",
    "dnsmos_ovrl": "ovrl",
    "dnsmos_p808": "p808",
}

# The metrics computed when none are named: everything that needs only the signals.
DEFAULT_METRICS = [
    "si_sdr",
    "pesq_wb",
    "pesq_nb",
    "stoi",
    "estoi",
    "lsd",
    "lsd_low",
    "lsd_high",
    "mel_distance",
    "stft_distance",
    "clip_rate",
    "loudness_diff",
    *NO_REFERENCE_METRICS,
]


def si_sdr(estimate: np.ndarray, reference: np.ndarray) -> float:
    """Scale-invariant SDR in dB (both signals made zero-mean, the reference optimally scaled).

    NaN when either signal is constant (silent, or a single sample): the scale-invariant ratio is then
    undefined, and a number such as 0 dB would pass for a real score in the averages.
    """
    est = np.asarray(estimate, dtype=np.float64)
    ref = np.asarray(reference, dtype=np.float64)
    est, ref = est - est.mean(), ref - ref.mean()
    if not np.any(est) or not np.any(ref):
        return math.nan
    scale = np.dot(est, ref) / (np.dot(ref, ref) + SI_SDR_EPS)
    target = scale * ref
    noise = est - target
    return float(10 * np.log10((np.dot(target, target) + SI_SDR_EPS) / (np.dot(noise, noise) + SI_SDR_EPS)))


def _resample(x: np.ndarray, orig_sr: int, new_sr: int) -> np.ndarray:
    from gan_enhance.audio import resample

    if orig_sr == new_sr:
        return np.asarray(x, dtype=np.float32)
    return resample(torch.as_tensor(np.asarray(x, dtype=np.float32)), orig_sr, new_sr).numpy()


def pesq_score(estimate: np.ndarray, reference: np.ndarray, sample_rate: int, mode: str = "wb") -> float:
    """PESQ, wide-band (``"wb"``, at 16 kHz) or narrow-band (``"nb"``, at 8 kHz).

    The signals are resampled to the mode's rate. Wide-band needs a reference of at least 16 kHz (NaN
    otherwise: up-sampling a narrow-band reference would score a band it never had). NaN when PESQ
    finds no utterance (silence, pure noise).
    """
    import pesq

    rate = PESQ_RATES[mode]
    if sample_rate < rate:
        return math.nan
    ref = _resample(reference, sample_rate, rate)
    est = _resample(estimate, sample_rate, rate)
    try:
        return float(pesq.pesq(rate, ref, est, mode))
    except (pesq.NoUtterancesError, pesq.BufferTooShortError):
        return math.nan


def stoi_score(
    estimate: np.ndarray, reference: np.ndarray, sample_rate: int, extended: bool = False
) -> float:
    """STOI (or ESTOI with ``extended``) through pystoi, which resamples to 10 kHz itself."""
    from pystoi import stoi

    with warnings.catch_warnings(record=True) as caught:
        # pystoi warns and returns 1e-5 when fewer than 30 frames (~0.4 s) of speech are left after it
        # drops silent frames: undefined, not a score of 0.
        warnings.simplefilter("always", RuntimeWarning)
        value = stoi(
            np.asarray(reference, np.float64), np.asarray(estimate, np.float64), sample_rate, extended
        )
    if any("Not enough STFT frames" in str(warning.message) for warning in caught):
        return math.nan
    return float(value)


# ITU-R BS.1770-4: 400 ms blocks quieter than this take no part in the integrated loudness.
ABSOLUTE_GATE_LUFS = -70.0


def clipping_rate(estimate: np.ndarray, threshold: float = CLIP_THRESHOLD) -> float:
    """Percentage of samples whose magnitude reaches ``threshold`` (full scale is 1.0)."""
    est = np.asarray(estimate)
    return float(100.0 * np.mean(np.abs(est) >= threshold))


def integrated_loudness(wav: np.ndarray, sample_rate: int, floor: bool = False) -> float:
    """ITU-R BS.1770-4 integrated loudness in LUFS (pyloudnorm); NaN for a signal under one 400 ms block.

    A signal entirely below the standard's absolute gate (silence) is NaN, or with ``floor`` the gate
    itself (``ABSOLUTE_GATE_LUFS``): its loudness is at most that.
    """
    import pyloudnorm

    wav = np.asarray(wav, dtype=np.float64)
    meter = pyloudnorm.Meter(sample_rate)
    if len(wav) < meter.block_size * sample_rate:
        return math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        value = meter.integrated_loudness(wav)
    if np.isfinite(value):
        return float(value)
    return ABSOLUTE_GATE_LUFS if floor else math.nan


def loudness_difference(estimate: np.ndarray, reference: np.ndarray, sample_rate: int) -> float:
    """Integrated loudness of the estimate minus that of the reference, in LU. A silent estimate counts as
    the absolute gate (-70 LUFS), so a model that outputs silence shows a large negative difference
    instead of a missing value; a silent reference gives NaN (nothing to compare with)."""
    return integrated_loudness(estimate, sample_rate, floor=True) - integrated_loudness(
        reference, sample_rate
    )


def _lsd_band(band: str) -> Callable[..., float]:
    def score(est, ref, sr, cutoff_hz):
        if band == "all":
            return spectral.log_spectral_distance(est, ref, sr)
        if not cutoff_hz or not math.isfinite(cutoff_hz) or cutoff_hz >= sr / 2:
            return math.nan
        if band == "low":
            return spectral.log_spectral_distance(est, ref, sr, high_hz=cutoff_hz)
        return spectral.log_spectral_distance(est, ref, sr, low_hz=cutoff_hz)

    return score


# name -> f(estimate (T,), reference (T,), sample_rate, cutoff_hz) -> float
_SCORERS: dict[str, Callable[..., float]] = {
    "si_sdr": lambda est, ref, sr, cut: si_sdr(est, ref),
    "pesq_wb": lambda est, ref, sr, cut: pesq_score(est, ref, sr, "wb"),
    "pesq_nb": lambda est, ref, sr, cut: pesq_score(est, ref, sr, "nb"),
    "stoi": lambda est, ref, sr, cut: stoi_score(est, ref, sr),
    "estoi": lambda est, ref, sr, cut: stoi_score(est, ref, sr, extended=True),
    "lsd": _lsd_band("all"),
    "lsd_low": _lsd_band("low"),
    "lsd_high": _lsd_band("high"),
    "mel_distance": lambda est, ref, sr, cut: spectral.mel_distance(est, ref, sr),
    "stft_distance": lambda est, ref, sr, cut: spectral.stft_distance(est, ref),
    "clip_rate": lambda est, ref, sr, cut: clipping_rate(est),
    "loudness_diff": lambda est, ref, sr, cut: loudness_difference(est, ref, sr),
}


def check_metric_names(names: list[str], reference: bool = True) -> list[str]:
    """Return ``names`` if every one is a known metric (a no-reference one when ``reference`` is false);
    raise ConfigError naming the others."""
    from gan_enhance.errors import ConfigError

    known = [*_SCORERS, *NO_REFERENCE_METRICS]
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ConfigError(f"unknown metric(s) {', '.join(unknown)}; choose from {', '.join(known)}")
    intrusive = [name for name in names if name in _SCORERS]
    if not reference and intrusive:
        raise ConfigError(
            f"metric(s) {', '.join(intrusive)} need a clean reference; without one choose from "
            f"{', '.join(NO_REFERENCE_METRICS)}"
        )
    return list(names)


def _defined_mean(values: list[float]) -> float:
    # A channel or item where the metric is undefined (NaN, e.g. a silent one) does not void the others.
    defined = [value for value in values if not math.isnan(value)]
    return float(np.mean(defined)) if defined else math.nan


def compute_metrics(
    estimate: np.ndarray | torch.Tensor,
    reference: np.ndarray | torch.Tensor | None,
    sample_rate: int,
    names: list[str] = DEFAULT_METRICS,
    cutoff_hz: float = math.nan,
) -> dict[str, float]:
    """Score an estimate against its reference, or on its own with the no-reference metrics.

    Parameters
    ----------
    estimate, reference : array or Tensor, (C, T) or (T,)
        Same rate and channel count; the longer one is cut to the shorter one's length for the intrusive
        metrics (the no-reference ones score the whole estimate). ``reference`` None: only
        :data:`NO_REFERENCE_METRICS` may be named.
    sample_rate : int
        Rate of both signals.
    names : list[str]
        Metric names (keys of ``METRICS``).
    cutoff_hz : float
        The degraded input's band limit, for ``lsd_low``/``lsd_high`` (NaN: those give NaN).

    Returns
    -------
    dict[str, float]
        One value per name, each the mean over the channels where it is defined (NaN if none).
    """
    check_metric_names(names, reference is not None)
    est = np.atleast_2d(np.asarray(estimate, dtype=np.float32))
    scores = {}
    if any(name in NO_REFERENCE_METRICS for name in names):
        from gan_enhance.evaluate.dnsmos import dnsmos_at

        per_channel = [dnsmos_at(channel, sample_rate) for channel in est]
        for name in names:
            if name in NO_REFERENCE_METRICS:
                scores[name] = _defined_mean([values[NO_REFERENCE_METRICS[name]] for values in per_channel])
    if reference is not None:
        ref = np.atleast_2d(np.asarray(reference, dtype=np.float32))
        if est.shape[0] != ref.shape[0]:
            raise ValueError(f"estimate has {est.shape[0]} channels but the reference has {ref.shape[0]}")
        length = min(est.shape[-1], ref.shape[-1])
        for name in names:
            if name in _SCORERS:
                scores[name] = _defined_mean(
                    [
                        _SCORERS[name](e, r, sample_rate, cutoff_hz)
                        for e, r in zip(est[:, :length], ref[:, :length])
                    ]
                )
    return {name: scores[name] for name in names}


def mean_scores(
    estimates: torch.Tensor, references: torch.Tensor | None, sample_rate: int, names: list[str]
) -> dict[str, float]:
    """Each metric's mean over a batch, items where it is undefined (NaN) left out.

    Parameters
    ----------
    estimates, references : Tensor, (B, C, T)
        A batch of outputs and their clean targets (``references`` None: no-reference metrics only),
        e.g. a validation batch ``(B, 1, T)``.
    sample_rate : int
        Rate of both.
    names : list[str]
        Metric names, e.g. ``["dnsmos_ovrl"]`` or ``["pesq_wb", "dnsmos_ovrl"]``.

    Returns
    -------
    dict[str, float]
        Name -> mean over the items (NaN when no item could be scored).
    """
    estimates = estimates.detach().float().cpu().numpy()
    references = None if references is None else references.detach().float().cpu().numpy()
    rows = [
        compute_metrics(estimate, None if references is None else references[i], sample_rate, names)
        for i, estimate in enumerate(estimates)
    ]
    return {name: _defined_mean([row[name] for row in rows]) for name in names}
