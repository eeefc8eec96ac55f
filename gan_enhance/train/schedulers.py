"""Learning-rate schedules per step: linear warm-up, then exponential decay (DAC/BigVGAN) or cosine.

A schedule is a closed-form factor of the step, run by ``torch.optim.lr_scheduler.LambdaLR``; its state is
plain numbers, so it round-trips through a ``weights_only`` checkpoint.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch.optim.lr_scheduler import LambdaLR

from gan_enhance.errors import ConfigError

SCHEDULE_KINDS = ("exponential", "cosine", "constant")


@dataclass
class SchedulerSettings:
    """A learning-rate schedule (config prefix ``Scheduler.``, or ``generator/Scheduler.`` to scope it).

    Parameters
    ----------
    kind : str
        ``"exponential"`` (``gamma ** step``), ``"cosine"`` (from 1 to ``min_ratio`` over ``total_steps``)
        or ``"constant"``.
    gamma : float
        Per-step decay of the exponential schedule (DAC 0.999996, BigVGAN v2 0.9999996).
    warmup_steps : int
        Linear warm-up from ``1 / warmup_steps`` to 1 over this many steps (0: none).
    total_steps : int
        Length of the cosine schedule, warm-up included (0: ``Trainer.max_steps``).
    min_ratio : float
        Final learning rate of the cosine schedule as a fraction of the initial one.
    """

    kind: str = "exponential"
    gamma: float = 0.999996
    warmup_steps: int = 0
    total_steps: int = 0
    min_ratio: float = 0.0


class ScheduleFactor:
    """The multiplier of the initial learning rate at a step (a plain object so LambdaLR can save it)."""

    def __init__(self, kind: str, gamma: float, warmup_steps: int, total_steps: int, min_ratio: float):
        if kind not in SCHEDULE_KINDS:
            raise ConfigError(f"Scheduler.kind is {kind!r}; use one of {', '.join(SCHEDULE_KINDS)}")
        if kind == "cosine" and total_steps <= warmup_steps:
            raise ConfigError(
                f"Scheduler.total_steps ({total_steps}) must exceed Scheduler.warmup_steps ({warmup_steps})"
            )
        self.kind = kind
        self.gamma = gamma
        self.warmup_steps = warmup_steps
        self.total_steps = total_steps
        self.min_ratio = min_ratio

    def __call__(self, step: int) -> float:
        warmup = min(1.0, (step + 1) / self.warmup_steps) if self.warmup_steps > 0 else 1.0
        if self.kind == "exponential":
            return warmup * self.gamma**step
        if self.kind == "cosine":
            progress = min(1.0, max(0, step - self.warmup_steps) / (self.total_steps - self.warmup_steps))
            cosine = 0.5 * (1.0 + math.cos(math.pi * progress))
            return warmup * (self.min_ratio + (1.0 - self.min_ratio) * cosine)
        return warmup


class StepSchedule(LambdaLR):
    """``LambdaLR`` whose saved state is the position only: the shape of the schedule always comes from
    the current config, so a resumed run that extends ``max_steps`` stretches its cosine accordingly."""

    def state_dict(self) -> dict:
        state = super().state_dict()
        state.pop("lr_lambdas", None)
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        state = dict(state_dict)
        state.pop("lr_lambdas", None)
        self.__dict__.update(state)


def build_schedulers(
    optimizers: list[torch.optim.Optimizer], settings: SchedulerSettings, max_steps: int
) -> list[LambdaLR]:
    """One schedule per optimizer, all following the same factor (Muon and AdamW keep their own lr)."""
    total = settings.total_steps or max_steps
    factor = ScheduleFactor(settings.kind, settings.gamma, settings.warmup_steps, total, settings.min_ratio)
    return [StepSchedule(optimizer, factor) for optimizer in optimizers]
