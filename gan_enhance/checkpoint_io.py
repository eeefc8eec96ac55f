"""A training checkpoint file, read: checked load, which generator weights to use, the generator rebuilt.

Training writes checkpoints (:mod:`gan_enhance.train.checkpoint`); resuming, fine-tuning, ``gan-enhance
export`` and inference straight from a run folder (:func:`gan_enhance.bundle.load_generator`) read them
through this module, which imports none of the training code.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gan_enhance.errors import CheckpointError
from gan_enhance.version import __version__

CHECKPOINT_FILE = "checkpoint.pt"
CHECKSUM_KEY = "checksum"
# Prefixes that wrappers (DistributedDataParallel, torch.compile) add to state-dict keys.
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint file (or a folder holding ``checkpoint.pt``) with ``weights_only=True`` on CPU.

    Raises
    ------
    CheckpointError
        Missing, unreadable, truncated, holding objects other than tensors and plain data (a file that
        would run code when unpickled is refused before anything in it runs), not a gan_enhance
        checkpoint, or corrupt (its checksum does not match its contents).
    """
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_FILE
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}; check the run name or train without --resume")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for bad files (pickle, zip, EOF, runtime)
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        if "Weights only load failed" in str(error):
            message = (
                "it holds objects other than tensors and plain data, which could run code when loaded, "
                "so it was refused; load only checkpoints you trust"
            )
        raise CheckpointError(f"{path} is not a readable training checkpoint: {message}") from None
    if not isinstance(payload, dict) or "generator" not in payload or "step" not in payload:
        raise CheckpointError(
            f"{path} is not a gan_enhance training checkpoint (no 'generator'/'step' entries)"
        )
    # Checkpoints written before checksums existed have none; they load as before.
    if CHECKSUM_KEY in payload and payload[CHECKSUM_KEY] != payload_digest(payload):
        raise CheckpointError(
            f"{path} is corrupt: its contents do not match its checksum (disk or copy error); "
            "use another checkpoint of the run"
        )
    return payload


def eval_weights_key(payload: dict[str, Any], prefer_ema: bool = True) -> str:
    """``"generator_ema"`` when the checkpoint has EMA weights holding at least one update and ``prefer_ema``,
    else ``"generator"``: an EMA saved before ``EMA.start_step`` is only a copy of the initial weights.
    (A checkpoint without an ``ema_updates`` count is taken at its word.)"""
    if not prefer_ema or not payload.get("generator_ema"):
        return "generator"
    updates = payload.get("ema_updates")
    return "generator" if updates is not None and int(updates) == 0 else "generator_ema"


def payload_digest(payload: dict[str, Any]) -> str:
    """SHA-256 of every key, tensor (dtype, shape, bytes) and plain value of ``payload`` but its checksum.

    Computed on the objects, not the file, so it is the same for the payload in memory and as loaded.
    """
    digest = hashlib.sha256()
    _feed(digest, {key: value for key, value in payload.items() if key != CHECKSUM_KEY})
    return digest.hexdigest()


def _feed(digest, value: Any) -> None:
    if isinstance(value, torch.Tensor):
        tensor = value.detach().cpu().contiguous()
        digest.update(f"T{tensor.dtype}{tuple(tensor.shape)}".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    elif isinstance(value, dict):
        digest.update(f"D{len(value)}".encode())
        for key in sorted(value, key=repr):
            digest.update(repr(key).encode())
            _feed(digest, value[key])
    elif isinstance(value, (list, tuple)):
        digest.update(f"L{len(value)}".encode())
        for element in value:
            _feed(digest, element)
    else:
        digest.update(f"V{type(value).__name__}:{value!r}".encode())


def find_checkpoint(run_or_checkpoint: str | os.PathLike, tag: str = "best") -> str:
    """Resolve a run folder + tag, a checkpoint folder, or a ``checkpoint.pt`` path to the file.

    Raises
    ------
    CheckpointError
        If nothing matches; the message lists the tags the run has.
    """
    path = os.fspath(run_or_checkpoint)
    candidates = [
        path,
        os.path.join(path, CHECKPOINT_FILE),
        os.path.join(path, "checkpoints", tag, CHECKPOINT_FILE),
    ]
    for candidate in candidates:
        if os.path.isfile(candidate):
            return candidate
    if not os.path.exists(path):
        raise CheckpointError(f"'{path}' does not exist; pass a run folder (runs/<name>) or a checkpoint.pt")
    folder = os.path.join(path, "checkpoints")
    tags = sorted(os.listdir(folder)) if os.path.isdir(folder) else []
    known = (
        f"; this run has tags: {', '.join(tags)}" if tags else "; no checkpoints/<tag>/checkpoint.pt found"
    )
    raise CheckpointError(f"no checkpoint for tag '{tag}' in '{path}'{known}")


def load_generator_checkpoint(path: str) -> dict[str, Any]:
    """:func:`load_checkpoint` of a checkpoint that records its generator (``generator_config``)."""
    checkpoint = load_checkpoint(path)
    if "generator_config" not in checkpoint:
        raise CheckpointError(f"'{path}' lacks 'generator_config'; is it a gan_enhance checkpoint?")
    return checkpoint


def _unwrap(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    for prefix in _WRAPPER_PREFIXES:
        if state and all(key.startswith(prefix) for key in state):
            state = {key[len(prefix) :]: value for key, value in state.items()}
    return state


def generator_from_checkpoint(path: str, prefer_ema: bool = True) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the generator of a training checkpoint.

    Returns
    -------
    generator : Generator
        With the EMA weights when the EMA holds an update and ``prefer_ema`` (else the trained weights), eval mode.
    source : dict
        Provenance for the bundle's ``config.json`` (checkpoint path, step, which weights, metrics).
    """
    checkpoint = load_generator_checkpoint(path)
    config = checkpoint["generator_config"]
    if not isinstance(config, dict) or "name" not in config:
        raise CheckpointError(f"'{path}': generator_config must be {{'name', 'kwargs'}}, got {config!r}")
    from gan_enhance.models.generators import GENERATORS as registry

    try:
        generator = registry.build(config["name"], **dict(config.get("kwargs") or {}))
    except (KeyError, TypeError, ValueError) as error:
        raise CheckpointError(f"'{path}': cannot rebuild generator {config['name']!r} ({error})") from None
    weights = eval_weights_key(checkpoint, prefer_ema)
    try:
        generator.load_state_dict(_unwrap(checkpoint[weights]), strict=True)
    except RuntimeError as error:
        raise CheckpointError(
            f"'{path}': '{weights}' does not fit generator {config['name']!r} ({error})"
        ) from None
    metrics = checkpoint.get("metrics") or {}
    source = {
        "checkpoint": os.path.abspath(path),
        "step": int(checkpoint.get("step", 0)),
        "weights": weights,
        "checkpoint_version": str(checkpoint.get("version", "")),
        "exported_with": __version__,
        "metrics": {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float, torch.Tensor))},
    }
    return generator.eval(), source
