"""Run configuration as a flat dict of argbind keys: load YAML, apply overrides, check every key.

Keys are argbind's, as in DAC's files: ``Trainer.max_steps``, ``HiFiPlusPlus.upsample_rates``,
``generator/Optimizer.lr`` (a scope: applies to the generator's optimizer only, over ``Optimizer.lr``).
:class:`ConfigReader` hands each section's values over through the section's argbind-bound function
(:mod:`gan_enhance.train.binding`); this module is the layer on top of argbind 0.3.9 for what it lacks.
A file may start with ``$include: [other.yml, ...]`` (recursive; paths relative to the including file,
then to the working directory, then to the project's checkout; later files and the including file win)
and ``$vars: {name: value}`` (a value written ``$name`` anywhere is replaced). Command-line values are read
as YAML and every value is checked against the annotation of the parameter it feeds (:func:`coerce`).
Before anything is built, all keys nothing reads are reported in one error, each with the closest known
key: argbind would silently drop them.

Every layer combines with :func:`merge_config` (each ``$include``, the including file, the command line):
a later value replaces an earlier one, except that a dict-valued key (``lambdas``) merges entry by entry,
so an overlay that sets one loss weight keeps the others (set a weight to 0 to turn a loss off). To
replace a dict on purpose, give it the entry ``$replace: true`` (``lambdas: {$replace: true, mel/loss: 15}``).
One entry can be set on its own as ``<key>.<entry>``, in a file (``lambdas.mel/loss: 20``) or on the
command line (``--lambdas.mel/loss 20``): the part after the first ``.`` names the entry (it may contain
``/``). This applies only when ``<key>`` is already a top-level key of the config; otherwise the dotted key
is an ordinary ``Section.setting`` key such as ``Trainer.max_steps``.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import shlex
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gan_enhance.errors import ConfigError

INCLUDE = "$include"
VARS = "$vars"
REPLACE = "$replace"
# Where an ``$include`` is looked for last: the checkout this package runs from (conf/, recipes/), when it
# is one (an installed copy has no conf/ beside it).
_CHECKOUT = Path(__file__).resolve().parents[2]
INCLUDE_ROOTS = (_CHECKOUT,) if (_CHECKOUT / "conf").is_dir() else ()
DEBUG_KEY = "args.debug"  # argbind's key: print every bound call with its values


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
        candidates = [path.parent / include, Path(include), *(root / include for root in INCLUDE_ROOTS)]
        target = next((c for c in candidates if c.is_file()), None)
        if target is None:
            raise ConfigError(
                f"{path}: $include {include!r} not found next to it, in the working directory"
                + "".join(f" or in {root}" for root in INCLUDE_ROOTS)
            )
        included, included_vars = _load_with_includes(target, chain + (resolved,))
        merged = merge_config(merged, included)
        variables.update(included_vars)
    variables.update(data.pop(VARS, None) or {})
    return merge_config(merged, data), variables


def merge_config(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    """``overlay`` applied on ``base`` (neither is changed): the one way config layers combine.

    Use it wherever a config is combined with overrides (``merge_config(load_config(path), overrides)``),
    not ``{**base, **overlay}``, which drops the entries of a dict-valued key the overlay leaves out.

    A key of ``overlay`` replaces the value in ``base``, except that a dict merges into a dict, entry by
    entry (recursively); a dict with the entry ``$replace: true`` replaces instead. A key ``<key>.<entry>``
    whose ``<key>`` is a top-level key (in ``base``, or set whole in ``overlay``) sets that one entry of its
    dict, after the whole keys, so in one layer the entry wins; a ``<key>`` whose value is not a dict is a
    ``ConfigError``. Other dotted keys (``Trainer.max_steps``) are ordinary keys.
    """
    merged = dict(base)
    for key, value in overlay.items():
        if "." not in key:
            merged[key] = _merged_value(merged.get(key), value, key)
    for key, value in overlay.items():
        if "." not in key:
            continue
        head, _, entry = key.partition(".")
        if head not in merged:
            merged[key] = _merged_value(merged.get(key), value, key)
            continue
        if not isinstance(merged[head], dict):
            raise ConfigError(
                f"config key {key!r} sets the entry {entry!r} of {head!r}, but {head} is not a dict "
                f"(it is {merged[head]!r}); set it whole as {head!r}"
            )
        if not entry:
            raise ConfigError(f"config key {key!r} names no entry of {head!r}; write {head}.<entry>")
        entries = dict(merged[head])
        entries[entry] = _merged_value(entries.get(entry), value, key)
        merged[head] = entries
    return merged


def _merged_value(old: Any, new: Any, key: str) -> Any:
    """``new`` over ``old``: dicts merge (unless ``new`` says ``$replace: true``), anything else replaces."""
    if not isinstance(new, dict):
        return new
    new = dict(new)
    replace = new.pop(REPLACE, False)
    if not isinstance(replace, bool):
        raise ConfigError(f"config key {key!r}: {REPLACE} must be true or false, got {replace!r}")
    merged = dict(old) if isinstance(old, dict) and not replace else {}
    for name, value in new.items():
        merged[name] = _merged_value(merged.get(name), value, f"{key}.{name}")
    return merged


def _substitute(value: Any, variables: dict[str, Any], key: str) -> Any:
    if isinstance(value, str) and value.startswith("$"):
        name = value[1:]
        if name not in variables:
            raise ConfigError(f"config key {key!r} refers to ${name}, which no $vars defines")
        return variables[name]
    if isinstance(value, list):
        return [_substitute(item, variables, key) for item in value]
    if isinstance(value, dict):
        return {name: _substitute(item, variables, key) for name, item in value.items()}
    return value


def parse_overrides(tokens: list[str]) -> dict[str, Any]:
    """``["--Trainer.max_steps", "10", "--HiFiPlusPlus.upsample_rates", "8", "8", "2"]`` -> values.

    Each value is read as YAML (``true``, ``[8, 8, 2]``, ``1e-4``); several words after one key make a list
    (``--X.rates 8 8 2``); ``--key=value`` works too. ``--lambdas.mel/loss 20`` stays the key
    ``lambdas.mel/loss``: :func:`merge_config` sets the entry. A value that is not valid YAML, such as a
    mapping the shell split into words (``--lambdas {mel/loss: 20}`` unquoted), is a one-line
    ``ConfigError`` that says how to write it.
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
        try:
            values = [parse_value(word) for word in words]
        except yaml.YAMLError as error:
            raise ConfigError(_unreadable_override(name, words, error)) from None
        result[name] = values[0] if len(values) == 1 else values
    return result


def _unreadable_override(name: str, words: list[str], error: yaml.YAMLError) -> str:
    """One line saying why ``--name words...`` is not YAML and how to write it."""
    text = " ".join(words)
    if len(words) == 1:
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        return f"override --{name} {shlex.quote(text)} is not a valid YAML value: {problem}"
    hints = [f"quote it: --{name} {shlex.quote(text)}"]
    try:
        whole = yaml.safe_load(text)
    except yaml.YAMLError:
        whole = None
    if isinstance(whole, dict):
        entries = [f"--{name}.{k} {v}" for k, v in whole.items() if not isinstance(v, dict | list)]
        if entries and REPLACE not in whole:  # entry by entry merges, so it cannot stand in for $replace
            hints.append(f"or set entries one by one: {' '.join(entries)}")
    elif isinstance(whole, list) and all(not isinstance(item, dict | list) for item in whole):
        hints.append(f"or list the items: --{name} {' '.join(map(str, whole))}")
    return (
        f"override --{name}: the shell split its value into {len(words)} words ({text}), which are not "
        f"YAML on their own; {', '.join(hints)}"
    )


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

    Understands the plain hints constructors use (int, float, str, bool, list[...]); others pass as is. A
    single string for a ``list[str]`` is a list of one (``--Data.train_sources /data/clean``).
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
        if inner is str and isinstance(value, str):  # one folder or name given without brackets
            value = [value]
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


@dataclass
class RunSettings:
    """The top-level keys of a run config (no section prefix).

    Parameters
    ----------
    name : str
        Run folder under ``runs_dir`` (a plain folder name).
    runs_dir : str
        Folder that holds the run folders.
    in_sample_rate : int
        Sample rate of the degraded input; set here only.
    out_sample_rate : int
        Sample rate of the clean target and the generator output; set here only.
    generator : str
        Backbone by registry name (``hifipp``, ``unet1d``, ``dac``, ``spectral``).
    discriminators : list[str]
        Discriminator families by registry name (``mpd``, ``msstft``, ``mbd``, ``msd``, ``cqt``); [] trains
        on the reconstruction losses alone.
    task : str
        Degradation preset that makes the training inputs (``denoise``, ``restoration``, ...).
    lambdas : dict[str, float]
        Loss weights keyed by their log keys (``mel/loss``, ``adv/gen``, ...); merges across config layers.
    """

    name: str = "run"
    runs_dir: str = "runs"
    in_sample_rate: int = 16000
    out_sample_rate: int = 16000
    generator: str = ""
    discriminators: list[str] = field(default_factory=list)
    task: str = "denoise"
    lambdas: dict[str, float] = field(default_factory=dict)


class ConfigReader:
    """Hands out config values section by section, through argbind, and remembers which keys were read.

    Each :meth:`section` checks the keys under its prefix against the target's parameters, then takes the
    values from the section's argbind-bound function inside ``argbind.scope(config, scope)``
    (:func:`gan_enhance.train.binding.bound_values`) and checks them against the annotations.

    Parameters
    ----------
    config : dict
        The flat config. The key ``args.debug`` (``--args.debug``) makes argbind print every section with
        the values it hands over.
    report_at_end : bool
        Collect keys that a section lacks and report them with every other unread key in one
        :meth:`check_all_used` error, each with its "did you mean"; otherwise :meth:`section` raises at
        the first.
    """

    def __init__(self, config: dict[str, Any], report_at_end: bool = False):
        self.config = dict(config)
        self.debug = bool(self.config.pop(DEBUG_KEY, False))
        self.report_at_end = report_at_end
        self.used: set[str] = set()
        self.unknown: dict[str, str] = {}  # key -> "Did you mean ...?" ("" when nothing is close)
        self.known: set[str] = set()  # every key the sections read so far accept

    def section(
        self, prefix: str, target: Callable | type, scope: str = "", reserved: tuple[str, ...] = ()
    ) -> dict[str, Any]:
        """Keyword arguments for ``target`` from ``prefix.<name>`` keys (``scope/prefix.<name>`` wins).

        ``prefix`` "" reads the top-level keys (no dot). ``reserved`` names are set by the trainer in one
        place (the sample rates); writing them under the prefix is an error that says where they belong.
        """
        from gan_enhance.train.binding import SCOPES, bound_values, callable_spec

        parameters = parameters_of(target)
        head = f"{prefix}." if prefix else ""
        self.known.update(f"{head}{name}" for name in parameters if name not in reserved)
        if scope:
            self.known.update(f"{scope}/{head}{name}" for name in parameters if name not in reserved)
        keys = [key for key in self.config if split_key(key)[:2] in {("", prefix), (scope, prefix)}]
        found: dict[str, str] = {}
        for key in sorted(keys, key=lambda k: "/" in k):  # unscoped first, so the scoped key is named
            name = split_key(key)[2]
            if name in reserved:
                raise ConfigError(f"config key {key!r}: set {name} once, as the top-level key {name!r}")
            if name not in parameters:
                self._unknown(key, prefix, name, parameters)
                continue
            found[name] = key
            self.used.add(key)
        spec = callable_spec(prefix, target, reserved, SCOPES if scope else ())
        received = bound_values(spec, self.config, scope, self.debug)
        if set(received) != set(found):
            raise RuntimeError(
                f"argbind handed {prefix or 'the top level'} {sorted(received)} where the config sets "
                f"{sorted(found)}: another function is bound under the name {prefix!r}"
            )
        return {name: coerce(value, parameters[name], found[name]) for name, value in received.items()}

    def _unknown(self, key: str, prefix: str, name: str, parameters: dict[str, Any]) -> None:
        close = difflib.get_close_matches(name, list(parameters), n=1)
        hint = f"Did you mean {key[: len(key) - len(name)]}{close[0]}?" if close else ""
        if self.report_at_end:
            self.unknown[key] = hint
            return
        raise ConfigError(
            f"unknown config key {key!r}: {prefix or 'the top level'} has no setting {name!r}."
            f"{' ' + hint if hint else ''} Its settings: {', '.join(sorted(parameters))}"
        )

    def settings(self, cls: type, prefix: str, scope: str = "") -> Any:
        """A settings dataclass filled from ``prefix.*`` keys (``prefix`` "": the top-level keys)."""
        return cls(**self.section(prefix, cls, scope))

    def mark_used(self, prefix: str) -> None:
        """Accept every ``prefix.*`` key without reading it (settings of a part this run does not build)."""
        self.used.update(key for key in self.config if key.split("/")[-1].startswith(f"{prefix}."))

    def check_all_used(self) -> None:
        """Raise one error naming every key nothing read, each with the closest key that would be read."""
        unknown = dict(self.unknown)
        for key in sorted(set(self.config) - self.used - set(unknown)):
            close = difflib.get_close_matches(key, sorted(self.known), n=1, cutoff=0.8)
            unknown[key] = f"Did you mean {close[0]}?" if close else ""
        if unknown:
            listed = ", ".join(f"{key} ({hint})" if hint else key for key, hint in sorted(unknown.items()))
            raise ConfigError(
                f"unknown config key(s): {listed}. Check the spelling and the section prefix "
                "(e.g. Trainer.max_steps, HiFiPlusPlus.upsample_channels); keys of a generator or discriminator "
                "only count when that part is selected"
            )


def split_key(key: str) -> tuple[str, str, str]:
    """``"generator/Optimizer.lr"`` -> ``("generator", "Optimizer", "lr")``; ``"name"`` -> ``("", "", "name")``.

    A scope is the part before a ``/`` that has no dot (``lambdas.mel/loss`` has none).
    """
    scope, slash, rest = key.partition("/")
    if not slash or "." in scope:
        scope, rest = "", key
    prefix, dot, name = rest.partition(".")
    return (scope, prefix, name) if dot else (scope, "", rest)
