"""Start a run from an earlier stage: a training checkpoint or an exported generator.

The generator takes every weight whose name and shape match; parts the source lacks (e.g. the 48 kHz
head of stage 2) keep their fresh initialisation, and every missing, unexpected or mismatched key is
reported. Discriminator and optimizer states are reused only on request and only when every shape
matches. The schedule restarts: a fine-tuning run counts its own steps from 0.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gan_enhance.errors import CheckpointError
from gan_enhance.train.checkpoint import CHECKPOINT_FILE, eval_weights_key, load_checkpoint
from gan_enhance.train.distributed import unwrap
from gan_enhance.train.state import State

log = logging.getLogger("gan_enhance.train")
EXPORT_WEIGHTS = "model.safetensors"


@dataclass
class FineTuneSettings:
    """Initialise from an earlier run (config prefix ``FineTune.``).

    Parameters
    ----------
    checkpoint : str
        A training checkpoint (``.../checkpoints/best`` or its ``checkpoint.pt``), a run folder (its
        ``best``, else ``latest``) or an exported model folder (``model.safetensors``); "" starts fresh.
    use_ema : bool
        Take the source's EMA generator weights when it has them and they hold at least one update.
    allow_shape_mismatch : bool
        Keep the fresh initialisation of weights whose shape differs instead of stopping with an error.
    reuse_discriminator : bool
        Load the source's discriminator (only when it matches this run's discriminator exactly).
    reuse_optimizers : bool
        Load the source's optimizer states (only when every state tensor's shape matches).
    """

    checkpoint: str = ""
    use_ema: bool = True
    allow_shape_mismatch: bool = False
    reuse_discriminator: bool = False
    reuse_optimizers: bool = False


@dataclass
class LoadReport:
    """What happened to each weight name while loading a generator."""

    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        lines = [f"loaded {len(self.loaded)} generator tensors"]
        lines += [f"new (initialised fresh): {key}" for key in self.missing]
        lines += [f"unexpected (ignored): {key}" for key in self.unexpected]
        lines += [f"shape mismatch (initialised fresh): {key}" for key in self.mismatched]
        return lines + self.notes


def initialise_from(state: State, settings: FineTuneSettings) -> LoadReport:
    """Load ``settings.checkpoint`` into ``state`` as described in the module docstring."""
    source = resolve_source(Path(settings.checkpoint))
    if source.name == EXPORT_WEIGHTS:
        weights, payload = _load_export(source), None
    else:
        payload = load_checkpoint(source)
        weights = payload[eval_weights_key(payload, settings.use_ema)]
    generator = unwrap(state.generator)
    report = load_matching(generator, weights, settings.allow_shape_mismatch, source)
    if state.ema is not None:
        state.ema.module.load_state_dict(generator.state_dict())
    if settings.reuse_discriminator:
        report.notes.append(_reuse_discriminator(state, payload))
    if settings.reuse_optimizers:
        report.notes.append(_reuse_optimizers(state, payload))
    for line in report.lines():
        log.info("fine-tune from %s: %s", source, line)
    return report


def resolve_source(path: Path) -> Path:
    """The file to read for a checkpoint/run/export path, or a CheckpointError saying what was expected."""
    candidates = [path]
    if path.is_dir():
        candidates = [
            path / CHECKPOINT_FILE,
            path / EXPORT_WEIGHTS,
            path / "checkpoints" / "best" / CHECKPOINT_FILE,
            path / "checkpoints" / "latest" / CHECKPOINT_FILE,
        ]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise CheckpointError(
        f"FineTune.checkpoint {path} holds no checkpoint.pt, model.safetensors or checkpoints/{{best,latest}}; "
        "point it at a run folder, a checkpoint folder or an exported model"
    )


def load_matching(
    model: nn.Module, weights: dict[str, torch.Tensor], allow_mismatch: bool, source: Path
) -> LoadReport:
    """Copy every tensor of ``weights`` whose name and shape match into ``model``; report the rest."""
    own = model.state_dict()
    weights = _adapt_weight_norm(weights, own)
    report = LoadReport()
    report.missing = sorted(set(own) - set(weights))
    report.unexpected = sorted(set(weights) - set(own))
    usable = {}
    for key in sorted(set(own) & set(weights)):
        if own[key].shape != weights[key].shape:
            report.mismatched.append(f"{key} {tuple(weights[key].shape)} -> {tuple(own[key].shape)}")
        else:
            usable[key] = weights[key]
            report.loaded.append(key)
    if report.mismatched and not allow_mismatch:
        raise CheckpointError(
            f"generator weights in {source} do not fit this generator: {'; '.join(report.mismatched)}. "
            "Use the same backbone settings, or set FineTune.allow_shape_mismatch: true to initialise those fresh"
        )
    if not usable:
        raise CheckpointError(
            f"no generator weight in {source} matches this generator: is it the same backbone?"
        )
    model.load_state_dict(usable, strict=False)
    return report


def _adapt_weight_norm(
    weights: dict[str, torch.Tensor], own: dict[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """Turn plain ``X.weight`` tensors (an export, weight norm removed) into this model's weight-norm pair.

    Weight norm (dim 0) writes ``w = g * v / |v|``; ``v = w`` and ``g = |w|`` per output channel give the
    same weight back.
    """
    adapted = dict(weights)
    for key in own:
        if not key.endswith("parametrizations.weight.original1"):
            continue
        prefix = key[: -len("parametrizations.weight.original1")]
        plain = weights.get(prefix + "weight")
        if plain is None or key in weights:
            continue
        gain_key = prefix + "parametrizations.weight.original0"
        norm = plain.flatten(1).norm(dim=1).reshape(own[gain_key].shape) if plain.ndim > 1 else plain.abs()
        adapted[key] = plain
        adapted[gain_key] = norm
        del adapted[prefix + "weight"]
    return adapted


def _load_export(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    config_path = path.with_name("config.json")
    if config_path.is_file():
        log.info(
            "fine-tune source is an exported %s", json.loads(config_path.read_text()).get("generator", {})
        )
    return load_file(str(path))


def _reuse_discriminator(state: State, payload: dict[str, Any] | None) -> str:
    if state.discriminator is None or payload is None or "discriminator" not in payload:
        return "discriminator: fresh (the source has none)"
    discriminator = unwrap(state.discriminator)
    own, saved = discriminator.state_dict(), payload["discriminator"]
    if set(own) != set(saved) or any(own[k].shape != saved[k].shape for k in own):
        return "discriminator: fresh (the source's discriminator has other layers or shapes)"
    discriminator.load_state_dict(saved)
    return "discriminator: reused from the source"


def _reuse_optimizers(state: State, payload: dict[str, Any] | None) -> str:
    if payload is None:
        return "optimizers: fresh (an exported model carries no optimizer state)"
    notes = []
    sides = (("generator", state.optimizers_g), ("discriminator", state.optimizers_d))
    for side, optimizers in sides:
        saved = payload["optimizers"].get(side, [])
        if _optimizer_states_fit(optimizers, saved):
            for optimizer, optimizer_state in zip(optimizers, saved):
                options = [
                    {k: v for k, v in group.items() if k != "params"} for group in optimizer.param_groups
                ]
                optimizer.load_state_dict(optimizer_state)
                # Only the moments carry over: this run's settings and restarted schedule keep their values
                # (learning rates, initial_lr of the scheduler, betas, weight decay).
                for group, own_options in zip(optimizer.param_groups, options):
                    group.update(own_options)
            notes.append(f"{side} optimizer reused")
        else:
            notes.append(f"{side} optimizer fresh (shapes differ)")
    return "optimizers: " + ", ".join(notes)


def _optimizer_states_fit(optimizers: list[torch.optim.Optimizer], saved: list[dict]) -> bool:
    if len(optimizers) != len(saved):
        return False
    for optimizer, optimizer_state in zip(optimizers, saved):
        sizes = [len(group["params"]) for group in optimizer.param_groups]
        if sizes != [len(group["params"]) for group in optimizer_state["param_groups"]]:
            return False
        params = [p for group in optimizer.param_groups for p in group["params"]]
        saved_ids = [i for group in optimizer_state["param_groups"] for i in group["params"]]
        for index, parameter in zip(saved_ids, params):
            for value in optimizer_state["state"].get(index, {}).values():
                if torch.is_tensor(value) and value.ndim > 0 and value.numel() != parameter.numel():
                    return False
    return True
