"""DDP under ``torchrun``: process group, device, model wrapping and the rank-0 rule for I/O.

``torchrun`` (single node, or multi-node through its rendezvous) sets ``RANK``, ``WORLD_SIZE`` and
``LOCAL_RANK``; without them the run is a single process and nothing here talks to other processes.
The backend is NCCL when the run uses CUDA and gloo otherwise (CPU runs and tests).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from gan_enhance.errors import ConfigError


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits in the run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that writes logs, samples and checkpoints."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def init_distributed(device: str) -> DistInfo:
    """Join the ``torchrun`` process group if there is one and pick this process's device.

    Parameters
    ----------
    device : str
        ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``; under torchrun each process takes
        ``cuda:LOCAL_RANK``.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device not in ("cpu", "cuda"):
        raise ConfigError(f"Trainer.device is {device!r}; use 'auto', 'cpu' or 'cuda'")
    if device == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError("Trainer.device is 'cuda' but no CUDA device is visible; use 'cpu' or 'auto'")
        torch.cuda.set_device(local_rank)
        chosen = torch.device("cuda", local_rank)
    else:
        chosen = torch.device("cpu")
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if chosen.type == "cuda" else "gloo")
    return DistInfo(rank=rank, world_size=world_size, local_rank=local_rank, device=chosen)


def wrap_model(model: nn.Module, info: DistInfo, find_unused_parameters: bool = False) -> nn.Module:
    """``model`` on its device; under DDP with synchronised batch norm and a ``DistributedDataParallel``."""
    model = model.to(info.device)
    if not info.distributed:
        return model
    if any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()):
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    device_ids = [info.local_rank] if info.device.type == "cuda" else None
    return DistributedDataParallel(
        model, device_ids=device_ids, find_unused_parameters=find_unused_parameters
    )


def unwrap(model: nn.Module) -> nn.Module:
    """The bare module inside a DDP (or ``torch.compile``) wrapper."""
    while isinstance(model, DistributedDataParallel) or hasattr(model, "_orig_mod"):
        model = model.module if isinstance(model, DistributedDataParallel) else model._orig_mod
    return model


def all_ranks_true(flag: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """``flag`` (a bool tensor) and-ed over every rank, so all ranks take the same branch."""
    if not info.distributed:
        return flag
    value = flag.to(torch.int32)
    dist.all_reduce(value, op=dist.ReduceOp.MIN)
    return value.bool()


def mean_over_ranks(values: dict[str, torch.Tensor], info: DistInfo) -> dict[str, torch.Tensor]:
    """Average each 0-dim tensor over ranks (one all-reduce for the whole dict)."""
    if not info.distributed or not values:
        return values
    keys = sorted(values)
    stacked = torch.stack([values[key].float() for key in keys])
    dist.all_reduce(stacked)
    stacked /= info.world_size
    return dict(zip(keys, stacked.unbind()))


def barrier(info: DistInfo) -> None:
    if info.distributed:
        dist.barrier()


def shutdown(info: DistInfo) -> None:
    if info.distributed and dist.is_initialized():
        dist.destroy_process_group()
