"""Loss-spike guard: repeated spikes of the generator loss lower the learning rate or restore ``latest``.

Non-finite steps are skipped by the step itself (``Trainer.max_nonfinite``); this guard watches the finite
ones. A step is a spike when its generator loss exceeds ``Trainer.spike_factor`` times the median of the
last ``Trainer.spike_window`` non-spike steps. After ``Trainer.spike_patience`` spikes in a row the loop
acts (``Trainer.spike_action``): ``lower_lr`` multiplies every learning rate by
``Trainer.spike_lr_factor`` (saved with the schedules, so a resumed run keeps it); ``restore`` reloads the
newest good checkpoint's weights, optimizers and schedules and keeps reading new data from where it is
(before the first checkpoint it lowers the learning rates instead).
The history restarts when the adversarial phase starts, since the loss changes scale there. After
``Trainer.spike_max_actions`` actions the run stops with :class:`LossSpikeError`: it keeps diverging.
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from typing import Any

from gan_enhance.errors import ConfigError, GanEnhanceError

ACTIONS = ("lower_lr", "restore")


class LossSpikeError(GanEnhanceError, RuntimeError):
    """The loss kept spiking after ``Trainer.spike_max_actions`` corrections: the run diverges."""


class SpikeGuard:
    """Counts generator-loss spikes and says when to act.

    Parameters
    ----------
    factor : float
        Spike threshold as a multiple of the recent median loss (> 1).
    window : int
        Recent non-spike losses kept for the median; the guard judges once a quarter of it is filled.
    patience : int
        Spikes in a row that call for action.
    """

    def __init__(self, factor: float, window: int, patience: int):
        if factor <= 1.0 or window < 4 or patience < 1:
            raise ConfigError(
                f"Trainer.spike_factor must be > 1 (got {factor}), spike_window >= 4 (got {window}) and "
                f"spike_patience >= 1 (got {patience}); spike_factor 0 turns the guard off"
            )
        self.factor, self.patience = factor, patience
        self.history: deque[float] = deque(maxlen=window)
        self.phase: bool | None = None
        self.in_a_row = 0
        self.spikes = 0
        self.actions = 0

    def observe(self, loss: float, adversarial: bool) -> bool:
        """Record one step's generator loss; True when ``patience`` spikes in a row call for action."""
        if adversarial != self.phase:
            self.history.clear()
            self.phase, self.in_a_row = adversarial, 0
        if not math.isfinite(loss):
            return False
        ready = len(self.history) >= self.history.maxlen // 4
        if ready and loss > self.factor * statistics.median(self.history):
            self.spikes += 1
            self.in_a_row += 1
            if self.in_a_row >= self.patience:
                self.in_a_row = 0
                self.actions += 1
                return True
            return False
        self.in_a_row = 0
        self.history.append(loss)
        return False

    def state_dict(self) -> dict[str, Any]:
        return {
            "history": list(self.history),
            "phase": self.phase,
            "in_a_row": self.in_a_row,
            "spikes": self.spikes,
            "actions": self.actions,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.history.clear()
        self.history.extend(float(value) for value in state["history"])
        self.phase = state["phase"]
        self.in_a_row, self.spikes, self.actions = state["in_a_row"], state["spikes"], state["actions"]


def spike_guard(settings: Any) -> SpikeGuard | None:
    """The guard ``settings`` (``TrainerSettings``) ask for, its values checked; None when it is off."""
    if not settings.spike_factor:
        return None
    if settings.spike_action not in ACTIONS:
        raise ConfigError(
            f"Trainer.spike_action is {settings.spike_action!r}; use one of {', '.join(ACTIONS)}"
        )
    if settings.spike_max_actions < 1:
        raise ConfigError(f"Trainer.spike_max_actions must be >= 1, got {settings.spike_max_actions}")
    if not 0 < settings.spike_lr_factor < 1:
        raise ConfigError(f"Trainer.spike_lr_factor must be in (0, 1), got {settings.spike_lr_factor}")
    return SpikeGuard(settings.spike_factor, settings.spike_window, settings.spike_patience)


def scale_learning_rates(optimizers: list, schedulers: list, factor: float) -> None:
    """Multiply the current and the scheduled learning rates of every optimizer by ``factor``."""
    for optimizer in optimizers:
        for group in optimizer.param_groups:
            group["lr"] *= factor
            if "initial_lr" in group:
                group["initial_lr"] *= factor
    for scheduler in schedulers:
        scheduler.base_lrs = [rate * factor for rate in scheduler.base_lrs]
