"""Run configuration as a flat dict of argbind-style keys: load YAML, apply overrides, check every key.

Keys read like DAC's argbind files: ``Trainer.max_steps``, ``HiFiPlusPlus.upsample_rates``,
``generator/Optimizer.lr`` (a scope: applies to the generator's optimizer only, over ``Optimizer.lr``).
A file may start with ``$include: [other.yml, ...]`` (paths relative to the including file, then to the
working directory; later files and the including file win) and ``$vars: {name: value}`` (a value written
``$name`` anywhere is replaced). The config is checked against the constructors it feeds before anything
is built, and a key nothing reads is an error naming it: argbind would silently drop it.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from gan_enhance.errors import ConfigError

INCLUDE = "$include"
VARS = "$vars"


def load_config(path: str | Path) -> dict[str, Any]:
    """Read a YAML config with its ``$include`` chain and ``$vars`` substitutions into a flat dict."""
    merged, variables = _load_with_includes(Path(path), ())
    return {key: _substitute(value, variables, key) for key, value in merged.items()}


def _load_with_includes(path: Path, chain: tuple[Path, ...]) -> tuple[dict[str, Any], dict[str, Any]]:
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    resolved = path.resolve()
    if resolved in chain:
        raise ConfigError(f"config {path} includes itself through {' -> '.join(map(str, chain))}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise ConfigError(f"config {path} is not valid YAML: {error}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config {path} must be a mapping of keys to values")
    merged: dict[str, Any] = {}
    variables: dict[str, Any] = {}
    for include in data.pop(INCLUDE, None) or []:
        candidates = [path.parent / include, Path(include)]
        target = next((c for c in candidates if c.is_file()), None)
        if target is None:
            raise ConfigError(
                f"{path}: $include {include!r} not found next to it or in the working directory"
            )
        included, included_vars = _load_with_includes(target, chain + (resolved,))
        merged.update(included)
        variables.update(included_vars)
    variables.update(data.pop(VARS, None) or {})
    merged.update(data)
    return merged, variables


def _substitute(value: Any, variables: dict[str, Any], key: str) -> Any:
    if isinstance(value, str) and value.startswith("$"):
        name = value[1:]
        if name not in variables:
            raise ConfigError(f"config key {key!r} refers to ${name}, which no $vars defines")
        return variables[name]
    if isinstance(value, list):
        return [_substitute(item, variables, key) for item in value]
    return value


def parse_overrides(tokens: list[str]) -> dict[str, Any]:
    """``["--Trainer.max_steps", "10", "--HiFiPlusPlus.upsample_rates", "8", "8", "2"]`` -> values.

    Each value is read as YAML (``true``, ``[8, 8, 2]``, ``1e-4``); several words after one key make a list
    (argbind's way of writing lists); ``--key=value`` works too.
    """
    overrides: dict[str, Any] = {}
    key = None
    for token in tokens:
        if token.startswith("--"):
            key, _, inline = token[2:].partition("=")
            if not key:
                raise ConfigError(f"cannot read the override {token!r}")
            overrides[key] = [] if not inline else [inline]
        elif key is None:
            raise ConfigError(f"unexpected argument {token!r}; overrides read --Some.key value")
        else:
            overrides[key].append(token)
    result = {}
    for name, words in overrides.items():
        if not words:
            raise ConfigError(f"override --{name} needs a value")
        values = [parse_value(word) for word in words]
        result[name] = values[0] if len(values) == 1 else values
    return result


def parse_value(text: str) -> Any:
    """A command-line word as YAML, with ``1e-4`` (YAML 1.1 reads it as a string) as a float."""
    value = yaml.safe_load(text)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


# -- checking values against the constructors that consume them -------------------------------------------------
SIMPLE_TYPES = {"int": int, "float": float, "str": str, "bool": bool}


def coerce(value: Any, annotation: Any, key: str) -> Any:
    """``value`` checked (and int -> float widened) for a parameter annotated ``annotation``.

    Understands the plain hints constructors use (int, float, str, bool, list[...]); others pass as is.
    """
    if isinstance(annotation, str):
        text = annotation.replace(" ", "")
        if text in SIMPLE_TYPES:
            annotation = SIMPLE_TYPES[text]
        elif text.startswith("list[") and text[5:-1] in SIMPLE_TYPES:
            annotation = list[SIMPLE_TYPES[text[5:-1]]]
        else:
            return value
    if typing.get_origin(annotation) is list:
        (inner,) = typing.get_args(annotation) or (Any,)
        if not isinstance(value, list | tuple):
            raise ConfigError(f"config key {key!r} must be a list, got {value!r}")
        return [coerce(item, inner, key) for item in value]
    if annotation is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"config key {key!r} must be true or false, got {value!r}")
        return value
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"config key {key!r} must be an integer, got {value!r}")
        return value
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"config key {key!r} must be a number, got {value!r}")
        return float(value)
    if annotation is str:
        if not isinstance(value, str):
            raise ConfigError(f"config key {key!r} must be a string, got {value!r}")
        return value
    return value


def parameters_of(target: Callable | type) -> dict[str, Any]:
    """Keyword parameters of a constructor or dataclass: ``{name: annotation}``."""
    if dataclasses.is_dataclass(target):
        return {f.name: f.type for f in dataclasses.fields(target)}
    signature = inspect.signature(target)
    return {
        name: parameter.annotation
        for name, parameter in signature.parameters.items()
        if parameter.kind in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY)
    }


class ConfigReader:
    """Hands out config values section by section and remembers which keys were read.

    Parameters
    ----------
    config : dict
        The flat config.
    """

    def __init__(self, config: dict[str, Any]):
        self.config = dict(config)
        self.used: set[str] = set()

    def top(self, key: str, default: Any, annotation: Any) -> Any:
        """A top-level key (no prefix)."""
        if key not in self.config:
            return default
        self.used.add(key)
        return coerce(self.config[key], annotation, key)

    def section(
        self, prefix: str, target: Callable | type, scope: str = "", reserved: tuple[str, ...] = ()
    ) -> dict[str, Any]:
        """Keyword arguments for ``target`` from ``prefix.<name>`` keys (``scope/prefix.<name>`` wins).

        ``reserved`` names are set by the trainer in one place (the sample rates); writing them under the
        prefix is an error that says where they belong.
        """
        parameters = parameters_of(target)
        keys = [key for key in self.config if key.startswith(f"{prefix}.")]
        if scope:
            keys += [key for key in self.config if key.startswith(f"{scope}/{prefix}.")]
        values: dict[str, Any] = {}
        for key in sorted(keys, key=lambda k: "/" in k):  # unscoped first, so the scoped value wins
            name = key.split(f"{prefix}.", 1)[1]
            if name in reserved:
                raise ConfigError(f"config key {key!r}: set {name} once, as the top-level key {name!r}")
            if name not in parameters:
                close = difflib.get_close_matches(name, list(parameters), n=1)
                hint = f" Did you mean {prefix}.{close[0]}?" if close else ""
                raise ConfigError(
                    f"unknown config key {key!r}: {prefix} has no setting {name!r}.{hint} "
                    f"Its settings: {', '.join(sorted(parameters))}"
                )
            values[name] = coerce(self.config[key], parameters[name], key)
            self.used.add(key)
        return values

    def settings(self, cls: type, prefix: str, scope: str = "") -> Any:
        """A settings dataclass filled from ``prefix.*`` keys."""
        return cls(**self.section(prefix, cls, scope))

    def mark_used(self, prefix: str) -> None:
        """Accept every ``prefix.*`` key without reading it (settings of a part this run does not build)."""
        self.used.update(key for key in self.config if key.split("/")[-1].startswith(f"{prefix}."))

    def check_all_used(self) -> None:
        """Raise naming every key nothing read."""
        unused = sorted(set(self.config) - self.used)
        if unused:
            raise ConfigError(
                f"unknown config key(s): {', '.join(unused)}. Check the spelling and the section prefix "
                "(e.g. Trainer.max_steps, HiFiPlusPlus.upsample_channels); keys of a generator or discriminator "
                "only count when that part is selected"
            )
