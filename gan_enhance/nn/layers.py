"""Small layer factories shared by generators and discriminators.

Weight norm is applied as a parametrization (``torch.nn.utils.parametrizations.weight_norm``) so it can
be removed for inference with :func:`remove_weight_norm` and identical output.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import weight_norm


def get_padding(kernel_size: int, dilation: int = 1) -> int:
    """'Same' padding for an odd kernel: the output keeps the input length at stride 1."""
    return (kernel_size * dilation - dilation) // 2


def WNConv1d(*args, **kwargs) -> nn.Conv1d:
    """``nn.Conv1d`` with weight norm."""
    return weight_norm(nn.Conv1d(*args, **kwargs))


def WNConvTranspose1d(*args, **kwargs) -> nn.ConvTranspose1d:
    """``nn.ConvTranspose1d`` with weight norm."""
    return weight_norm(nn.ConvTranspose1d(*args, **kwargs))


def WNConv2d(*args, **kwargs) -> nn.Conv2d:
    """``nn.Conv2d`` with weight norm."""
    return weight_norm(nn.Conv2d(*args, **kwargs))


def remove_weight_norm(module: nn.Module) -> nn.Module:
    """Fold every weight-norm parametrization in ``module`` into a plain weight, in place.

    Returns
    -------
    nn.Module
        The same module, for chaining.
    """
    for submodule in module.modules():
        if parametrize.is_parametrized(submodule, "weight"):
            parametrize.remove_parametrizations(submodule, "weight", leave_parametrized=True)
    return module


def has_weight_norm(module: nn.Module) -> bool:
    """True when any submodule still carries a weight parametrization."""
    return any(parametrize.is_parametrized(m, "weight") for m in module.modules())


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def init_conv_weights(module: nn.Module, std: float = 0.01) -> None:
    """HiFi-GAN style initialisation: normal(0, std) weights and zero biases for every conv layer.

    Works on weight-normed layers too: the direction ``v`` is drawn and the magnitude ``g`` set to
    ``|v|``, so the effective weight is the drawn one.
    """
    for m in module.modules():
        if not isinstance(m, (nn.Conv1d, nn.Conv2d, nn.ConvTranspose1d)):
            continue
        with torch.no_grad():
            if parametrize.is_parametrized(m, "weight"):
                g, v = m.parametrizations.weight.original0, m.parametrizations.weight.original1
                nn.init.normal_(v, 0.0, std)
                g.copy_(torch.norm_except_dim(v, 2, 0))
            else:
                nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
