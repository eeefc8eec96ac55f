"""One training run from a config dict: check, build, resume or fine-tune, train, clean up."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import yaml

from gan_enhance.errors import ConfigError
from gan_enhance.train.builders import build_state, read_experiment, resolved_config
from gan_enhance.train.checkpoint import BestTracker, checkpoint_path, load_checkpoint, restore_state
from gan_enhance.train.data import build_loaders
from gan_enhance.train.distributed import init_distributed, shutdown
from gan_enhance.train.finetune import initialise_from
from gan_enhance.train.loop import BatchStream, FitResult, Run, fit
from gan_enhance.train.precision import configure_backends, seed_everything
from gan_enhance.train.writers import RunWriters

log = logging.getLogger("gan_enhance.train")
CONFIG_FILE = "config.yml"


def run_training(config: dict[str, Any], resume: bool = False) -> FitResult:
    """Train the run described by ``config`` (flat keys, see ``conf/``); with ``resume`` continue ``latest``.

    The config is checked completely before anything is built or written. Under ``torchrun`` every
    process calls this; rank 0 alone writes the run folder.
    """
    experiment = read_experiment(config)
    trainer = experiment.trainer
    run_dir = Path(experiment.runs_dir) / experiment.name
    latest = checkpoint_path(run_dir, "latest")
    if not resume and latest.is_file():
        raise ConfigError(
            f"{run_dir} already holds a run (checkpoints/latest); add --resume to continue it or set another name"
        )
    configure_backends(trainer.tf32, trainer.cudnn_benchmark, trainer.deterministic)
    dist = init_distributed(trainer.device)
    writers = None
    try:
        seed_everything(trainer.seed)
        state = build_state(experiment, dist)
        train_loader, val_loader = build_loaders(
            experiment.data, trainer.batch_size, trainer.num_workers, dist
        )
        writers = RunWriters(run_dir, enabled=dist.is_main)
        run = Run(
            run_dir=run_dir,
            train_batches=BatchStream(train_loader),
            val_batches=val_loader,
            sample_batch=_sample_batch(val_loader, trainer.num_samples) if trainer.sample_every else None,
            in_sample_rate=experiment.in_sample_rate,
            out_sample_rate=experiment.out_sample_rate,
            config=resolved_config(experiment, state),
            writers=writers,
            speech_quality=trainer.speech_metrics,
            tracker=BestTracker(trainer.best_metric, trainer.best_mode, trainer.early_stop_patience),
        )
        if resume:
            _resume(state, run, latest)
        elif experiment.finetune.checkpoint:
            initialise_from(state, experiment.finetune)
        if dist.is_main:
            run_dir.mkdir(parents=True, exist_ok=True)
            (run_dir / CONFIG_FILE).write_text(yaml.safe_dump(run.config, sort_keys=True))
            log.info("run folder %s (step %d of %d)", run_dir, state.step, trainer.max_steps)
        return fit(state, run)
    finally:
        if writers is not None:
            writers.close()
        shutdown(dist)


def _resume(state, run: Run, latest: Path) -> None:
    payload = load_checkpoint(latest)
    restore_state(state, payload)
    run.train_batches.load_state_dict(payload["data"])
    run.tracker.load_state_dict(payload["trainer"]["tracker"])
    run.last_metrics = dict(payload["metrics"])
    log.info("resumed %s at step %d", latest, state.step)


def _sample_batch(loader, count: int) -> dict | None:
    """The first ``count`` validation examples: the same clips in every sample log of the run."""
    for batch in loader:
        return {key: value[:count] for key, value in batch.items() if key in ("x", "y")}
    return None
