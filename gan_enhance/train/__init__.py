"""Adversarial training: state, optimizers, schedules, EMA, the step, the loop, checkpoints and logs.

The command-line entry (``gan-enhance train``) binds the config and calls :func:`run_training`. The names
below load on first use, so ``gan_enhance.train.binding`` (what ``train --help`` prints) imports no torch.
"""

from importlib import import_module

_EXPORTS = {
    "BatchStream": "loop",
    "FitResult": "loop",
    "LossSet": "state",
    "NonFiniteLossError": "state",
    "Run": "loop",
    "State": "state",
    "TrainerSettings": "state",
    "fit": "loop",
    "load_checkpoint": "checkpoint",
    "save_checkpoint": "checkpoint",
    "run_training": "run",
    "save_samples": "validate",
    "train_step": "step",
    "validate": "validate",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
