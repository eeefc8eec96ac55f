"""Systems to evaluate: the classical baselines and exported models, chosen by a short spec string.

A spec is ``[NAME=]KIND[:ARGUMENT]``:

- ``identity``: the degraded input itself (the floor any enhancer must beat);
- ``spectral-gating[:stationary]``: spectral gating with noisereduce, a classical denoiser; non-stationary
  by default (noise statistics tracked over a 2 s time constant, for real recordings), ``:stationary``
  gates with one noise profile per file (better for clips of a few seconds in steady noise);
- ``resample[:RATE]``: band-limited sinc resampling of the input to ``RATE`` (default: the clean
  reference's rate), the baseline for bandwidth extension;
- ``model:DIR``: a generator exported with ``gan-enhance export`` (loaded with
  :func:`gan_enhance.bundle.load_generator`, run chunk by chunk through :mod:`gan_enhance.enhance`).

``NAME=`` sets the system's name in tables (default: the kind, or the model folder's name).
Every system maps ``(wav (C, T), sample_rate) -> (wav (C, T'), sample_rate')``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from gan_enhance.errors import ConfigError

KINDS = ("identity", "spectral-gating", "resample", "model")
# The evaluation writes degraded inputs to ``audio/degraded/``; no system may take that name.
RESERVED_NAME = "degraded"


@dataclass
class System:
    """A named enhancer of whole waveforms.

    Attributes
    ----------
    name : str
        How the system is called in tables and folders.
    spec : str
        The spec it was built from.
    process : callable
        ``(wav (C, T), sample_rate) -> (wav (C, T'), sample_rate')``.
    """

    name: str
    spec: str
    process: Callable[[torch.Tensor, int], tuple[torch.Tensor, int]] = field(repr=False)

    def __call__(self, wav: torch.Tensor, sample_rate: int) -> tuple[torch.Tensor, int]:
        return self.process(wav, sample_rate)


def _identity(wav: torch.Tensor, sample_rate: int) -> tuple[torch.Tensor, int]:
    return wav, sample_rate


def _spectral_gating(stationary: bool) -> Callable[[torch.Tensor, int], tuple[torch.Tensor, int]]:
    def process(wav: torch.Tensor, sample_rate: int) -> tuple[torch.Tensor, int]:
        import noisereduce

        # One channel at a time: noisereduce's multi-channel path estimates one noise profile per call.
        # n_jobs=1: the evaluation loop is the unit of parallelism, not each file.
        channels = [
            noisereduce.reduce_noise(y=channel.numpy(), sr=sample_rate, stationary=stationary, n_jobs=1)
            for channel in wav
        ]
        return torch.from_numpy(np.stack(channels).astype(np.float32)), sample_rate

    return process


def _resampler(rate: int, default_rate: int) -> Callable[[torch.Tensor, int], tuple[torch.Tensor, int]]:
    from gan_enhance.audio import resample

    target = rate or default_rate

    def process(wav: torch.Tensor, sample_rate: int) -> tuple[torch.Tensor, int]:
        if not target:
            return wav, sample_rate
        return resample(wav, sample_rate, target, quality="best"), target

    return process


def _model(
    model_dir: str, device: str, chunk_seconds: float
) -> Callable[[torch.Tensor, int], tuple[torch.Tensor, int]]:
    # The inference layer is imported on use: evaluating baselines must not load model code.
    from gan_enhance.bundle import load_generator

    generator = load_generator(model_dir, device=device)
    options = {"chunk_seconds": chunk_seconds} if chunk_seconds else {}

    def process(wav: torch.Tensor, sample_rate: int) -> tuple[torch.Tensor, int]:
        with torch.inference_mode():
            enhanced, rate = generator.enhance(wav, sample_rate, **options)
        return torch.as_tensor(enhanced).float().cpu(), int(rate)

    return process


def check_system_name(name: str, spec: str) -> None:
    """Refuse a name that is not a plain file name: names become ``<out>/<name>.csv`` and
    ``<out>/audio/<name>/``, so a name with a path in it would write outside the output folder."""
    if not name or name in (".", "..") or name.startswith(".") or any(sep in name for sep in "/\\"):
        raise ConfigError(
            f"'{spec}': the name '{name}' cannot be used for files in the output folder; name it with "
            "NAME= using letters, digits, '-' or '_'"
        )
    if name == RESERVED_NAME:
        raise ConfigError(f"'{spec}': '{RESERVED_NAME}' names the folder of degraded inputs; choose another")


def parse_spec(spec: str) -> tuple[str, str, str]:
    """Split ``[NAME=]KIND[:ARGUMENT]`` into ``(name, kind, argument)``; the name defaults as documented."""
    name, _, body = spec.rpartition("=") if "=" in spec.split(":", 1)[0] else ("", "", spec)
    kind, _, argument = body.partition(":")
    if kind not in KINDS:
        raise ConfigError(
            f"unknown system '{spec}'; use one of: identity, spectral-gating, resample[:RATE], model:DIR"
        )
    if kind == "model" and not argument:
        raise ConfigError(f"system '{spec}' needs the exported model's folder: model:DIR")
    if kind == "spectral-gating" and argument not in ("", "stationary", "nonstationary"):
        raise ConfigError(f"system '{spec}': spectral-gating takes ':stationary' or ':nonstationary'")
    if kind == "resample" and argument and not argument.isdigit():
        raise ConfigError(f"system '{spec}': the resample rate must be an integer in Hz, got '{argument}'")
    if not name:
        name = os.path.basename(os.path.abspath(argument)) if kind == "model" else kind
    check_system_name(name, spec)
    return name, kind, argument


def build_system(
    spec: str, reference_rate: int = 0, device: str = "cpu", chunk_seconds: float = 0.0
) -> System:
    """Build a system from its spec.

    Parameters
    ----------
    spec : str
        ``[NAME=]KIND[:ARGUMENT]`` (see the module docstring).
    reference_rate : int
        The clean reference's rate, the default target of ``resample`` (0: keep the input's rate).
    device : str
        Where a model runs.
    chunk_seconds : float
        Chunk length for models (0: the enhancer's default).
    """
    name, kind, argument = parse_spec(spec)
    if kind == "identity":
        process = _identity
    elif kind == "spectral-gating":
        process = _spectral_gating(argument == "stationary")
    elif kind == "resample":
        process = _resampler(int(argument or 0), reference_rate)
    else:
        process = _model(argument, device, chunk_seconds)
    return System(name=name, spec=spec, process=process)
