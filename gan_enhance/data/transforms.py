"""The degradation interface: sample parameters from a seeded random state, then apply them.

This follows audiotools' transform design (``instantiate`` then ``transform``, composition with
probabilities) but works on one mono numpy item at a time, inside a DataLoader worker, with scipy/librosa
DSP: per item that is several times faster than building ``AudioSignal`` batches, and no torch op here
needs autograd.

A degradation is used in two steps so that the same seed always gives the same example::

    params = degradation.instantiate(state, sample_rate)   # all randomness happens here
    degraded = degradation.apply(wav, sample_rate, params)  # deterministic

``params`` is a plain dict (numbers, strings, small arrays), so a degraded example can be logged and
reproduced. ``degradation(wav, sample_rate, state)`` does both.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gan_enhance.errors import ConfigError
from gan_enhance.registry import Registry

DEGRADATIONS = Registry("degradation")

Params = dict[str, Any]


def check_range(name: str, values: list[float], low: float = -np.inf, high: float = np.inf) -> list[float]:
    """Validate a ``[min, max]`` setting (a single value means a fixed one) and return it as two floats."""
    values = [float(v) for v in values] if isinstance(values, (list, tuple)) else [float(values)]
    if len(values) == 1:
        values = values * 2
    if len(values) != 2 or values[0] > values[1]:
        raise ConfigError(f"{name} must be [min, max] with min <= max, got {values}")
    if values[0] < low or values[1] > high:
        raise ConfigError(f"{name} must lie within [{low}, {high}], got {values}")
    return values


def check_probability(name: str, value: float) -> float:
    if not 0.0 <= float(value) <= 1.0:
        raise ConfigError(f"{name} is a probability and must lie in [0, 1], got {value}")
    return float(value)


def uniform(state: np.random.RandomState, bounds: list[float]) -> float:
    return float(state.uniform(bounds[0], bounds[1]))


def log_uniform(state: np.random.RandomState, bounds: list[float]) -> float:
    return float(np.exp(state.uniform(np.log(bounds[0]), np.log(bounds[1]))))


def rms_db(wav: np.ndarray, floor_db: float = -120.0) -> float:
    """Root-mean-square level in dB full scale."""
    power = float(np.mean(np.square(wav, dtype=np.float64))) if wav.size else 0.0
    return max(10.0 * np.log10(power) if power > 0 else floor_db, floor_db)


class Degradation:
    """Base class: one randomly parameterised change of a mono signal.

    Parameters
    ----------
    prob : float
        Probability that the degradation acts on an item (sampled in ``instantiate``).

    Subclasses implement ``sample(state, sample_rate) -> params`` and
    ``transform(wav (T,), sample_rate, params) -> (T,)`` and keep the length of the signal.
    """

    def __init__(self, prob: float = 1.0):
        self.prob = check_probability(f"{type(self).__name__}.prob", prob)

    def instantiate(self, state: np.random.RandomState, sample_rate: int) -> Params:
        """Draw every random choice for one item. Always consumes the same random numbers for the
        ``prob`` draw, so whether one degradation fires does not shift the others' draws."""
        active = bool(state.uniform() < self.prob)
        params = self.sample(state, sample_rate)
        params["active"] = active
        return params

    def apply(self, wav: np.ndarray, sample_rate: int, params: Params) -> np.ndarray:
        """Apply drawn parameters to ``wav`` (T,) float32; returns (T,) float32."""
        if not params.get("active", True):
            return wav
        out = self.transform(np.asarray(wav, dtype=np.float32), sample_rate, params)
        return np.ascontiguousarray(out, dtype=np.float32)

    def __call__(self, wav: np.ndarray, sample_rate: int, state: np.random.RandomState) -> np.ndarray:
        return self.apply(wav, sample_rate, self.instantiate(state, sample_rate))

    def sample(self, state: np.random.RandomState, sample_rate: int) -> Params:
        raise NotImplementedError

    def transform(self, wav: np.ndarray, sample_rate: int, params: Params) -> np.ndarray:
        raise NotImplementedError

    def describe(self) -> str | None:
        """One line on what the step draws from (recordings, synthetic), for the run's data summary;
        None for steps that draw from no collection."""
        return None

    def share(self) -> str:
        """How many items the step acts on, in words (``"on 40% of items"``)."""
        return "on all items" if self.prob >= 1 else f"on {self.prob:.0%} of items"

    def __repr__(self) -> str:
        settings = getattr(self, "build_config", {}).get("kwargs", {"prob": self.prob})
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in settings.items())})"


class Compose(Degradation):
    """Apply degradations in order, each with its own probability (``prob`` gates the whole chain)."""

    def __init__(self, degradations: list[Degradation], prob: float = 1.0):
        super().__init__(prob)
        self.degradations = list(degradations)

    def sample(self, state: np.random.RandomState, sample_rate: int) -> Params:
        return {"steps": [d.instantiate(state, sample_rate) for d in self.degradations]}

    def transform(self, wav: np.ndarray, sample_rate: int, params: Params) -> np.ndarray:
        for degradation, step in zip(self.degradations, params["steps"], strict=True):
            wav = degradation.apply(wav, sample_rate, step)
        return wav

    def __repr__(self) -> str:
        inner = ", ".join(repr(d) for d in self.degradations)
        return f"Compose([{inner}], prob={self.prob})"


class Choose(Degradation):
    """Apply one of several degradations, picked with ``weights`` (uniform when empty)."""

    def __init__(self, degradations: list[Degradation], weights: list[float] = (), prob: float = 1.0):
        super().__init__(prob)
        self.degradations = list(degradations)
        if not self.degradations:
            raise ConfigError("Choose needs at least one degradation")
        weights = np.asarray(list(weights) or [1.0] * len(self.degradations), dtype=np.float64)
        if len(weights) != len(self.degradations) or np.any(weights < 0) or weights.sum() <= 0:
            raise ConfigError(f"Choose weights must be {len(self.degradations)} non-negative numbers")
        self.weights = weights / weights.sum()

    def sample(self, state: np.random.RandomState, sample_rate: int) -> Params:
        choice = int(state.choice(len(self.degradations), p=self.weights))
        # Every option draws its parameters so the random stream does not depend on the choice.
        steps = [d.instantiate(state, sample_rate) for d in self.degradations]
        return {"choice": choice, "step": steps[choice]}

    def transform(self, wav: np.ndarray, sample_rate: int, params: Params) -> np.ndarray:
        return self.degradations[params["choice"]].apply(wav, sample_rate, params["step"])


def build_degradation(name: str, **kwargs: Any) -> Degradation:
    """Build a registered degradation by class name; unknown settings raise ConfigError."""
    try:
        return DEGRADATIONS.build(name, **kwargs)
    except (KeyError, TypeError) as error:
        raise ConfigError(str(error).strip('"')) from None


def iter_steps(degradation: Degradation):
    """``degradation`` and every step nested in it (``Compose``, ``Choose``), depth first."""
    yield degradation
    for step in getattr(degradation, "degradations", []):
        yield from iter_steps(step)


def _activate(params: Params) -> None:
    params["active"] = True
    for step in params.get("steps", []):
        _activate(step)
    if "step" in params:
        _activate(params["step"])


def warm_up(degradation: Degradation, sample_rate: int, seconds: float = 0.5) -> None:
    """Run every step of ``degradation`` once on a short synthetic signal.

    The first call of some steps is slow (librosa's import and numba compilation for the pitch shift,
    reading noise and impulse-response files into their caches); doing it once in the main process
    before DataLoader workers fork lets every worker inherit the result instead of paying it again.
    """
    from gan_enhance.data.synthetic import synthesize_speech

    wav = synthesize_speech(seconds, sample_rate, seed=0)
    params = degradation.instantiate(np.random.RandomState(0), sample_rate)
    _activate(params)
    degradation.apply(wav, sample_rate, params)
