"""Task presets built into degradation chains.

A preset (:mod:`gan_enhance.data.presets`) is a list of ``(degradation class name, settings)`` steps.
``build_task`` builds it, letting a configuration override any class's settings by name
(``{"AddNoise": {"snr_db": [0, 15]}}``), which is how ``conf/`` overlays reach them: the trainer binds
the degradation classes with argbind and passes the values it collected. Unknown classes or settings
are a :class:`~gan_enhance.errors.ConfigError`.
"""

from __future__ import annotations

from dataclasses import dataclass

from gan_enhance.data import audiotools_adapter, codecs, noise_reverb, spectral  # noqa: F401  (register them)
from gan_enhance.data.presets import PRESETS, TASK_NAMES
from gan_enhance.data.transforms import DEGRADATIONS, Compose, build_degradation
from gan_enhance.errors import ConfigError


@dataclass
class Task:
    """A built preset: rates and the degradation chain."""

    name: str
    in_sample_rate: int
    out_sample_rate: int
    degradation: Compose


def build_task(
    name: str,
    noise_dirs: list[str] = [],  # noqa: B006
    rir_dirs: list[str] = [],  # noqa: B006
    settings: dict[str, dict] | None = None,
    in_sample_rate: int = 0,
    out_sample_rate: int = 0,
) -> Task:
    """Build the preset ``name``.

    Parameters
    ----------
    name : str
        One of ``TASK_NAMES``.
    noise_dirs, rir_dirs : list[str]
        Noise and impulse-response folders for ``AddNoise`` / ``Reverb`` (synthetic when empty).
    settings : dict[str, dict], optional
        Per-class overrides of the preset's settings, keyed by class name.
    in_sample_rate, out_sample_rate : int
        Override the preset's rates (0 keeps them).
    """
    if name not in PRESETS:
        raise ConfigError(f"unknown task {name!r}; tasks: {', '.join(TASK_NAMES)}")
    preset = PRESETS[name]
    settings = dict(settings or {})
    used = {step for step, _ in preset["steps"]}
    unknown = sorted(set(settings) - used)
    if unknown:
        raise ConfigError(
            f"task {name!r} has no degradation {', '.join(unknown)}; its degradations: {', '.join(sorted(used))}"
        )
    steps = []
    for class_name, defaults in preset["steps"]:
        kwargs = {**defaults, **settings.get(class_name, {})}
        if class_name == "AddNoise":
            kwargs.setdefault("noise_dirs", list(noise_dirs))
        if class_name == "Reverb":
            kwargs.setdefault("rir_dirs", list(rir_dirs))
        steps.append(build_degradation(class_name, **kwargs))
    in_rate, out_rate = preset["rates"]
    return Task(name, in_sample_rate or in_rate, out_sample_rate or out_rate, Compose(steps))


def degradation_names() -> list[str]:
    return DEGRADATIONS.names()
