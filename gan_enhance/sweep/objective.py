"""One trial: the base config with the trial's values, trained as an ordinary run under the sweep folder.

A trial's run folder is ``<sweep>/trials/trial_<NNNN>`` (config.yml, logs, checkpoints, samples), so it can
be resumed, fine-tuned from or exported like any run. The objective is the best value of the sweep's
metric over the trial's validations within its step budget (``Trainer.max_steps``); the trial's
``best`` checkpoint is kept by that metric. After each validation the value is reported to Optuna and the
pruner may stop the trial there.

A retried trial (its worker died, or was stopped by a signal) keeps the folder of the trial it retries and
resumes from its ``checkpoints/latest``.
"""

from __future__ import annotations

import logging
import math
import os
import socket
from pathlib import Path
from typing import Any

from gan_enhance.errors import ConfigError
from gan_enhance.sweep.space import parse_space, suggest
from gan_enhance.sweep.study import SweepSettings, stable_enough
from gan_enhance.train.guard import LossSpikeError
from gan_enhance.train.state import NonFiniteLossError

log = logging.getLogger("gan_enhance.sweep")
TRIALS_DIR = "trials"
# Errors that end a trial as failed while the sweep goes on (the trial's values make training diverge).
DIVERGED = (LossSpikeError, NonFiniteLossError)


class TrialInterrupted(Exception):
    """A signal (SIGTERM, SIGINT) stopped the trial's run after it wrote ``checkpoints/latest``."""

    def __init__(self, signal_number: int, run_dir: Path):
        super().__init__(f"signal {signal_number} stopped the trial in {run_dir}")
        self.signal_number = signal_number


def trial_run_name(number: int) -> str:
    return f"trial_{number:04d}"


def best_mode(direction: str) -> str:
    return "max" if direction == "maximize" else "min"


def check_base(base: dict[str, Any], metric: str, direction: str) -> None:
    """A base config a sweep can use: it validates (at least at its last step), and validation computes
    ``metric`` (the trainer's own check of ``Trainer.best_metric``, which each trial sets to it)."""
    from gan_enhance.train.builders import read_experiment
    from gan_enhance.train.preflight import check_validation_metrics

    trainer = read_experiment(base).trainer
    if trainer.valid_every <= 0:
        raise ConfigError("a sweep needs Trainer.valid_every > 0: trials are scored on their validations")
    scored = read_experiment(
        {**base, "Trainer.best_metric": metric, "Trainer.best_mode": best_mode(direction)}
    )
    try:
        check_validation_metrics(scored.trainer)
    except ConfigError as error:
        raise ConfigError(f"--metric {metric} --direction {direction}: {error}") from None


def trial_config(settings: SweepSettings, overrides: dict[str, Any], sweep_dir: Path, name: str) -> dict:
    """The trial's run config: base, the trial's values, its run folder, ``best`` kept by the metric."""
    from gan_enhance.train.config import merge_config

    config = merge_config(settings.base, overrides)
    config.update(
        {
            "name": name,
            "runs_dir": str(Path(sweep_dir) / TRIALS_DIR),
            "Trainer.best_metric": settings.metric,
            "Trainer.best_mode": best_mode(settings.direction),
        }
    )
    return config


def _frozen(study, trial):
    return next(t for t in study.get_trials(deepcopy=False) if t.number == trial.number)


def run_number(frozen) -> int:
    """The number whose folder a trial trains in: the first trial of its retry chain."""
    from optuna.storages import RetryHeartbeatStaleTrialCallback

    with stable_enough():
        original = RetryHeartbeatStaleTrialCallback.retried_trial_number(frozen)
    return frozen.number if original is None else int(original)


class _Reporter:
    """``on_validation`` for run_training: report the metric, ask the pruner, remember a prune."""

    def __init__(self, trial, metric: str, reported: set[int]):
        self.trial, self.metric, self.reported = trial, metric, reported
        self.pruned_at: int | None = None

    def __call__(self, step: int, metrics: dict[str, float]) -> bool:
        value = metrics.get(self.metric)
        # A missing metric: the trainer's best tracker names the known ones. A step the retried trial
        # already reported (a resumed run validates again at its checkpoint's step): judged already.
        if value is None or step in self.reported:
            return False
        self.trial.report(float(value), step)
        if self.trial.should_prune():
            self.pruned_at = step
            log.info("trial %d pruned at step %d (%s %.4g)", self.trial.number, step, self.metric, value)
            return True
        return False


class TrialRunner:
    """The Optuna objective of a sweep: ``runner(trial) -> objective value``.

    Parameters
    ----------
    study : optuna.Study
        The study the trials belong to (to find a retried trial's original).
    settings : SweepSettings
    sweep_dir : str or Path
        Trial run folders go under ``<sweep_dir>/trials``.
    channel : TrialChannel, optional
        Under torchrun, how rank 0 hands each trial to the other ranks (:mod:`gan_enhance.sweep.launch`).
    """

    def __init__(self, study, settings: SweepSettings, sweep_dir: str | Path, channel=None):
        self.study, self.settings, self.sweep_dir = study, settings, Path(sweep_dir)
        self.channel = channel
        self.space = parse_space(settings.space)
        self.last_number: int | None = None

    def __call__(self, trial) -> float:
        import optuna

        from gan_enhance.train.checkpoint import checkpoint_path
        from gan_enhance.train.run import run_training

        overrides = suggest(trial, self.space)
        frozen = _frozen(self.study, trial)
        name = trial_run_name(run_number(frozen))
        config = trial_config(self.settings, overrides, self.sweep_dir, name)
        run_dir = Path(config["runs_dir"]) / name
        resume = checkpoint_path(run_dir, "latest").is_file()
        trial.set_user_attr("run_dir", str(run_dir))
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        log.info(
            "trial %d%s in %s: %s",
            trial.number,
            " (resuming)" if resume else "",
            run_dir,
            ", ".join(f"{k}={v}" for k, v in overrides.items()),
        )
        reporter = _Reporter(trial, self.settings.metric, set(frozen.intermediate_values))
        self.last_number = trial.number
        if self.channel is not None:  # the other torchrun ranks train it with this one
            self.channel.announce_trial(config, resume)
        try:
            result = run_training(config, resume=resume, on_validation=reporter)
        except DIVERGED as error:
            # A diverged trial is an answer (these values do not train), not a fault to retry.
            trial.set_user_attr("failure", str(error).splitlines()[0])
            raise
        trial.set_user_attr("steps", int(result.step))
        if result.interrupted:
            raise TrialInterrupted(result.interrupted, run_dir)
        if reporter.pruned_at is not None:
            raise optuna.TrialPruned(f"pruned at step {reporter.pruned_at}")
        if result.best is None or not math.isfinite(result.best):
            # NaN validations leave no best: these values diverge, as a non-finite training loss does.
            message = f"{self.settings.metric} had no finite validation value in {run_dir}"
            trial.set_user_attr("failure", message)
            raise NonFiniteLossError(message)
        return float(result.best)
