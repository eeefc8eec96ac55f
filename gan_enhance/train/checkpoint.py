"""Training checkpoints: plain tensors and data (``torch.load(weights_only=True)``), written atomically.

Layout (docs/internal_api.md): ``runs/<name>/checkpoints/{latest,best,<N>k}/checkpoint.pt`` holding
``version, step, generator, generator_ema, generator_config, discriminator, discriminator_config,
optimizers, schedulers, scaler (one per side), rng, data, metrics, config`` plus ``trainer`` (counters,
best tracker), ``ema_updates`` and ``balancer`` (when on), and ``checksum``.

Crash safety: every file is written to a temporary file, fsynced and renamed over its tag (a kill at any
moment leaves the old or the new checkpoint, never a mix); before ``latest`` is replaced, the old one is
kept as ``previous`` (a hard link, so no copy). ``checksum`` is a SHA-256 over every key, tensor and value
of the payload, checked at load: a truncated or corrupted file is reported, and ``--resume`` falls back to
the newest checkpoint that loads and checks (:func:`load_resumable`).
"""

from __future__ import annotations

import io
import logging
import os
import shutil
from pathlib import Path
from typing import Any

import torch

from gan_enhance.atomic import atomic_path, remove_leftovers, write_bytes
from gan_enhance.checkpoint_io import (  # noqa: F401 (eval_weights_key: re-exported for training code)
    CHECKPOINT_FILE,
    CHECKSUM_KEY,
    eval_weights_key,
    load_checkpoint,
    payload_digest,
)
from gan_enhance.errors import CheckpointError, ConfigError, OutOfSpaceError
from gan_enhance.train.distributed import max_over_ranks, unwrap
from gan_enhance.train.precision import rng_state, set_rng_state
from gan_enhance.train.state import State
from gan_enhance.version import __version__

CHECKPOINT_DIR = "checkpoints"
# The tag that keeps the last ``latest`` while a new one is written.
PREVIOUS_TAG = "previous"
# A checkpoint that failed to load when a run resumed is kept under this suffix (see load_resumable).
UNREADABLE_SUFFIX = ".unreadable"
log = logging.getLogger("gan_enhance.train")


def checkpoint_path(run_dir: str | Path, tag: str) -> Path:
    """``run_dir/checkpoints/<tag>/checkpoint.pt``."""
    return Path(run_dir) / CHECKPOINT_DIR / tag / CHECKPOINT_FILE


def step_tag(step: int) -> str:
    """The kept-checkpoint tag of ``step``: ``50k`` for 50000 (plain ``1234`` off the thousands)."""
    return f"{step // 1000}k" if step % 1000 == 0 else str(step)


def state_payload(
    state: State,
    data: dict[str, Any],
    metrics: dict[str, float],
    config: dict[str, Any],
    trainer: dict[str, Any],
) -> dict[str, Any]:
    """Everything needed to continue ``state`` bitwise, as plain tensors and data."""
    generator = unwrap(state.generator)
    payload: dict[str, Any] = {
        "version": __version__,
        "step": state.step,
        "generator": generator.state_dict(),
        "generator_config": getattr(generator, "build_config", {}),
        "optimizers": {
            "generator": [optimizer.state_dict() for optimizer in state.optimizers_g],
            "discriminator": [optimizer.state_dict() for optimizer in state.optimizers_d],
        },
        "schedulers": {
            "generator": [scheduler.state_dict() for scheduler in state.schedulers_g],
            "discriminator": [scheduler.state_dict() for scheduler in state.schedulers_d],
        },
        "scaler": state.precision.state_dict(),
        "rng": rng_state(),
        "data": data,
        "metrics": dict(metrics),
        "config": config,
        "trainer": {
            **trainer,
            "nonfinite_total": state.nonfinite_total,
            "nonfinite_in_a_row": state.nonfinite_in_a_row,
        },
    }
    if state.discriminator is not None:
        discriminator = unwrap(state.discriminator)
        payload["discriminator"] = discriminator.state_dict()
        payload["discriminator_config"] = getattr(discriminator, "build_config", {})
    if state.balancer is not None:
        payload["balancer"] = state.balancer.state_dict()
    if state.ema is not None:
        ema = state.ema.state_dict()
        payload["generator_ema"] = ema["weights"]
        payload["ema_updates"] = ema["updates"]
    return payload


def save_checkpoint(payload: dict[str, Any], run_dir: str | Path, tags: list[str]) -> list[Path]:
    """Write ``payload`` (with its checksum) under each tag, each file via a temporary file and a rename.

    Raises
    ------
    OutOfSpaceError
        The disk ran out: the checkpoint being written is discarded and the previous one is intact.
    """
    payload = {**payload, CHECKSUM_KEY: payload_digest(payload)}
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    data = buffer.getvalue()
    written = []
    for tag in tags:
        path = checkpoint_path(run_dir, tag)
        for leftover in remove_leftovers(path):
            log.info("removed %s, a checkpoint write that was killed before it finished", leftover)
        if tag == "latest" and path.is_file():
            _keep_previous(path, checkpoint_path(run_dir, PREVIOUS_TAG))
        try:
            write_bytes(path, data, durable=True)
        except OutOfSpaceError as error:
            kept = f"the previous checkpoint {path} is intact" if path.is_file() else "no checkpoint was kept"
            raise OutOfSpaceError(
                f"out of disk space writing the step-{payload['step']} checkpoint to {path} ({error}); "
                f"{kept}. Free space, then continue with --resume"
            ) from None
        written.append(path)
    return written


def _keep_previous(latest: Path, previous: Path) -> None:
    """Make ``previous`` the current ``latest`` (a hard link; a copy where links are not supported)."""
    with atomic_path(previous) as temporary:
        os.remove(temporary)
        try:
            os.link(latest, temporary)
        except OSError:
            shutil.copyfile(latest, temporary)


def load_resumable(run_dir: str | Path, set_aside: bool = False) -> tuple[dict[str, Any], Path]:
    """The newest checkpoint of a run that loads and checks: ``latest``, else ``previous``, else the others
    (``<N>k``, ``best``), newest file first. Each one skipped is logged with the reason.

    With ``set_aside`` (the process that writes the run's checkpoints), each file that failed to load is
    renamed to ``checkpoint.pt.unreadable``: otherwise the next save would rotate a bad ``latest`` into
    ``previous``, over the good checkpoint the run resumed from.

    Raises
    ------
    CheckpointError
        No checkpoint of the run loads; the message lists each file and why.
    """
    folder = Path(run_dir) / CHECKPOINT_DIR
    first = [checkpoint_path(run_dir, tag) for tag in ("latest", PREVIOUS_TAG)]
    others = sorted(
        (path for path in folder.glob(f"*/{CHECKPOINT_FILE}") if path not in first),
        key=lambda path: path.stat().st_mtime,
        reverse=True,
    )
    failures = []
    for path in first + others:
        if not path.is_file():
            continue
        try:
            payload = load_checkpoint(path)
        except CheckpointError as error:
            log.warning("cannot resume from %s, trying an older checkpoint: %s", path, error)
            failures.append((path, str(error)))
            continue
        for failed, _ in failures if set_aside else []:
            kept = failed.with_name(failed.name + UNREADABLE_SUFFIX)
            os.replace(failed, kept)
            log.warning("kept the unreadable %s aside as %s", failed, kept)
        return payload, path
    if not failures:
        raise CheckpointError(f"no checkpoint in {folder}; train without --resume")
    raise CheckpointError(f"no usable checkpoint in {folder}: " + " | ".join(error for _, error in failures))


def load_on_every_rank(state: State, run_dir: str | Path) -> tuple[dict[str, Any], Path]:
    """:func:`load_resumable` on every rank, with one answer for all of them.

    Under DDP every rank loads from its own view of the run folder. A missing shared filesystem, a stale
    copy or a file unreadable on one node would otherwise leave ranks at different steps or with different
    weights, or let one rank take another branch (resume or stop, restore or lower the learning rate) while
    the others wait in a collective for ever. One all-reduce of (failed, step, checksum) makes every rank
    return the same checkpoint or raise.

    Parameters
    ----------
    state : State
        The run's state (its rank, device and process group); not modified.
    run_dir : str or Path
        The run folder.

    Returns
    -------
    tuple of (dict, Path)
        The checkpoint's payload and the file it came from, the same on every rank.

    Raises
    ------
    CheckpointError
        On every rank, when any rank loaded nothing or the ranks loaded different checkpoints. A rank
        whose load failed otherwise (an ``OSError`` while setting a file aside) re-raises its own error
        after the all-reduce; the others raise ``CheckpointError``.
    """
    try:
        payload, path = load_resumable(run_dir, set_aside=state.dist.is_main)
        error = None
    except Exception as caught:  # every rank must hear of it before any rank raises
        payload, path, error = {}, Path(run_dir), caught
    if not state.dist.distributed:
        if error is not None:
            raise error
        return payload, path
    digest = float(int(str(payload.get(CHECKSUM_KEY, ""))[:12] or "0", 16))  # 48 bits: exact in float64
    mine = [float(payload.get("step", 0)), digest]
    values = [float(error is not None), *mine, *(-value for value in mine)]
    agreed = max_over_ranks(torch.tensor(values, dtype=torch.float64, device=state.device), state.dist)
    failed, high_step, high_digest, low_step, low_digest = agreed.tolist()
    if error is not None:
        raise error
    if failed:
        raise CheckpointError(
            f"another rank could not load a checkpoint of {run_dir} (rank {state.dist.rank} loaded {path}): "
            "give every rank the same run folder (a shared filesystem)"
        )
    if (high_step, high_digest) != (-low_step, -low_digest):
        raise CheckpointError(
            f"the ranks resumed from different checkpoints (steps {-low_step:.0f} to {high_step:.0f}; rank "
            f"{state.dist.rank} loaded {path}): give every rank the same run folder (a shared filesystem) "
            "and resume again"
        )
    return payload, path


def restore_state(state: State, payload: dict[str, Any]) -> None:
    """Put a checkpoint back into ``state`` for ``--resume``: weights, optimizers, schedules, RNG, counters.

    Everything must match exactly (same config); fine-tuning from another run is ``finetune.py``'s job.
    """
    _load_strict(unwrap(state.generator), payload["generator"], "generator", payload)
    if state.discriminator is not None:
        if "discriminator" not in payload:
            raise CheckpointError(
                "the checkpoint has no discriminator but this run trains one; resume the same config"
            )
        _load_strict(unwrap(state.discriminator), payload["discriminator"], "discriminator", payload)
    if state.ema is not None:
        if "generator_ema" not in payload:
            raise CheckpointError(
                "the checkpoint has no EMA weights but EMA.decay > 0; resume the same config"
            )
        state.ema.load_state_dict({"weights": payload["generator_ema"], "updates": payload["ema_updates"]})
    _load_list(state.optimizers_g, payload["optimizers"]["generator"], "generator optimizers")
    _load_list(state.optimizers_d, payload["optimizers"]["discriminator"], "discriminator optimizers")
    _load_list(state.schedulers_g, payload["schedulers"]["generator"], "generator schedulers")
    _load_list(state.schedulers_d, payload["schedulers"]["discriminator"], "discriminator schedulers")
    state.precision.load_state_dict(payload["scaler"])
    if state.balancer is not None and "balancer" in payload:
        state.balancer.load_state_dict(payload["balancer"])
    set_rng_state(payload["rng"])
    state.step = int(payload["step"])
    state.nonfinite_total = int(payload["trainer"].get("nonfinite_total", 0))
    state.nonfinite_in_a_row = int(payload["trainer"].get("nonfinite_in_a_row", 0))


def _load_strict(module: torch.nn.Module, weights: dict, what: str, payload: dict) -> None:
    try:
        module.load_state_dict(weights)
    except RuntimeError:
        raise CheckpointError(
            f"the checkpoint's {what} (step {payload['step']}) does not fit this run's {what}: "
            f"{weight_mismatch(module.state_dict(), weights)}. Was a model setting changed? Resume with the "
            "run's own config (--args.load runs/<name>/config.yml), or fine-tune with FineTune.checkpoint"
        ) from None


def weight_mismatch(own: dict, saved: dict, shown: int = 2) -> str:
    """How ``saved`` weights differ from a model's ``own`` in one line: counts and the first few names
    (torch's own message lists every tensor: hundreds of lines for a changed width)."""
    shapes = [
        f"{k} {tuple(saved[k].shape)} vs {tuple(v.shape)}"
        for k, v in own.items()
        if k in saved and saved[k].shape != v.shape
    ]
    groups = [
        ("tensors of other shapes (saved vs this run)", shapes),
        ("missing from the checkpoint", [k for k in own if k not in saved]),
        ("not in this run's model", [k for k in saved if k not in own]),
    ]
    parts = []
    for label, names in groups:
        if names:
            more = f", and {len(names) - shown} more" if len(names) > shown else ""
            parts.append(f"{len(names)} {label}: {', '.join(names[:shown])}{more}")
    return "; ".join(parts)


def _load_list(targets: list, states: list, what: str) -> None:
    if len(targets) != len(states):
        raise ConfigError(
            f"the checkpoint has {len(states)} {what} but this run builds {len(targets)}; "
            "was Optimizer.kind changed? Resume with the run's own config.yml"
        )
    for target, saved in zip(targets, states):
        try:
            target.load_state_dict(saved)
        except ValueError as error:  # torch: parameter groups of other sizes
            raise CheckpointError(
                f"the checkpoint's {what} group their parameters differently from this version's ({error}); "
                "it cannot be resumed exactly: start a new run from it with FineTune.checkpoint"
            ) from None


class BestTracker:
    """Keeps the best validation value of one metric and counts validations without improvement.

    Parameters
    ----------
    metric : str
        Log key of the validation metric (``mel/loss``, ``metric/pesq``, ...).
    mode : str
        ``"min"`` or ``"max"``.
    patience : int
        Validations without a new best before :attr:`should_stop` turns true (0: never).
    """

    def __init__(self, metric: str, mode: str, patience: int):
        if mode not in ("min", "max"):
            raise ConfigError(f"Trainer.best_mode is {mode!r}; use 'min' or 'max'")
        self.metric, self.mode, self.patience = metric, mode, patience
        self.best: float | None = None
        self.best_step = -1
        self.stale = 0

    def update(self, metrics: dict[str, float], step: int) -> bool:
        """Record one validation; True when it is a new best."""
        if self.metric not in metrics:
            raise ConfigError(
                f"Trainer.best_metric {self.metric!r} is not a validation metric; known: {', '.join(sorted(metrics))}"
            )
        value = metrics[self.metric]
        improved = self.best is None or (value < self.best if self.mode == "min" else value > self.best)
        if improved:
            self.best, self.best_step, self.stale = value, step, 0
        else:
            self.stale += 1
        return improved

    @property
    def should_stop(self) -> bool:
        return self.patience > 0 and self.stale >= self.patience

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_step": self.best_step, "stale": self.stale}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.best_step, self.stale = state["best"], state["best_step"], state["stale"]
