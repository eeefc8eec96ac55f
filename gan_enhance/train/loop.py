"""The training loop: steps, logging, samples, validation, checkpoints, early stopping, profiling.

Read top to bottom in :func:`fit`; each periodic job is its own function and gets what it uses.
"""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from gan_enhance.data.datasets import BadFileLog
from gan_enhance.errors import CheckpointError, DataError
from gan_enhance.train.checkpoint import (
    BestTracker,
    load_on_every_rank,
    restore_state,
    save_checkpoint,
    state_payload,
    step_tag,
)
from gan_enhance.train.distributed import (
    barrier,
    broadcast_from_main,
    mean_over_ranks,
    unwrap,
)
from gan_enhance.train.guard import LossSpikeError, SpikeGuard, scale_learning_rates
from gan_enhance.train.progress import ProfilerWindow, Progress, RunningMeans
from gan_enhance.train.signals import StopSignals
from gan_enhance.train.state import State
from gan_enhance.train.step import train_step
from gan_enhance.train.validate import save_samples, validate
from gan_enhance.train.writers import RunWriters

log = logging.getLogger("gan_enhance.train")


class BatchStream:
    """Endless batches from a loader with a resumable position (``state_dict`` / ``load_state_dict``).

    A new pass over the loader starts when one ends; the loader itself moves to its next epoch. Batches
    of a :class:`~gan_enhance.data.datasets.ReplaceBadItems` dataset carry the load failures of their
    items: each new one is logged and counted in ``bad_files`` (saved with the position).
    """

    def __init__(self, loader: Any, bad_files: BadFileLog | None = None):
        self.loader = loader
        self.bad_files = bad_files
        self._iterator: Iterator | None = None

    def __next__(self) -> dict[str, Tensor]:
        if self._iterator is None:
            self._iterator = iter(self.loader)
        try:
            batch = next(self._iterator)
        except StopIteration:
            self._iterator = iter(self.loader)
            batch = next(self._iterator)
        bad = batch.pop("bad", None)
        if bad is not None and self.bad_files is not None:
            for failure in self.bad_files.record(list(bad)):
                log.warning(
                    "training item replaced: %s (%d failed so far)", failure, len(self.bad_files.failures)
                )
        return batch

    def state_dict(self) -> dict[str, Any]:
        state = self.loader.state_dict() if hasattr(self.loader, "state_dict") else {}
        if self.bad_files is not None:
            state["bad_files"] = list(self.bad_files.failures)
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.loader.load_state_dict(state)
        if self.bad_files is not None:
            self.bad_files.failures = list(state.get("bad_files", []))
        self._iterator = None


@dataclass
class Run:
    """What the loop needs besides the ``State``: data, output folder, writers and run-level records.

    Parameters
    ----------
    run_dir : Path
        ``runs/<name>``; checkpoints, logs and samples go under it (rank 0 only).
    train_batches : BatchStream
        Training batches.
    val_batches : iterable of dict
        The fixed validation set (re-iterated at every validation).
    sample_batch : dict or None
        A fixed validation batch for the audio and spectrogram logs.
    in_sample_rate, out_sample_rate : int
        Rates of ``x`` and ``y``.
    config : dict
        The resolved run config, stored in every checkpoint.
    writers : RunWriters
        ``logs/train`` and ``logs/val``.
    speech_quality : bool
        Add PESQ/STOI to validation.
    metric_names : list[str]
        More validation metrics by ``gan_enhance.evaluate.metrics`` name (``Trainer.quality_metrics``).
    spike_guard : SpikeGuard or None
        The loss-spike guard (``Trainer.spike_factor``).
    on_validation : callable or None
        Called on rank 0 after every validation with ``(step, metrics)``; returning True stops the run
        after this step's checkpoint, as early stopping does (a sweep's pruner uses it).
    """

    run_dir: Path
    train_batches: BatchStream
    val_batches: Iterable[dict[str, Tensor]]
    sample_batch: dict[str, Tensor] | None
    in_sample_rate: int
    out_sample_rate: int
    config: dict[str, Any]
    writers: RunWriters
    speech_quality: bool = True
    metric_names: list[str] = field(default_factory=list)
    tracker: BestTracker | None = None
    last_metrics: dict[str, float] = field(default_factory=dict)
    spike_guard: SpikeGuard | None = None
    on_validation: Callable[[int, dict[str, float]], bool] | None = None
    latest_step: int = -1  # the step checkpoints/latest was last written at by this process


@dataclass
class FitResult:
    """Where a run ended: its step, whether early stopping ended it, the best value, the final state, and
    the signal that stopped it (0: none)."""

    step: int
    stopped_early: bool
    best: float | None
    last_metrics: dict[str, float]
    state: State
    interrupted: int = 0


def fit(state: State, run: Run) -> FitResult:
    """Train until ``Trainer.max_steps`` (or early stopping); returns where the run ended."""
    settings = state.settings
    if run.tracker is None:
        run.tracker = BestTracker(settings.best_metric, settings.best_mode, settings.early_stop_patience)
    averages = RunningMeans()
    # A bar only on a terminal (and not quiet); redirected output gets one line per logging step.
    progress = Progress(
        settings.max_steps, state.step, state.dist.is_main, bar=False if settings.quiet else None
    )
    profiler = ProfilerWindow(settings.profile_start, settings.profile_steps, run.run_dir, state.dist.is_main)
    stopped_early = False
    interrupted = 0
    with StopSignals() as signals, progress.console():
        while state.step < settings.max_steps and not stopped_early:
            stopped_early, interrupted = _one_step(state, run, signals, averages, progress, profiler)
            if interrupted:
                log.warning(
                    "%s received: wrote checkpoints/latest at step %d; continue with --resume",
                    signal.Signals(interrupted).name,
                    state.step,
                )
                break
    profiler.close()
    progress.close()
    run.writers.flush()
    return FitResult(state.step, stopped_early, run.tracker.best, run.last_metrics, state, interrupted)


def _one_step(
    state: State,
    run: Run,
    signals: StopSignals,
    averages: RunningMeans,
    progress: Progress,
    profiler: ProfilerWindow,
) -> tuple[bool, int]:
    """Fetch a batch, train one step and run the periodic jobs due at the new step.

    Returns (early stop requested, signal received). After the fetch every rank hears of a signal any
    rank received and of a fetch that failed on any rank, so all stop before the same step (a rank that
    left alone would leave the others waiting in their next collective): ``latest`` is written at the
    data position before this batch, then the run returns (signal; a fetch that failed because the signal
    stopped the data workers included) or raises the fetch's error.
    """
    settings = state.settings
    started = time.perf_counter()
    position = run.train_batches.state_dict()
    try:
        batch, error = next(run.train_batches), None
    except Exception as caught:  # every rank must hear of it before any rank raises
        batch, error = None, caught
    interrupted, failed = signals.agree(state, error is not None)
    if interrupted or failed:
        # The steps so far are good: keep them, unless latest already holds them (rewriting it would rotate
        # the same state into previous) or nothing was trained yet and no signal asks for a resumable stop.
        kept = state.step == run.latest_step or (state.step == 0 and not interrupted)
        if not kept:
            write_checkpoint(state, run, ["latest"], position)
        barrier(state.dist)  # no rank leaves (and has torchrun stop the others) before rank 0 has written
        if interrupted:
            return False, interrupted
        saved = f"checkpoints/latest holds step {state.step}; continue with --resume" if state.step else ""
        if state.dist.is_main and saved:
            log.error("data loading failed: %s once fixed", saved)
        if error is not None:
            raise error
        raise DataError(
            f"data loading failed on another rank before step {state.step + 1} (its error is in its output)"
            + (f"; {saved}" if saved else "")
        )
    fetched = time.perf_counter()
    metrics = train_step(state, batch)
    if run.spike_guard is not None:
        guard_spikes(state, run, metrics)
    averages.add(metrics, data_seconds=fetched - started, step_seconds=time.perf_counter() - fetched)
    profiler.step(state.step)
    step = state.step
    if settings.logs_at(step):
        log_training(state, run, averages.pop(), batch["x"].shape[0], progress)
    progress.update(step)
    if settings.sample_every and step % settings.sample_every == 0:
        log_samples(state, run)
    stopped_early = False
    # The last step validates too, so a run shorter than valid_every (or not a multiple of it) ends with
    # scores and a `best` for its final weights.
    if settings.valid_every and (step % settings.valid_every == 0 or step == settings.max_steps):
        # A stop asked for at the last step is no early stop: the run is finished either way.
        stopped_early = run_validation(state, run) and step < settings.max_steps
    keep = settings.keep_every > 0 and step % settings.keep_every == 0
    due = step % settings.checkpoint_every == 0 or step == settings.max_steps
    if due or keep or stopped_early:
        write_checkpoint(state, run, ["latest"] + ([step_tag(step)] if keep else []))
    return stopped_early, 0


def log_training(
    state: State, run: Run, means: dict[str, Tensor | float], batch_size: int, progress: Progress
) -> None:
    """Write the averaged training scalars (the ``.item()`` sync happens here, every ``log_every`` steps)."""
    timing = {key: means.pop(key) for key in ("time/data", "time/step")}
    means = mean_over_ranks(means, state.dist)
    keys = sorted(means)
    losses = dict(zip(keys, torch.stack([means[key].float() for key in keys]).tolist()))
    losses["nonfinite/skipped"] = float(state.nonfinite_total)
    if run.train_batches.bad_files is not None:
        losses["data/bad_files"] = float(len(run.train_batches.bad_files.failures))
    values = {**losses, **timing, **state.learning_rates()}
    seconds = timing["time/data"] + timing["time/step"]
    values["perf/samples_per_s"] = batch_size * state.dist.world_size / max(seconds, 1e-9)
    run.writers.scalars("train", values, state.step)
    progress.show(state.step, losses)


def log_samples(state: State, run: Run) -> None:
    """Audio and spectrograms of the fixed sample batch through the (EMA) generator; rank 0 only."""
    if state.dist.is_main and run.sample_batch is not None:
        save_samples(
            run.writers,
            state.eval_generator(),
            run.sample_batch,
            state.device,
            run.in_sample_rate,
            run.out_sample_rate,
            state.step,
            run.run_dir / "samples",
        )
    barrier(state.dist)


def run_validation(state: State, run: Run) -> bool:
    """Validate on rank 0, log, keep ``best``; returns True when early stopping says stop (on every rank)."""
    stop = torch.zeros(1, device=state.device)  # NCCL takes device tensors only
    if state.dist.is_main:
        discriminator = unwrap(state.discriminator) if state.discriminator is not None else None
        metrics = validate(
            state.eval_generator(),
            discriminator,
            state.losses,
            state.lambdas,
            run.val_batches,
            state.device,
            run.out_sample_rate,
            adversarial=state.adversarial,
            max_batches=state.settings.valid_batches,
            speech_quality=run.speech_quality,
            metric_names=run.metric_names,
        )
        run.last_metrics = metrics
        run.writers.scalars("val", metrics, state.step)
        if run.tracker.update(metrics, state.step):
            write_checkpoint(state, run, ["best"])
        log.info("step %d validation: %s", state.step, _format(metrics))
        if run.tracker.should_stop:
            log.info(
                "early stop at step %d: %s has not improved for %d validations (best %.4g at step %d)",
                state.step,
                run.tracker.metric,
                run.tracker.stale,
                run.tracker.best,
                run.tracker.best_step,
            )
            stop[0] = 1
        if run.on_validation is not None and run.on_validation(state.step, metrics):
            log.info("stopped at step %d by the validation callback", state.step)
            stop[0] = 1
    return bool(broadcast_from_main(stop, state.dist)[0])


def guard_spikes(state: State, run: Run, metrics: dict[str, Tensor]) -> None:
    """Feed the step's generator loss (mean over ranks) to the spike guard; act when it says so."""
    guard, settings = run.spike_guard, state.settings
    loss = float(mean_over_ranks({"loss": metrics["total/loss"]}, state.dist)["loss"])
    acted = guard.observe(loss, state.adversarial)
    metrics["spikes/total"] = torch.full((), float(guard.spikes), device=state.device)
    metrics["spikes/actions"] = torch.full((), float(guard.actions), device=state.device)
    if not acted:
        return
    if guard.actions > settings.spike_max_actions:
        raise LossSpikeError(
            f"the generator loss spiked {settings.spike_patience} steps in a row again at step {state.step} "
            f"(loss {loss:.4g}) after {settings.spike_max_actions} corrections; the run diverges: lower "
            "the learning rate, clip gradients harder or check the data (checkpoints/latest is the last good state)"
        )
    if settings.spike_action == "restore":
        try:
            payload, path = load_on_every_rank(state, run.run_dir)
        except CheckpointError as error:
            # no good checkpoint (on some rank): lowering the rate is what is left
            log.warning("cannot restore after loss spikes (%s); lowering the learning rates instead", error)
        else:
            step = state.step
            restore_state(state, payload)
            log.warning(
                "%d loss spikes in a row (last %.4g) at step %d: restored %s (step %d); data continues forward",
                settings.spike_patience,
                loss,
                step,
                path,
                state.step,
            )
            return
    scale_learning_rates(
        state.optimizers_g + state.optimizers_d,
        state.schedulers_g + state.schedulers_d,
        settings.spike_lr_factor,
    )
    log.warning(
        "%d loss spikes in a row (last %.4g) at step %d: learning rates multiplied by %g",
        settings.spike_patience,
        loss,
        state.step,
        settings.spike_lr_factor,
    )


def write_checkpoint(state: State, run: Run, tags: list[str], position: dict | None = None) -> None:
    """Rank 0 writes the run's checkpoint under ``tags``; the data position (``position``, else the
    stream's current one) travels with it."""
    if state.dist.is_main:
        trainer = {"tracker": run.tracker.state_dict() if run.tracker is not None else {}}
        if run.spike_guard is not None:
            trainer["spike_guard"] = run.spike_guard.state_dict()
        data = run.train_batches.state_dict() if position is None else position
        payload = state_payload(state, data, run.last_metrics, run.config, trainer)
        save_checkpoint(payload, run.run_dir, tags)
    if "latest" in tags:
        run.latest_step = state.step


def _format(values: dict[str, float]) -> str:
    return " ".join(f"{key}={value:.4g}" for key, value in sorted(values.items()))
