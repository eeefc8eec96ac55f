"""Exponential moving average of the generator's weights (validated, exported when present)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn


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
    """``torch.optim.swa_utils.AveragedModel`` with an EMA rule, a start step and an update period.

    Buffers are averaged too, so a generator with running statistics stays consistent.
    """

    def __init__(self, generator: nn.Module, settings: EMASettings):
        self.settings = settings
        device = next(generator.parameters()).device
        self.average = AveragedModel(
            generator, device=device, multi_avg_fn=get_ema_multi_avg_fn(settings.decay), use_buffers=True
        ).eval()
        self.average.requires_grad_(False)

    @property
    def updated(self) -> bool:
        """Whether the average holds at least one update (before that it is only the initial weights)."""
        return bool(self.average.n_averaged > 0)

    @property
    def module(self) -> nn.Module:
        """The averaged generator (same class and state-dict keys as the trained one)."""
        return self.average.module

    @torch.no_grad()
    def update(self, generator: nn.Module, step: int) -> None:
        """Fold ``generator``'s current weights into the average if ``step`` is an update step."""
        if step < self.settings.start_step or (step - self.settings.start_step) % self.settings.every:
            return
        self.average.update_parameters(generator)

    def state_dict(self) -> dict:
        """``{"weights": generator state dict, "updates": number of updates so far}``."""
        return {"weights": self.module.state_dict(), "updates": self.average.n_averaged.clone()}

    def load_state_dict(self, state: dict) -> None:
        self.module.load_state_dict(state["weights"])
        self.average.n_averaged.copy_(state["updates"])
