"""DDP under ``torchrun``: process group, device, model wrapping and the rank-0 rule for I/O.

``torchrun`` (single node, or multi-node through its rendezvous) sets ``RANK``, ``WORLD_SIZE`` and
``LOCAL_RANK``; without them the run is a single process and nothing here talks to other processes.
Under ``torchrun`` the process group is joined even with one process (``--nproc_per_node 1``), so a
one-GPU launch runs the same DDP and collective code as a many-GPU one.
The backend is NCCL when the run uses CUDA and gloo otherwise (CPU runs and tests). Every collective goes
through the helpers below, which refuse a tensor that is not on the run's device (NCCL would refuse a CPU
tensor only on a GPU machine; the check makes a CPU test fail the same way).
"""

from __future__ import annotations

import datetime
import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from gan_enhance.errors import ConfigError

log = logging.getLogger("gan_enhance.train")


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits in the run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    launched: bool = False

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that writes logs, samples and checkpoints."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """Whether collectives run: several processes, or one process launched by ``torchrun``."""
        return self.world_size > 1 or self.launched


def choose_device(device: str, local_rank: int = 0) -> torch.device:
    """``Trainer.device`` as a device: ``"auto"`` is CUDA when available; ``"cuda"`` is ``cuda:local_rank``.

    Raises
    ------
    ConfigError
        An unknown name, or ``"cuda"`` where no CUDA device is visible.
    """
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device not in ("cpu", "cuda"):
        raise ConfigError(f"Trainer.device is {device!r}; use 'auto', 'cpu' or 'cuda'")
    if device == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ConfigError("Trainer.device is 'cuda' but no CUDA device is visible; use 'cpu' or 'auto'")
    return torch.device("cuda", local_rank)


def init_distributed(device: str, timeout_minutes: float = 60.0) -> DistInfo:
    """Join the ``torchrun`` process group if there is one and pick this process's device.

    Parameters
    ----------
    device : str
        ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``; under torchrun each process takes
        ``cuda:LOCAL_RANK``.
    timeout_minutes : float
        How long a collective may wait for the other ranks (``Trainer.dist_timeout_minutes``).
    """
    if timeout_minutes <= 0:
        raise ConfigError(f"Trainer.dist_timeout_minutes must be > 0, got {timeout_minutes}")
    launched = "LOCAL_RANK" in os.environ and "WORLD_SIZE" in os.environ  # set by torchrun
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    chosen = choose_device(device, local_rank)
    if chosen.type == "cuda":
        torch.cuda.set_device(local_rank)
    if (launched or world_size > 1) and not dist.is_initialized():
        timeout = datetime.timedelta(minutes=timeout_minutes)
        if chosen.type == "cuda":
            dist.init_process_group(backend="nccl", device_id=chosen, timeout=timeout)
        else:
            dist.init_process_group(backend="gloo", timeout=timeout)
        log.info(
            "joined the process group: backend %s, rank %d of %d, device %s",
            dist.get_backend(),
            rank,
            world_size,
            chosen,
        )
    return DistInfo(rank=rank, world_size=world_size, local_rank=local_rank, device=chosen, launched=launched)


def wrap_model(model: nn.Module, info: DistInfo, find_unused_parameters: bool = False) -> nn.Module:
    """``model`` on its device; under DDP with synchronised batch norm and a ``DistributedDataParallel``."""
    model = model.to(info.device)
    if not info.distributed:
        return model
    if any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()):
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    device_ids = [info.local_rank] if info.device.type == "cuda" else None
    # No buffer changes in a way ranks could disagree on (window and filterbank constants; spectral norm's
    # vectors follow the weights; synchronised batch norm's statistics are global), so rank 0's buffers are
    # not broadcast before every forward.
    return DistributedDataParallel(
        model,
        device_ids=device_ids,
        find_unused_parameters=find_unused_parameters,
        broadcast_buffers=False,
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
    dist.all_reduce(_on_device(value, info), op=dist.ReduceOp.MIN)
    return value.bool()


def max_over_ranks(value: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """The element-wise maximum of ``value`` over ranks (in place)."""
    if info.distributed:
        dist.all_reduce(_on_device(value, info), op=dist.ReduceOp.MAX)
    return value


def broadcast_from_main(value: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Rank 0's ``value`` on every rank (in place)."""
    if info.distributed:
        dist.broadcast(_on_device(value, info), src=0)
    return value


def mean_over_ranks(values: dict[str, torch.Tensor], info: DistInfo) -> dict[str, torch.Tensor]:
    """Average each 0-dim tensor over ranks (one all-reduce for the whole dict)."""
    if not info.distributed or not values:
        return values
    keys = sorted(values)
    stacked = _on_device(torch.stack([values[key].float() for key in keys]), info)
    dist.all_reduce(stacked)
    stacked /= info.world_size
    return dict(zip(keys, stacked.unbind()))


def barrier(info: DistInfo) -> None:
    if not info.distributed:
        return
    if info.device.type == "cuda":
        dist.barrier(device_ids=[info.device.index])
    else:
        dist.barrier()


def _on_device(tensor: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """``tensor`` itself; an error when it is not on the run's device (a bug: NCCL refuses CPU tensors)."""
    if tensor.device != info.device:
        raise RuntimeError(
            f"a collective got a tensor on {tensor.device} in a run on {info.device}: every tensor handed "
            "to a collective must be created on the training device"
        )
    return tensor


def shutdown(info: DistInfo) -> None:
    if info.distributed and dist.is_initialized():
        dist.destroy_process_group()
