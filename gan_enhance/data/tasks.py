"""Task presets: which degradations, with which probabilities, at which input and output rates.

A preset is a list of ``(degradation class name, settings)`` steps. ``build_task`` builds it, letting a
configuration override any class's settings by name (``{"AddNoise": {"snr_db": [0, 15]}}``), which is how
``conf/`` overlays reach them: the trainer binds the degradation classes with argbind and passes the
values it collected. Unknown classes or settings are a :class:`~gan_enhance.errors.ConfigError`.
"""

from __future__ import annotations

from dataclasses import dataclass

from gan_enhance.data import audiotools_adapter, codecs, noise_reverb, spectral  # noqa: F401  (register them)
from gan_enhance.data.transforms import DEGRADATIONS, Compose, build_degradation
from gan_enhance.errors import ConfigError

PRESETS: dict[str, dict] = {
    "denoise": {
        "rates": (16000, 16000),
        "steps": [
            ("AddNoise", {"snr_db": [-5.0, 20.0], "prob": 1.0}),
            ("Gain", {"gain_db": [-10.0, 6.0], "prob": 0.3}),
        ],
    },
    "dereverb": {
        "rates": (16000, 16000),
        "steps": [
            ("Reverb", {"rt60": [0.2, 1.5], "prob": 1.0}),
            ("AddNoise", {"snr_db": [20.0, 40.0], "prob": 0.3}),
        ],
    },
    # 48 kHz targets from 16 kHz inputs: the dataset resamples the degraded signal to 16 kHz; a further
    # random band limit below 8 kHz teaches the model inputs that were narrower than their rate.
    "bandwidth_extension": {
        "rates": (16000, 48000),
        "steps": [
            ("BandLimit", {"cutoff_hz": [3000.0, 7800.0], "prob": 0.5}),
            ("Codec", {"prob": 0.1}),
        ],
    },
    # Everything, in the order a recording meets it: the room, the noise in it, the microphone, processing,
    # the converter's clipping, and transmission (band limit, codec); a level change last.
    "restoration": {
        "rates": (16000, 16000),
        "steps": [
            ("Reverb", {"prob": 0.4}),
            ("AddNoise", {"snr_db": [-5.0, 25.0], "prob": 0.6}),
            ("Equalizer", {"prob": 0.4}),
            ("PitchShift", {"prob": 0.1}),
            ("Clipping", {"prob": 0.2}),
            ("BandLimit", {"cutoff_hz": [2000.0, 7500.0], "prob": 0.4}),
            ("Codec", {"prob": 0.3}),
            ("Gain", {"prob": 0.3}),
        ],
    },
    "pitch_shift": {
        "rates": (16000, 16000),
        "steps": [("PitchShift", {"semitones": [-6.0, 6.0], "prob": 1.0})],
    },
}
TASK_NAMES = tuple(PRESETS)


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
