"""Optimizers: AdamW with decay on weight matrices only, and Muon for conv/linear weights as matrices.

The project author found Muon (lr 1e-2) on every conv and linear weight matrix, with AdamW (lr 1e-3) on the
remaining parameters, better than AdamW alone. :class:`MatrixMuon` runs Muon on a 2-D view
``(out, in * kernel)`` of each conv kernel.

Muon's orthogonalisation (:func:`newton_schulz`) lives here rather than in ``torch.optim.Muon``: torch's is
private API (new in 2.9) and always computes in bfloat16, which on CPUs without native bfloat16 matmuls is
6-20x slower than float32 (a 7.4 M-parameter U-Net spent ~130 s of a 155 s step in it). Here the compute
dtype is a setting: by default float32 on CPU and bfloat16 on CUDA. The update rule is otherwise
``torch.optim.Muon``'s (momentum as an EMA, Nesterov, decoupled weight decay, shape-adjusted lr), so
configs written for it behave the same.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from gan_enhance.errors import ConfigError

OPTIMIZER_KINDS = ("adamw", "muon")
MUON_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
MUON_DTYPE_SETTINGS = ("auto", *MUON_DTYPES)
ADJUST_LR_FNS = ("original", "match_rms_adamw")
# Keller Jordan's quintic Newton-Schulz coefficients, chosen for the steepest slope at zero: 5 steps bring
# every singular value into roughly [0.7, 1.2] (not exactly 1, which does not hurt training).
NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)
NS_EPS = 1e-7
# Moonshot's "match_rms_adamw": an orthogonal update scaled by 0.2 * sqrt(max side) has AdamW's RMS.
MATCH_RMS_ADAMW_SCALE = 0.2
# Modules whose weight is a matrix (a conv kernel flattened over input channels and taps).
MATRIX_MODULES = (
    nn.Linear,
    nn.Conv1d,
    nn.Conv2d,
    nn.Conv3d,
    nn.ConvTranspose1d,
    nn.ConvTranspose2d,
    nn.ConvTranspose3d,
)
# Modules whose weight decays under AdamW: the matrices, and embedding tables (AdamW only, never Muon).
DECAY_MODULES = (*MATRIX_MODULES, nn.Embedding)
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
        AdamW's decoupled weight decay, on conv/linear/embedding weights only; biases, norm parameters,
        weight-norm gains, Snake frequencies and layer scales never decay.
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
        ``"original"`` (Keller Jordan's sqrt(max(1, A/B))) or ``"match_rms_adamw"`` (0.2 sqrt(max(A, B))).
    muon_dtype : str
        Compute dtype of the Newton-Schulz iteration: ``"float32"``, ``"bfloat16"``, or ``"auto"``
        (bfloat16 for parameters on CUDA, float32 elsewhere).
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
    muon_dtype: str = "auto"


def newton_schulz(matrix: Tensor, steps: int = 5, dtype: torch.dtype = torch.float32) -> Tensor:
    """Orthogonalise ``matrix`` approximately: ``U S' V^T`` for ``matrix = U S V^T``, S' in about [0.7, 1.2].

    Parameters
    ----------
    matrix : Tensor
        ``(R, C)``; left unchanged.
    steps : int
        Quintic iterations ``X <- a X + (b A + c A^2) X`` with ``A = X X^T``.
    dtype : torch.dtype
        Compute dtype.

    Returns
    -------
    Tensor
        ``(R, C)`` in ``dtype``.
    """
    a, b, c = NS_COEFFICIENTS
    tall = matrix.shape[0] > matrix.shape[1]
    x = matrix.to(dtype)
    x = x.T if tall else x  # the Gram matrix of the wide side is the smaller one
    # Dividing by the Frobenius norm puts the spectral norm at or below 1; never in place (x may be `matrix`).
    x = x / x.norm().clamp(min=NS_EPS)
    for _ in range(steps):
        gram = x @ x.T
        polynomial = torch.addmm(gram, gram, gram, beta=b, alpha=c)
        x = torch.addmm(x, polynomial, x, beta=a)
    return x.T if tall else x


def muon_compute_dtype(setting: str, device: torch.device) -> torch.dtype:
    """The Newton-Schulz dtype for a ``setting`` of :data:`MUON_DTYPE_SETTINGS` and a parameter's device."""
    if setting == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return MUON_DTYPES[setting]


def adjusted_lr(lr: float, adjust_lr_fn: str, rows: int, cols: int) -> float:
    """Muon's learning rate for a ``(rows, cols)`` matrix, scaled so the update's RMS suits its shape."""
    if adjust_lr_fn == "match_rms_adamw":
        ratio = MATCH_RMS_ADAMW_SCALE * math.sqrt(max(rows, cols))
    else:
        ratio = math.sqrt(max(1, rows / cols))
    return lr * ratio


class MatrixMuon(torch.optim.Optimizer):
    """Muon applied to a 2-D view ``(shape[0], -1)`` of each parameter (``torch.optim.Muon``'s update rule).

    Every parameter must have at least two dimensions; the momentum buffer is kept in the 2-D shape.

    Parameters
    ----------
    params : Any
        Parameters or parameter groups, as for any ``torch.optim.Optimizer``.
    lr : float
        Learning rate before :func:`adjusted_lr`.
    weight_decay : float
        Decoupled weight decay: each step multiplies the weights by ``1 - lr * weight_decay``.
    momentum : float
        The buffer is an EMA of the gradients, ``buf <- momentum * buf + (1 - momentum) * grad``.
    nesterov : bool
        Orthogonalise ``(1 - momentum) * grad + momentum * buf`` instead of ``buf``.
    ns_steps : int
        Newton-Schulz iterations.
    adjust_lr_fn : str
        One of :data:`ADJUST_LR_FNS`.
    ns_dtype : str
        One of :data:`MUON_DTYPE_SETTINGS` (see :func:`muon_compute_dtype`).
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
        ns_dtype: str = "auto",
    ):
        _check_choice("adjust_lr_fn", adjust_lr_fn, ADJUST_LR_FNS, ValueError)
        _check_choice("ns_dtype", ns_dtype, MUON_DTYPE_SETTINGS, ValueError)
        defaults = {
            "lr": lr,
            "weight_decay": weight_decay,
            "momentum": momentum,
            "nesterov": nesterov,
            "ns_steps": ns_steps,
            "adjust_lr_fn": adjust_lr_fn,
            "ns_dtype": ns_dtype,
        }
        super().__init__(params, defaults)
        for group in self.param_groups:
            for parameter in group["params"]:
                if parameter.ndim < 2:
                    raise ValueError(
                        f"MatrixMuon needs parameters with >= 2 dims, got {tuple(parameter.shape)}"
                    )

    def __setstate__(self, state: dict) -> None:
        super().__setstate__(state)
        # Checkpoints written before the setting existed (torch's Muon always used bfloat16 there).
        for group in self.param_groups:
            group.setdefault("ns_dtype", "auto")

    @torch.no_grad()
    def step(self, closure=None):
        """One Muon step on every parameter that has a gradient; returns ``closure()``'s loss if given."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for parameter in group["params"]:
                if parameter.grad is not None:
                    self._update(parameter, group)
        return loss

    def _update(self, parameter: nn.Parameter, group: dict) -> None:
        matrix = parameter.view(parameter.shape[0], -1)
        gradient = parameter.grad.reshape(matrix.shape)
        state = self.state[parameter]
        if "momentum_buffer" not in state:
            state["momentum_buffer"] = torch.zeros_like(matrix)
        buffer = state["momentum_buffer"]
        momentum = group["momentum"]
        buffer.lerp_(gradient, 1 - momentum)
        direction = gradient.lerp(buffer, momentum) if group["nesterov"] else buffer
        dtype = muon_compute_dtype(group["ns_dtype"], parameter.device)
        update = newton_schulz(direction, group["ns_steps"], dtype)
        lr = group["lr"]
        matrix.mul_(1 - lr * group["weight_decay"])
        matrix.add_(update, alpha=-adjusted_lr(lr, group["adjust_lr_fn"], *matrix.shape))


def split_parameters(model: nn.Module) -> dict[str, list[nn.Parameter]]:
    """Sort ``model``'s trainable parameters into ``matrix``, ``decay`` and ``no_decay``.

    ``matrix``: conv/linear weights whose 2-D view has both sides > 1 (Muon candidates; they decay under
    AdamW). ``decay``: the other conv/linear weights and embedding tables. ``no_decay``: everything else
    (biases, norm weights, weight-norm gains, Snake's alpha, layer scales, ...).
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
    if not isinstance(module, DECAY_MODULES) or name not in WEIGHT_NAMES:
        return "no_decay"
    if isinstance(module, MATRIX_MODULES) and parameter.shape[0] > 1 and parameter[0].numel() > 1:
        return "matrix"
    return "decay"


def _check_choice(key: str, value: str, choices: tuple[str, ...], error: type[Exception]) -> None:
    if value not in choices:
        raise error(f"{key} is {value!r}; use one of {', '.join(choices)}")


def build_optimizers(model: nn.Module, settings: OptimizerSettings) -> list[torch.optim.Optimizer]:
    """The optimizers of one model: ``[AdamW]`` or ``[MatrixMuon, AdamW]`` (empty groups dropped)."""
    _check_choice("Optimizer.kind", settings.kind, OPTIMIZER_KINDS, ConfigError)
    _check_choice("Optimizer.muon_adjust_lr", settings.muon_adjust_lr, ADJUST_LR_FNS, ConfigError)
    _check_choice("Optimizer.muon_dtype", settings.muon_dtype, MUON_DTYPE_SETTINGS, ConfigError)
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
                ns_dtype=settings.muon_dtype,
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
