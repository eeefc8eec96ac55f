"""Optimizers: parameter groups, the Newton-Schulz orthogonalisation, MatrixMuon's update and its state."""

from __future__ import annotations

import copy
import io
import math

import pytest
import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm
from torch.overrides import TorchFunctionMode

from gan_enhance.errors import ConfigError
from gan_enhance.nn.convnext import ConvNeXtBlock1d
from gan_enhance.nn.layers import WNConv1d
from gan_enhance.nn.snake import Snake1d
from gan_enhance.train.optim import (
    MatrixMuon,
    OptimizerSettings,
    build_optimizers,
    newton_schulz,
    split_parameters,
)

MUON = {"lr": 0.02, "weight_decay": 0.1, "momentum": 0.9, "ns_steps": 5}


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = WNConv1d(3, 4, 5)
        self.plain = nn.Conv1d(4, 4, 3)
        self.norm = nn.LayerNorm(4)
        self.linear = nn.Linear(4, 2)
        self.head = nn.Conv1d(4, 1, 3)  # a single output row: not a matrix for Muon


class Mixed(nn.Module):
    """One of each kind of parameter the generators hold, plus an embedding and a spectral-norm linear."""

    def __init__(self):
        super().__init__()
        self.conv = WNConv1d(4, 8, 3)
        self.snake = Snake1d(8)
        self.block = ConvNeXtBlock1d(8, expansion=2)
        self.norm = nn.LayerNorm(8)
        self.group_norm = nn.GroupNorm(2, 8)
        self.embedding = nn.Embedding(5, 8)
        self.spectral = spectral_norm(nn.Linear(8, 8))
        self.linear = nn.Linear(8, 8)


# Mixed's parameters that weight decay must leave alone: Snake's alpha, weight-norm gains, biases, norm
# weights and layer scales.
NEVER_DECAYED = {
    "snake.alpha",
    "conv.parametrizations.weight.original0",
    "conv.bias",
    "block.depthwise.parametrizations.weight.original0",
    "block.scale",
    "block.norm.weight",
    "block.norm.bias",
    "norm.weight",
    "norm.bias",
    "group_norm.weight",
    "spectral.bias",
}


class DtypeRecorder(TorchFunctionMode):
    """Records the dtype of every tensor that a torch function returns while the mode is active."""

    def __init__(self):
        super().__init__()
        self.dtypes: set[torch.dtype] = set()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        result = func(*args, **(kwargs or {}))
        outputs = result if isinstance(result, (tuple, list)) else (result,)
        self.dtypes.update(output.dtype for output in outputs if isinstance(output, torch.Tensor))
        return result


class BFloat16CastKeepsFloat32(TorchFunctionMode):
    """Turns ``Tensor.bfloat16()`` into a float32 copy, so that torch's Muon runs its iteration in float32."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func is torch.Tensor.bfloat16:
            return args[0].clone()
        return func(*args, **(kwargs or {}))


def group_names(model: nn.Module) -> dict[str, set[str]]:
    names = {id(p): n for n, p in model.named_parameters()}
    return {kind: {names[id(p)] for p in params} for kind, params in split_parameters(model).items()}


def newton_schulz_by_hand(matrix: torch.Tensor, steps: int) -> torch.Tensor:
    """The quintic iteration written out in float64: X <- a X + (b A + c A A) X with A = X X^T."""
    a, b, c = 3.4445, -4.7750, 2.0315
    x = matrix.double()
    tall = x.shape[0] > x.shape[1]
    x = x.T if tall else x
    x = x / torch.linalg.matrix_norm(x)
    for _ in range(steps):
        gram = x @ x.T
        x = a * x + (b * gram + c * gram @ gram) @ x
    return x.T if tall else x


def test_parameters_are_split_into_matrices_and_no_decay():
    model = Tiny()
    groups = group_names(model)
    assert groups["matrix"] == {"conv.parametrizations.weight.original1", "plain.weight", "linear.weight"}
    assert "conv.parametrizations.weight.original0" in groups["no_decay"]  # the weight-norm gain
    assert {"conv.bias", "norm.weight", "norm.bias", "linear.bias", "head.bias"} <= groups["no_decay"]
    assert groups["decay"] == {"head.weight"}
    assert sum(len(g) for g in groups.values()) == len(list(model.parameters()))


def test_only_weight_matrices_and_embeddings_decay():
    model = Mixed()
    groups = group_names(model)
    block_weights = {
        f"block.{n}.parametrizations.weight.original1" for n in ("depthwise", "expand", "project")
    }
    assert groups["matrix"] == {
        "conv.parametrizations.weight.original1",
        "spectral.parametrizations.weight.original",
        "linear.weight",
        *block_weights,
    }
    assert groups["decay"] == {"embedding.weight"}
    assert NEVER_DECAYED <= groups["no_decay"]
    assert sum(len(g) for g in groups.values()) == len(list(model.parameters()))


def test_adamw_weight_decay_leaves_gains_biases_norms_and_scales_untouched():
    model = Mixed()
    (adamw,) = build_optimizers(model, OptimizerSettings(kind="adamw", lr=0.1, weight_decay=0.5))
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    for parameter in model.parameters():
        parameter.grad = torch.zeros_like(parameter)
    adamw.step()
    for name in NEVER_DECAYED:
        assert torch.equal(model.get_parameter(name), before[name]), name
    # The weights shrink by 1 - lr * weight_decay (the gradient is zero, so Adam's own step is zero).
    for name in ("linear.weight", "embedding.weight", "conv.parametrizations.weight.original1"):
        torch.testing.assert_close(model.get_parameter(name), before[name] * 0.95, msg=name)


def test_muon_takes_matrices_and_adamw_the_rest():
    model = Tiny()
    muon, adamw = build_optimizers(model, OptimizerSettings(kind="muon", lr=1e-3, muon_lr=1e-2))
    assert isinstance(muon, MatrixMuon) and isinstance(adamw, torch.optim.AdamW)
    in_muon = {id(p) for g in muon.param_groups for p in g["params"]}
    assert id(model.linear.weight) in in_muon and id(model.linear.bias) not in in_muon
    assert muon.param_groups[0]["lr"] == 1e-2 and adamw.param_groups[0]["lr"] == 1e-3


@pytest.mark.parametrize("key", ["muon_adjust_lr", "muon_dtype", "kind"])
def test_unknown_choices_are_config_errors_naming_the_key(key):
    with pytest.raises(ConfigError, match=f"Optimizer.{key}"):
        build_optimizers(Tiny(), OptimizerSettings(**{"kind": "muon", key: "float16"}))


@pytest.mark.parametrize("shape", [(32, 96), (96, 32)])
def test_newton_schulz_equals_a_float64_hand_computation(shape):
    matrix = torch.randn(*shape, generator=torch.Generator().manual_seed(0))
    result = newton_schulz(matrix, steps=5, dtype=torch.float32)
    assert result.dtype == torch.float32 and result.shape == shape
    torch.testing.assert_close(result.double(), newton_schulz_by_hand(matrix, 5), rtol=1e-5, atol=1e-5)
    # The quintic pushes every singular value into a band around 1 (about [0.68, 1.14] after 5 steps).
    singular_values = torch.linalg.svdvals(result.double())
    assert 0.65 < singular_values.min() and singular_values.max() < 1.2


@pytest.mark.parametrize("nesterov", [True, False])
@pytest.mark.parametrize("adjust_lr_fn", ["original", "match_rms_adamw"])
def test_matrix_muon_on_a_conv_kernel_equals_the_update_by_hand(nesterov, adjust_lr_fn):
    torch.manual_seed(0)
    kernel = nn.Parameter(torch.randn(12, 3, 3))  # a tall (12, 9) matrix: the lr adjustment matters
    optimizer = MatrixMuon([kernel], nesterov=nesterov, adjust_lr_fn=adjust_lr_fn, ns_dtype="float32", **MUON)
    weight, buffer = kernel.detach().reshape(12, 9).clone(), torch.zeros(12, 9)
    lr, momentum = MUON["lr"], MUON["momentum"]
    ratio = math.sqrt(12 / 9) if adjust_lr_fn == "original" else 0.2 * math.sqrt(12)
    for _ in range(3):  # later steps start from a non-zero momentum buffer
        gradient = torch.randn(12, 9)
        kernel.grad = gradient.reshape(12, 3, 3).clone()
        optimizer.step()
        buffer = momentum * buffer + (1 - momentum) * gradient
        direction = (1 - momentum) * gradient + momentum * buffer if nesterov else buffer
        weight = weight * (1 - lr * MUON["weight_decay"]) - lr * ratio * newton_schulz(direction, 5)
    torch.testing.assert_close(kernel.detach().reshape(12, 9), weight, rtol=1e-5, atol=1e-6)
    assert optimizer.state[kernel]["momentum_buffer"].shape == (12, 9)


@pytest.mark.parametrize(
    ("ns_dtype", "uses_bfloat16"), [("auto", False), ("float32", False), ("bfloat16", True)]
)
def test_newton_schulz_dtype_on_cpu(ns_dtype, uses_bfloat16):
    kernel = nn.Parameter(torch.randn(8, 4, 3))
    optimizer = MatrixMuon([kernel], nesterov=True, adjust_lr_fn="original", ns_dtype=ns_dtype, **MUON)
    kernel.grad = torch.randn_like(kernel)
    recorder = DtypeRecorder()
    with recorder:
        optimizer.step()
    assert torch.float32 in recorder.dtypes
    assert (torch.bfloat16 in recorder.dtypes) == uses_bfloat16
    assert kernel.dtype == torch.float32 and torch.isfinite(kernel).all()


def test_optimizer_state_round_trips_to_a_bitwise_identical_resume():
    torch.manual_seed(0)
    settings = OptimizerSettings(kind="muon", weight_decay=0.1, muon_weight_decay=0.05)
    model = Tiny()
    optimizers = build_optimizers(model, settings)
    gradients = [{n: torch.randn_like(p) for n, p in model.named_parameters()} for _ in range(5)]

    def step(module: nn.Module, opts: list[torch.optim.Optimizer], grads: dict) -> None:
        for name, parameter in module.named_parameters():
            parameter.grad = grads[name].clone()
        for optimizer in opts:
            optimizer.step()

    for grads in gradients[:3]:
        step(model, optimizers, grads)
    saved = io.BytesIO()
    torch.save([optimizer.state_dict() for optimizer in optimizers], saved)
    saved.seek(0)
    resumed = copy.deepcopy(model)
    resumed_optimizers = build_optimizers(resumed, settings)
    for optimizer, state in zip(resumed_optimizers, torch.load(saved, weights_only=True)):
        optimizer.load_state_dict(state)
    for grads in gradients[3:]:
        step(model, optimizers, grads)
        step(resumed, resumed_optimizers, grads)
    for (name, expected), actual in zip(model.named_parameters(), resumed.parameters()):
        assert torch.equal(actual, expected), name


def test_state_of_the_torch_muon_subclass_loads_with_auto_dtype():
    kernel = nn.Parameter(torch.randn(8, 4, 3))
    state = MatrixMuon([kernel], nesterov=True, adjust_lr_fn="original", **MUON).state_dict()
    # What MatrixMuon saved while it subclassed torch.optim.Muon: no ns_dtype, torch's NS constants.
    del state["param_groups"][0]["ns_dtype"]
    state["param_groups"][0].update(ns_coefficients=(3.4445, -4.775, 2.0315), eps=1e-7)
    optimizer = MatrixMuon([kernel], nesterov=True, adjust_lr_fn="original", ns_dtype="bfloat16", **MUON)
    optimizer.load_state_dict(state)
    assert optimizer.param_groups[0]["ns_dtype"] == "auto"
    kernel.grad = torch.randn_like(kernel)
    optimizer.step()


@pytest.mark.skipif(not hasattr(torch.optim, "Muon"), reason="this torch has no torch.optim.Muon")
@pytest.mark.parametrize("ns_dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("nesterov", [True, False])
@pytest.mark.parametrize("adjust_lr_fn", ["original", "match_rms_adamw"])
def test_matrix_muon_equals_torch_muon(ns_dtype, nesterov, adjust_lr_fn):
    """Bitwise: both run the same operations in the same order. torch's Muon always casts to bfloat16;
    for the float32 comparison that cast is turned into a float32 copy (BFloat16CastKeepsFloat32)."""
    torch.manual_seed(0)
    kernel = nn.Parameter(torch.randn(6, 3, 5))
    matrix = nn.Parameter(kernel.detach().reshape(6, 15).clone())
    settings = {"nesterov": nesterov, "adjust_lr_fn": adjust_lr_fn, **MUON}
    ours = MatrixMuon([kernel], ns_dtype=ns_dtype, **settings)
    reference = torch.optim.Muon([matrix], **settings)
    for _ in range(3):
        gradient = torch.randn(6, 15)
        kernel.grad, matrix.grad = gradient.reshape(6, 3, 5).clone(), gradient.clone()
        ours.step()
        if ns_dtype == "float32":
            with BFloat16CastKeepsFloat32():
                reference.step()
        else:
            reference.step()
    torch.testing.assert_close(kernel.detach().reshape(6, 15), matrix.detach(), rtol=0, atol=0)
