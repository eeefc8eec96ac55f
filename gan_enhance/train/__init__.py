"""Adversarial training: state, optimizers, schedules, EMA, the step, the loop, checkpoints and logs.

The command-line entry (``gan-enhance train``) binds the config and calls :func:`run_training`.
"""

from gan_enhance.train.checkpoint import load_checkpoint, save_checkpoint
from gan_enhance.train.loop import BatchStream, FitResult, Run, fit
from gan_enhance.train.run import run_training
from gan_enhance.train.state import LossSet, NonFiniteLossError, State, TrainerSettings
from gan_enhance.train.step import train_step
from gan_enhance.train.validate import save_samples, validate

__all__ = [
    "BatchStream",
    "FitResult",
    "LossSet",
    "NonFiniteLossError",
    "Run",
    "State",
    "TrainerSettings",
    "fit",
    "load_checkpoint",
    "save_checkpoint",
    "run_training",
    "save_samples",
    "train_step",
    "validate",
]
