"""Each loss's gradient at the generator output: measured shares, and an optional EnCodec-style balancer.

The generator's losses meet at one tensor, its output ``y_hat``. The gradient each weighted loss sends
there says how much of the update it drives, whatever its scale or how many terms it averages.
:func:`loss_gradients` measures them (the step logs their shares as ``grad/<loss key>``, and their norms
as ``grad_norm/<loss key>``, every ``Trainer.log_every`` steps), and :class:`GradientBalancer` (EnCodec's
"balancer", ``Trainer.balancer``) replaces the weighted sum: each loss's gradient is divided by a running
average of its norm, so ``lambdas`` become the shares of the gradient each loss gets, and the summed
gradient has the norm ``Trainer.balancer_total_norm``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from gan_enhance.train.distributed import DistInfo, mean_over_ranks


def loss_gradients(losses: dict[str, Tensor], keys: list[str], y_hat: Tensor) -> dict[str, Tensor]:
    """``d losses[k] / d y_hat`` (float32, unweighted) for each of ``keys``; the graphs are kept for the
    update's own backward. A loss that does not reach ``y_hat`` gets a zero gradient."""
    gradients = {}
    for key in keys:
        (gradient,) = torch.autograd.grad(losses[key], y_hat, retain_graph=True, allow_unused=True)
        gradients[key] = (
            torch.zeros_like(y_hat, dtype=torch.float32) if gradient is None else gradient.float()
        )
    return gradients


def gradient_shares(gradients: dict[str, Tensor], weights: dict[str, Any]) -> dict[str, Tensor]:
    """``grad/<key>``: each weighted loss's share of the summed gradient norms (they add up to 1), and
    ``grad_norm/<key>``: the norm of its weighted gradient at the generator output.

    ``weights``: what each gradient is multiplied by (``lambdas``, or the balancer's factors).
    """
    norms = {key: weights[key] * gradient.norm() for key, gradient in gradients.items()}
    total = torch.stack(list(norms.values())).sum().clamp_min(torch.finfo(torch.float32).tiny)
    shares = {f"grad/{key}": (norm / total).detach() for key, norm in norms.items()}
    return {**shares, **{f"grad_norm/{key}": norm.detach() for key, norm in norms.items()}}


class GradientBalancer:
    """EnCodec's loss balancer: the gradient at the generator output is ``total_norm * sum_k (w_k / sum w)
    * g_k / avg|g_k|`` instead of ``sum_k w_k g_k``.

    ``avg|g_k|`` is a bias-corrected exponential moving average of the per-example norm of loss ``k``'s
    gradient (averaged over ranks, so every rank scales alike). A loss whose weight is 0 gets no gradient.

    Parameters
    ----------
    weights : dict[str, float]
        ``lambdas``: each loss's share of the gradient (relative to the others present at a step).
    total_norm : float
        Norm (per example) of the balanced gradient.
    decay : float
        EMA decay of the gradient norms (EnCodec: 0.999).
    device : torch.device
        Where the running averages live (the training device).
    eps : float
        Added to the averaged norm.

    With ``Trainer.grad_accum`` > 1 the averages advance once per micro-batch.
    """

    def __init__(
        self,
        weights: dict[str, float],
        total_norm: float,
        decay: float,
        device: torch.device,
        eps: float = 1e-12,
    ):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"the balancer's decay must be in [0, 1), got {decay}")
        self.weights = {key: value for key, value in weights.items() if value > 0}
        self.total_norm, self.decay, self.eps = total_norm, decay, eps
        self.device = device
        self.sums: dict[str, Tensor] = {}
        self.counts: dict[str, Tensor] = {}

    def keys(self, losses: dict[str, Tensor]) -> list[str]:
        """The losses of a step that the balancer weighs."""
        return [key for key in losses if key in self.weights]

    def __call__(self, gradients: dict[str, Tensor], dist: DistInfo) -> tuple[Tensor, dict[str, Tensor]]:
        """The balanced gradient at ``y_hat`` from each loss's own gradient (see :func:`loss_gradients`),
        and the factor each loss's gradient was multiplied by."""
        norms = mean_over_ranks(
            {key: _per_example_norm(gradient) for key, gradient in gradients.items()}, dist
        )
        total_weight = sum(self.weights[key] for key in gradients)
        scales = {
            key: self.total_norm
            * self.weights[key]
            / total_weight
            / (self._average(key, norms[key]) + self.eps)
            for key in gradients
        }
        balanced = torch.stack([gradients[key] * scales[key] for key in gradients]).sum(0)
        return balanced, scales

    def _average(self, key: str, norm: Tensor) -> Tensor:
        """The running average with ``norm`` folded in, unless it is not finite: such a step is skipped by
        the trainer, and one inf or NaN must not switch a loss off (or break every later step) for good."""
        if key not in self.sums:
            self.sums[key] = torch.zeros((), device=self.device)
            self.counts[key] = torch.zeros((), device=self.device)
        finite = torch.isfinite(norm)
        norm = torch.where(finite, norm.detach(), torch.zeros_like(norm))
        self.sums[key] = torch.where(finite, self.sums[key] * self.decay + norm, self.sums[key])
        self.counts[key] = torch.where(finite, self.counts[key] * self.decay + 1.0, self.counts[key])
        return self.sums[key] / self.counts[key].clamp_min(1e-12)

    def state_dict(self) -> dict[str, Any]:
        return {"sums": dict(self.sums), "counts": dict(self.counts)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.sums = {key: value.to(self.device) for key, value in state["sums"].items()}
        self.counts = {key: value.to(self.device) for key, value in state["counts"].items()}


def _per_example_norm(gradient: Tensor) -> Tensor:
    """Mean over the batch of each example's gradient norm (the scale does not depend on the batch size)."""
    return gradient.flatten(1).norm(dim=1).mean()
