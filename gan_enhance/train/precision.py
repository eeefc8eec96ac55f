"""Numerics of a run: mixed precision, backend flags, seeds, deterministic mode and RNG snapshots."""

from __future__ import annotations

import contextlib
import os
import random
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from gan_enhance.errors import ConfigError

PRECISIONS = ("fp32", "bf16", "fp16")
SIDES = ("generator", "discriminator")


class Precision:
    """Autocast context and gradient scalers for one precision setting.

    fp16 gets one dynamic ``GradScaler`` per side (PyTorch's rule for several optimizers with their own
    losses): an overflow in the discriminator's gradients lowers the discriminator's scale only.

    Parameters
    ----------
    name : str
        ``"fp32"`` (no autocast), ``"bf16"`` (autocast to bfloat16, CPU or GPU; no scaler needed) or
        ``"fp16"`` (autocast to float16 with a dynamic ``GradScaler``; GPU only).
    device : torch.device
        Where the models run.
    """

    def __init__(self, name: str, device: torch.device):
        if name not in PRECISIONS:
            raise ConfigError(f"Trainer.precision is {name!r}; use one of {', '.join(PRECISIONS)}")
        if name == "fp16" and device.type != "cuda":
            raise ConfigError("Trainer.precision 'fp16' needs a CUDA device; use 'bf16' on CPU")
        self.name = name
        self.device_type = device.type
        self.dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(name)
        self.scalers = {side: torch.amp.GradScaler(device.type, enabled=name == "fp16") for side in SIDES}

    def state_dict(self) -> dict[str, dict]:
        return {side: scaler.state_dict() for side, scaler in self.scalers.items()}

    def load_state_dict(self, state: dict[str, dict]) -> None:
        """Restore both scalers (a checkpoint of one shared scaler restores it into both)."""
        for side, scaler in self.scalers.items():
            scaler.load_state_dict(state[side] if set(SIDES) <= set(state) else state)

    def autocast(self) -> contextlib.AbstractContextManager:
        """The forward-pass context: autocast to ``self.dtype``, or nothing for fp32."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)


def configure_backends(tf32: bool, cudnn_benchmark: bool, deterministic: bool, threads: int = 0) -> None:
    """Set the process-wide numerics flags once, before models are built.

    TF32 matmuls and cudnn autotuning are fast but not bitwise reproducible, so deterministic mode
    turns both off whatever the other flags say. It asks torch for deterministic kernels with
    ``warn_only``: a few CUDA backward kernels have no deterministic version (reflection padding's, used
    by the STFTs and the period discriminator), and torch would stop the run at the first of them; it
    warns instead, naming the op (CPU kernels are all deterministic). ``threads`` > 0 sets torch's CPU
    thread count.
    """
    if threads < 0:
        raise ConfigError(f"Trainer.threads must be >= 0 (0 keeps torch's default), got {threads}")
    if threads:
        torch.set_num_threads(threads)
    if deterministic:
        # cuBLAS needs a fixed workspace for deterministic reductions; it must be set before first use.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        tf32 = cudnn_benchmark = False
    torch.backends.cudnn.benchmark = cudnn_benchmark
    torch.backends.cudnn.deterministic = deterministic
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    torch.set_float32_matmul_precision("high" if tf32 else "highest")


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    """Every global RNG state as plain data and tensors (loadable with ``weights_only=True``)."""
    kind, keys, position, has_gauss, cached_gauss = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "position": int(position),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached_gauss),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` captured."""
    random.setstate(_as_tuples(state["python"]))
    numpy_state = state["numpy"]
    np.random.set_state(
        (
            numpy_state["kind"],
            numpy_state["keys"].numpy().astype(np.uint32),
            numpy_state["position"],
            numpy_state["has_gauss"],
            numpy_state["cached_gaussian"],
        )
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _as_tuples(value: Any) -> Any:
    """``random.setstate`` insists on tuples; a checkpoint round trip may hand back lists."""
    if isinstance(value, list | tuple):
        return tuple(_as_tuples(item) for item in value)
    return value


@contextlib.contextmanager
def frozen(module: torch.nn.Module) -> Iterator[None]:
    """Temporarily stop gradients into ``module``'s parameters (the discriminator during the G step).

    The generator's loss still backpropagates through the module's activations; only the parameter
    gradients, which the generator step would throw away, are not computed.
    """
    flags = [(p, p.requires_grad) for p in module.parameters()]
    for parameter, _ in flags:
        parameter.requires_grad_(False)
    try:
        yield
    finally:
        for parameter, flag in flags:
            parameter.requires_grad_(flag)
