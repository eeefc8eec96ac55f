"""Clean-audio sources, degradations, task presets, datasets, shards and the resumable loader.

Items are ``{"x": (1, T_in), "y": (1, T_out), "index": int}``: ``x`` the degraded input at the input
rate, ``y`` the clean target at the output rate (see docs/internal_api.md).

The names below load their module on first use (``from gan_enhance.data import CleanSource`` works as
usual), so importing the package, or :mod:`gan_enhance.data.presets` for the task names, costs nothing:
``gan-enhance preprocess --help`` and the inference path never import numpy, scipy or torch through it.
"""

from __future__ import annotations

import importlib

# Public name -> the submodule defining it.
_EXPORTS = {
    "Audiotools": "audiotools_adapter",
    "Codec": "codecs",
    "PitchShift": "codecs",
    "DegradedDataset": "datasets",
    "PairedDataset": "datasets",
    "item_state": "datasets",
    "ResumableLoader": "loader",
    "build_dataloader": "loader",
    "AddNoise": "noise_reverb",
    "Reverb": "noise_reverb",
    "PRESETS": "presets",
    "TASK_NAMES": "presets",
    "ShardDataset": "shards",
    "write_shards": "shards",
    "CleanSource": "sources",
    "BandLimit": "spectral",
    "Clipping": "spectral",
    "Equalizer": "spectral",
    "Gain": "spectral",
    "synthesize_speech": "synthetic",
    "write_synthetic_corpus": "synthetic",
    "Task": "tasks",
    "build_task": "tasks",
    "DEGRADATIONS": "transforms",
    "Choose": "transforms",
    "Compose": "transforms",
    "Degradation": "transforms",
    "build_degradation": "transforms",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module_name = _EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if module_name == "transforms":
        # The degradation registry is filled by the modules defining degradations; tasks imports them all.
        importlib.import_module(f"{__name__}.tasks")
    value = getattr(importlib.import_module(f"{__name__}.{module_name}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
