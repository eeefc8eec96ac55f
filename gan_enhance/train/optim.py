"""Optimizers: AdamW with no decay on biases and norms, and Muon for conv/linear weights as matrices.

The project author found Muon (lr 1e-2) on every conv and linear weight matrix, with AdamW (lr 1e-3) on the
remaining parameters, better than AdamW alone. ``torch.optim.Muon`` accepts 2-D parameters only, so
:class:`MatrixMuon` runs the same update on a 2-D view ``(out, in * kernel)`` of each conv kernel.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.optim._muon import DEFAULT_A, DEFAULT_B, DEFAULT_C, EPS, muon

from gan_enhance.errors import ConfigError

OPTIMIZER_KINDS = ("adamw", "muon")
# Modules whose weight is a matrix (a conv kernel flattened over input channels and taps).
MATRIX_MODULES = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d)
NORM_MODULES = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)
# Weight-norm keeps the direction in "original1" (its gain "original0" is a per-channel vector);
# spectral norm keeps the raw weight in "original".
WEIGHT_NAMES = ("weight", "parametrizations.weight.original1", "parametrizations.weight.original")


@dataclass
class OptimizerSettings:
    """One model's optimizer (config prefix ``Optimizer.``, or ``generator/Optimizer.`` to scope it).

    Parameters
    ----------
    kind : str
        ``"adamw"``, or ``"muon"`` (Muon on conv/linear weight matrices, AdamW on the rest).
    lr : float
        AdamW learning rate.
    betas : list[float]
        AdamW (beta1, beta2).
    eps : float
        AdamW epsilon.
    weight_decay : float
        Decoupled weight decay for matrices; biases, norm parameters and gains never decay.
    muon_lr : float
        Muon learning rate (before Muon's shape adjustment).
    muon_momentum : float
        Muon momentum.
    muon_nesterov : bool
        Nesterov momentum in Muon.
    muon_weight_decay : float
        Muon's decoupled weight decay.
    muon_ns_steps : int
        Newton-Schulz iterations.
    muon_adjust_lr : str
        ``"original"`` (Keller Jordan's sqrt(max(1, A/B))) or ``"match_rms_adamw"``.
    """

    kind: str = "adamw"
    lr: float = 1e-4
    betas: list[float] = field(default_factory=lambda: [0.8, 0.99])
    eps: float = 1e-8
    weight_decay: float = 0.0
    muon_lr: float = 1e-2
    muon_momentum: float = 0.95
    muon_nesterov: bool = True
    muon_weight_decay: float = 0.0
    muon_ns_steps: int = 5
    muon_adjust_lr: str = "original"


class MatrixMuon(torch.optim.Muon):
    """``torch.optim.Muon`` applied to a 2-D view ``(shape[0], -1)`` of each parameter.

    Every parameter must have at least two dimensions; the momentum buffer is kept in the 2-D shape.
    The update itself is torch's functional ``muon``.
    """

    def __init__(
        self,
        params: Any,
        lr: float,
        weight_decay: float,
        momentum: float,
        nesterov: bool,
        ns_steps: int,
        adjust_lr_fn: str,
    ):
        defaults = {
            "lr": lr,
            "weight_decay": weight_decay,
            "momentum": momentum,
            "nesterov": nesterov,
            "ns_coefficients": (DEFAULT_A, DEFAULT_B, DEFAULT_C),
            "eps": EPS,
            "ns_steps": ns_steps,
            "adjust_lr_fn": adjust_lr_fn,
        }
        # Skip Muon.__init__, whose only extra work is refusing parameters that are not 2-D.
        torch.optim.Optimizer.__init__(self, params, defaults)
        for group in self.param_groups:
            for parameter in group["params"]:
                if parameter.ndim < 2:
                    raise ValueError(
                        f"MatrixMuon needs parameters with >= 2 dims, got {tuple(parameter.shape)}"
                    )

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params, grads, buffers = [], [], []
            for parameter in group["params"]:
                if parameter.grad is None:
                    continue
                matrix = parameter.view(parameter.shape[0], -1)
                state = self.state[parameter]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(matrix)
                params.append(matrix)
                grads.append(parameter.grad.reshape(matrix.shape))
                buffers.append(state["momentum_buffer"])
            muon(
                params,
                grads,
                buffers,
                lr=group["lr"],
                weight_decay=group["weight_decay"],
                momentum=group["momentum"],
                nesterov=group["nesterov"],
                ns_coefficients=group["ns_coefficients"],
                eps=group["eps"],
                ns_steps=group["ns_steps"],
                adjust_lr_fn=group["adjust_lr_fn"],
                has_complex=False,
            )
        return loss


def split_parameters(model: nn.Module) -> dict[str, list[nn.Parameter]]:
    """Sort ``model``'s trainable parameters into ``matrix``, ``decay`` and ``no_decay``.

    ``matrix``: conv/linear weights whose 2-D view has both sides > 1 (Muon candidates; they decay
    under AdamW). ``no_decay``: biases, norm parameters, weight-norm gains and every other parameter
    with fewer than 2 dimensions. ``decay``: what is left (e.g. a learned 2-D embedding).
    """
    groups: dict[str, list[nn.Parameter]] = {"matrix": [], "decay": [], "no_decay": []}
    seen: set[int] = set()
    for module in model.modules():
        for name, parameter in module.named_parameters(recurse=False):
            _assign(groups, seen, parameter, _kind(module, name, parameter))
        # Weight-norm parametrizations hold their tensors in a child module; name them from the owner.
        parametrizations = getattr(module, "parametrizations", None)
        if parametrizations is not None:
            for tensor_name, holder in parametrizations.items():
                for name, parameter in holder.named_parameters(recurse=False):
                    full = f"parametrizations.{tensor_name}.{name}"
                    _assign(groups, seen, parameter, _kind(module, full, parameter))
    return groups


def _assign(groups: dict, seen: set[int], parameter: nn.Parameter, kind: str) -> None:
    if id(parameter) in seen or not parameter.requires_grad:
        return
    seen.add(id(parameter))
    groups[kind].append(parameter)


def _kind(module: nn.Module, name: str, parameter: nn.Parameter) -> str:
    if isinstance(module, MATRIX_MODULES) and name in WEIGHT_NAMES:
        if parameter.ndim >= 2 and parameter.shape[0] > 1 and parameter[0].numel() > 1:
            return "matrix"
    if parameter.ndim < 2 or isinstance(module, NORM_MODULES) or name.endswith("bias"):
        return "no_decay"
    if name.endswith("original0"):
        return "no_decay"
    return "decay"


def build_optimizers(model: nn.Module, settings: OptimizerSettings) -> list[torch.optim.Optimizer]:
    """The optimizers of one model: ``[AdamW]`` or ``[MatrixMuon, AdamW]`` (empty groups dropped)."""
    if settings.kind not in OPTIMIZER_KINDS:
        raise ConfigError(f"Optimizer.kind is {settings.kind!r}; use one of {', '.join(OPTIMIZER_KINDS)}")
    if len(settings.betas) != 2:
        raise ConfigError(f"Optimizer.betas must hold two numbers, got {settings.betas}")
    groups = split_parameters(model)
    optimizers: list[torch.optim.Optimizer] = []
    matrices = groups["matrix"]
    if settings.kind == "muon" and matrices:
        optimizers.append(
            MatrixMuon(
                matrices,
                lr=settings.muon_lr,
                weight_decay=settings.muon_weight_decay,
                momentum=settings.muon_momentum,
                nesterov=settings.muon_nesterov,
                ns_steps=settings.muon_ns_steps,
                adjust_lr_fn=settings.muon_adjust_lr,
            )
        )
        matrices = []
    adamw_groups = [
        {"params": matrices + groups["decay"], "weight_decay": settings.weight_decay},
        {"params": groups["no_decay"], "weight_decay": 0.0},
    ]
    adamw_groups = [group for group in adamw_groups if group["params"]]
    if adamw_groups:
        optimizers.append(
            torch.optim.AdamW(adamw_groups, lr=settings.lr, betas=tuple(settings.betas), eps=settings.eps)
        )
    return optimizers
