"""One training run from a config dict: check, build, resume or fine-tune, train, clean up."""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from gan_enhance.atomic import write_text
from gan_enhance.data.datasets import BadFileLog
from gan_enhance.errors import ConfigError
from gan_enhance.train.builders import build_state, read_experiment, resolved_config
from gan_enhance.train.checkpoint import (
    BestTracker,
    checkpoint_path,
    load_on_every_rank,
    restore_state,
)
from gan_enhance.train.data import build_loaders
from gan_enhance.train.distributed import init_distributed, shutdown
from gan_enhance.train.finetune import initialise_from
from gan_enhance.train.guard import SpikeGuard, spike_guard
from gan_enhance.train.loop import BatchStream, FitResult, Run, fit
from gan_enhance.train.precision import configure_backends, seed_everything
from gan_enhance.train.preflight import check_run, log_data_summary
from gan_enhance.train.writers import RunWriters

log = logging.getLogger("gan_enhance.train")
CONFIG_FILE = "config.yml"
LOG_FILE = "train.log"
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"  # as `gan-enhance train` prints them
LOG_DATE_FORMAT = "%Y-%m-%d %H:%M:%S"


def run_training(
    config: dict[str, Any],
    resume: bool = False,
    on_validation: Callable[[int, dict[str, float]], bool] | None = None,
) -> FitResult:
    """Train the run described by ``config`` (flat keys, see ``conf/``); with ``resume`` continue ``latest``.

    The config is checked completely before anything is built or written. Under ``torchrun`` every
    process calls this; rank 0 alone writes the run folder. ``on_validation(step, metrics)`` is called on
    rank 0 after each validation; returning True stops the run there (``FitResult.stopped_early``).

    Rank 0 appends every log record of the run to ``<run>/train.log`` (what the console shows, with time
    stamps, and the traceback of an error that ends the run); ``--resume`` adds to the same file.
    """
    experiment = read_experiment(config)
    check_run(experiment, load_models=False)
    trainer = experiment.trainer
    run_dir = Path(experiment.runs_dir) / experiment.name
    latest = checkpoint_path(run_dir, "latest")
    if not resume and latest.is_file():
        raise ConfigError(
            f"{run_dir} already holds a run (checkpoints/latest); add --resume to continue it or set another name"
        )
    configure_backends(trainer.tf32, trainer.cudnn_benchmark, trainer.deterministic, trainer.threads)
    dist = init_distributed(trainer.device, trainer.dist_timeout_minutes)
    writers = log_file = None
    try:
        if dist.is_main and (run_dir.is_dir() or not resume):  # no folder for a --resume of nothing
            log_file = open_log_file(run_dir)
        seed_everything(trainer.seed)
        state = build_state(experiment, dist)
        train_loader, val_loader = build_loaders(
            experiment.data, trainer.batch_size, trainer.num_workers, dist
        )
        train_batches = BatchStream(
            train_loader, BadFileLog(train_loader.dataset.file_count, experiment.data.settings.max_bad_share)
        )
        tracker = BestTracker(trainer.best_metric, trainer.best_mode, trainer.early_stop_patience)
        guard = spike_guard(trainer)
        last_metrics: dict[str, float] = {}
        if resume:
            last_metrics = _resume(state, train_batches, tracker, guard, run_dir)
        elif experiment.finetune.checkpoint:
            initialise_from(state, experiment.finetune)
        writers = RunWriters(run_dir, enabled=dist.is_main, purge_step=state.step + 1 if resume else 0)
        run = Run(
            run_dir=run_dir,
            train_batches=train_batches,
            val_batches=val_loader,
            sample_batch=_sample_batch(val_loader, trainer.num_samples) if trainer.sample_every else None,
            in_sample_rate=experiment.in_sample_rate,
            out_sample_rate=experiment.out_sample_rate,
            config=resolved_config(experiment, state),
            writers=writers,
            speech_quality=trainer.speech_metrics,
            metric_names=list(trainer.quality_metrics),
            tracker=tracker,
            last_metrics=last_metrics,
            spike_guard=guard,
            on_validation=on_validation,
        )
        if dist.is_main:
            run_dir.mkdir(parents=True, exist_ok=True)
            write_text(run_dir / CONFIG_FILE, yaml.safe_dump(run.config, sort_keys=True))
            log.info("run folder %s (step %d of %d)", run_dir, state.step, trainer.max_steps)
            log_data_summary(experiment, train_loader.dataset, val_loader.dataset)
            writers.config(run.config, state.step)
        result = fit(state, run)
        log.info("training ended at step %d (%s)", result.step, _ending(result))
        return result
    except BaseException as error:
        if log_file is not None:
            _record_error(log_file, error)
        raise
    finally:
        if writers is not None:
            writers.close()
        if log_file is not None:
            logging.getLogger().removeHandler(log_file)
            log_file.close()
        shutdown(dist)


def open_log_file(run_dir: Path) -> logging.FileHandler:
    """Send every log record (root logger) to ``run_dir/train.log`` too, appending; the caller removes it.

    It records what the loggers emit at their configured levels, so the file holds what the console shows.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(run_dir / LOG_FILE, mode="a", encoding="utf-8")
    handler.setFormatter(logging.Formatter(LOG_FORMAT, LOG_DATE_FORMAT))
    logging.getLogger().addHandler(handler)
    return handler


def _record_error(handler: logging.Handler, error: BaseException) -> None:
    """Write the error that ends the run, with its traceback, to the log file only (the console gets it
    from the interpreter already)."""
    record = log.makeRecord(
        log.name,
        logging.ERROR,
        __file__,
        0,
        "training stopped by %s: %s",
        (type(error).__name__, error),
        (type(error), error, error.__traceback__),
    )
    handler.handle(record)


def _ending(result: FitResult) -> str:
    if result.interrupted:
        return f"stopped by {signal.Signals(result.interrupted).name}; continue with --resume"
    return "early stop" if result.stopped_early else "finished"


def _resume(
    state, batches: BatchStream, tracker: BestTracker, guard: SpikeGuard | None, run_dir: Path
) -> dict[str, float]:
    """Restore the newest usable checkpoint into ``state``, the data position, the best tracker and the
    spike guard; returns the checkpoint's last validation metrics."""
    payload, path = load_on_every_rank(state, run_dir)
    restore_state(state, payload)
    batches.load_state_dict(payload["data"])
    tracker.load_state_dict(payload["trainer"]["tracker"])
    if guard is not None and "spike_guard" in payload["trainer"]:
        guard.load_state_dict(payload["trainer"]["spike_guard"])
    log.info("resumed %s at step %d", path, state.step)
    return dict(payload["metrics"])


def _sample_batch(loader, count: int) -> dict | None:
    """The first ``count`` validation examples: the same clips in every sample log of the run."""
    for batch in loader:
        return {key: value[:count] for key, value in batch.items() if key in ("x", "y")}
    return None
