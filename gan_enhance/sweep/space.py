"""A sweep's search space: config keys and the values each may take, read from a YAML file.

One entry per config key, any key a ``train`` run takes (loss weights included, as ``lambdas.<key>``)::

    Optimizer.lr: {log_uniform: [1.0e-4, 1.0e-2]}
    Trainer.batch_size: {choice: [8, 16, 32]}
    lambdas.mel/loss: {uniform: [5, 30]}
    EMA.decay: {uniform: [0.99, 0.9999], step: 0.0001}
    Trainer.adversarial_start: {int: [0, 2000], step: 500}
    ConvNeXtUNet.channels: {choice: [[16, 32], [32, 64]]}

Kinds: ``uniform`` and ``log_uniform`` (floats), ``int`` and ``log_int`` (integers), each ``[low, high]``
with both ends included and an optional ``step`` (not with the log kinds); ``choice`` (a list of values,
lists included). Optuna's samplers draw the values (:func:`suggest`).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from gan_enhance.errors import ConfigError

RANGE_KINDS = ("uniform", "log_uniform", "int", "log_int")
KINDS = RANGE_KINDS + ("choice",)
# Optuna stores these choice values as they are; any other (a list, a dict) is stored by its YAML text.
_SCALARS = (type(None), bool, int, float, str)


@dataclass(frozen=True)
class Dimension:
    """One searched config key.

    Attributes
    ----------
    key : str
        The config key (``Optimizer.lr``, ``lambdas.mel/loss``); also the Optuna parameter name.
    kind : str
        One of :data:`KINDS`.
    low, high : float
        The range (both ends included) for the range kinds.
    step : float or None
        The grid step of ``uniform``/``int`` (None: continuous, or 1 for ``int``).
    choices : tuple
        The values of ``choice``.
    """

    key: str
    kind: str
    low: float = 0.0
    high: float = 0.0
    step: float | None = None
    choices: tuple = ()

    @property
    def labels(self) -> tuple | None:
        """Choice labels Optuna stores when a choice is not a plain scalar (its YAML text), else None."""
        if all(isinstance(value, _SCALARS) for value in self.choices):
            return None
        return tuple(_label(value) for value in self.choices)

    def ends(self) -> list[Any]:
        """The extreme values (both range ends, every choice): what :func:`check_space` tries."""
        if self.kind == "choice":
            return list(self.choices)
        if self.kind in ("int", "log_int"):
            return [int(self.low), int(self.high)]
        return [float(self.low), float(self.high)]


def _label(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=True, sort_keys=True).strip().removesuffix("...").strip()


def load_space(path: str | Path) -> list[Dimension]:
    """Read a search-space YAML file (see the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"search space {path} does not exist; write one like conf/sweep/lr.yml")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise ConfigError(f"search space {path} is not valid YAML: {error}") from None
    return parse_space(data, str(path))


def parse_space(data: Any, source: str = "search space") -> list[Dimension]:
    """Dimensions from a mapping ``{config key: {kind: values, [step: s]}}``; ``source`` names it in errors."""
    if not isinstance(data, dict) or not data:
        raise ConfigError(
            f"{source} must map config keys to ranges, e.g. Optimizer.lr: {{log_uniform: [1e-4, 1e-2]}}"
        )
    return [_dimension(str(key), spec, source) for key, spec in data.items()]


def _dimension(key: str, spec: Any, source: str) -> Dimension:
    where = f"{source}: {key}"
    if not isinstance(spec, dict):
        raise ConfigError(f"{where} must be a mapping such as {{uniform: [0.1, 1.0]}}, got {spec!r}")
    spec = dict(spec)
    step = spec.pop("step", None)
    kinds = [name for name in spec if name in KINDS]
    unknown = [name for name in spec if name not in KINDS]
    if unknown or len(kinds) != 1:
        raise ConfigError(
            f"{where} needs exactly one of {', '.join(KINDS)} (and optionally step), got {sorted(spec)}"
        )
    kind = kinds[0]
    values = spec[kind]
    if kind == "choice":
        if step is not None:
            raise ConfigError(f"{where}: step applies to ranges, not to choice")
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{where}: choice needs a non-empty list of values, got {values!r}")
        dimension = Dimension(key, kind, choices=tuple(values))
        labels = dimension.labels
        if labels is not None and len(set(labels)) != len(labels):
            raise ConfigError(f"{where}: choice lists the same value twice")
        return dimension
    if (
        not isinstance(values, list)
        or len(values) != 2
        or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
    ):
        raise ConfigError(f"{where}: {kind} needs [low, high] as two numbers, got {values!r}")
    low, high = float(values[0]), float(values[1])
    if not (math.isfinite(low) and math.isfinite(high)) or low > high:
        raise ConfigError(f"{where}: {kind} needs low <= high (finite), got [{values[0]}, {values[1]}]")
    if kind.startswith("log_") and low <= 0:
        raise ConfigError(f"{where}: {kind} needs low > 0, got {values[0]}")
    if kind in ("int", "log_int") and (low != int(low) or high != int(high)):
        raise ConfigError(f"{where}: {kind} needs integer ends, got {values!r}")
    if step is not None:
        if kind.startswith("log_"):
            raise ConfigError(f"{where}: step cannot be combined with {kind}; use uniform or int")
        if isinstance(step, bool) or not isinstance(step, int | float) or step <= 0:
            raise ConfigError(f"{where}: step must be a positive number, got {step!r}")
        if kind == "int" and step != int(step):
            raise ConfigError(f"{where}: step of an int range must be an integer, got {step!r}")
        step = float(step)
    return Dimension(key, kind, low, high, step)


def suggest(trial, space: list[Dimension]) -> dict[str, Any]:
    """Config overrides for one trial: each dimension's value drawn by ``trial`` (an ``optuna.Trial``)."""
    overrides: dict[str, Any] = {}
    for d in space:
        if d.kind == "choice":
            labels = d.labels
            if labels is None:
                overrides[d.key] = trial.suggest_categorical(d.key, list(d.choices))
            else:
                label = trial.suggest_categorical(d.key, list(labels))
                overrides[d.key] = d.choices[labels.index(label)]
        elif d.kind in ("int", "log_int"):
            step = int(d.step) if d.step else 1
            overrides[d.key] = trial.suggest_int(
                d.key, int(d.low), int(d.high), step=step, log=d.kind == "log_int"
            )
        else:
            overrides[d.key] = trial.suggest_float(
                d.key, d.low, d.high, step=d.step, log=d.kind == "log_uniform"
            )
    return overrides


def values_of(params: dict[str, Any], space: list[Dimension]) -> dict[str, Any]:
    """Config overrides from stored Optuna params (choice labels mapped back to their values)."""
    overrides = {}
    for d in space:
        if d.key not in params:
            continue
        value = params[d.key]
        labels = d.labels
        overrides[d.key] = d.choices[labels.index(value)] if labels is not None and value in labels else value
    return overrides


def check_space(space: list[Dimension], base: dict[str, Any], source: str = "search space") -> None:
    """Refuse a space that would give an invalid run: every end of every range (with the base for the
    other keys) must pass the same checks ``train`` makes, so a bad key fails now, not in trial 5."""
    from gan_enhance.train.builders import read_experiment
    from gan_enhance.train.config import merge_config

    # The checks' warnings (keys of unselected generators, ...) were shown once for the base already.
    train_log = logging.getLogger("gan_enhance.train")
    level = train_log.level
    train_log.setLevel(logging.ERROR)
    try:
        for d in space:
            for value in d.ends():
                try:
                    read_experiment(merge_config(base, {d.key: value}))
                except ConfigError as error:
                    raise ConfigError(
                        f"{source}: {d.key} = {value!r} does not make a valid run: {error}"
                    ) from None
    finally:
        train_log.setLevel(level)
