"""Exponential moving average of the generator's weights (validated, exported when present)."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from gan_enhance.errors import ConfigError


@dataclass
class EMASettings:
    """EMA of the generator (config prefix ``EMA.``).

    Parameters
    ----------
    decay : float
        Weight of the running average per update (audiocraft 0.99); 0 turns EMA off.
    start_step : int
        First step that updates the average; the first update copies the weights.
    every : int
        Update every this many steps (an update costs one pass over the parameters).
    """

    decay: float = 0.0
    start_step: int = 0
    every: int = 1


class GeneratorEMA:
    """A copy of the generator whose weights follow the trained ones: the first update copies them, each
    later one moves every floating-point parameter and buffer ``1 - decay`` of the way (``lerp``, as
    ``torch.optim.swa_utils``' EMA rule), and copies other buffers.

    The update count is a Python number, so an update costs no host-device sync (torch's
    ``AveragedModel`` tests a device counter in Python at every update, a GPU stall each step), and the
    floating-point parameters and buffers are updated in one ``_foreach_lerp_`` call.
    """

    def __init__(self, generator: nn.Module, settings: EMASettings):
        if not 0.0 < settings.decay <= 1.0 or settings.every < 1:
            raise ConfigError(
                f"EMA.decay must be in (0, 1] and EMA.every >= 1, got {settings.decay} and {settings.every}"
            )
        self.settings = settings
        self.module = copy.deepcopy(generator).eval().requires_grad_(False)
        self.updates = 0

    @property
    def updated(self) -> bool:
        """Whether the average holds at least one update (before that it is only the initial weights)."""
        return self.updates > 0

    @torch.no_grad()
    def update(self, generator: nn.Module, step: int) -> None:
        """Fold ``generator``'s current weights into the average if ``step`` is an update step."""
        if step < self.settings.start_step or (step - self.settings.start_step) % self.settings.every:
            return
        averages = [*self.module.parameters(), *self.module.buffers()]
        currents = [tensor.detach() for tensor in (*generator.parameters(), *generator.buffers())]
        if len(averages) != len(currents):
            raise ValueError("the EMA copy and the generator have different parameters")
        if self.updates == 0:
            torch._foreach_copy_(averages, currents)
        else:
            floating = [a.is_floating_point() or a.is_complex() for a in averages]
            pairs = [(a, c) for a, c, f in zip(averages, currents, floating) if f]
            if pairs:
                torch._foreach_lerp_([a for a, _ in pairs], [c for _, c in pairs], 1.0 - self.settings.decay)
            for average, current, is_float in zip(averages, currents, floating):
                if not is_float:  # counters and masks: the newest value
                    average.copy_(current)
        self.updates += 1

    def state_dict(self) -> dict:
        """``{"weights": generator state dict, "updates": number of updates so far}`` (a 0-dim tensor)."""
        updates = torch.tensor(self.updates, dtype=torch.long, device="cpu")  # read back with int()
        return {"weights": self.module.state_dict(), "updates": updates}

    def load_state_dict(self, state: dict) -> None:
        self.module.load_state_dict(state["weights"])
        self.updates = int(state["updates"])
