"""A DataLoader with a resumable position.

``loader.state_dict()`` records the epoch and how many batches of it were handed out; a new loader given
that state with ``load_state_dict`` continues with the next batch, not from the start of the epoch. The
order of epoch ``e`` is a permutation drawn from ``(seed, e)``, and the sampler numbers items of epoch ``e``
from ``e * len(dataset)``, so on-the-fly datasets draw fresh excerpts every epoch while fixed datasets
(paired, shards) take the index modulo their length.
"""

from __future__ import annotations

import os
import random
import signal
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from gan_enhance.errors import DataError


class ResumableSampler(Sampler[int]):
    """Indices of one epoch from a position: ``epoch * n + order[i]`` for ``i >= start``."""

    def __init__(self, length: int, shuffle: bool, seed: int):
        if length <= 0:
            raise DataError("cannot load from an empty dataset")
        self.length = length
        self.shuffle = shuffle
        self.seed = seed
        self.epoch = 0
        self.start = 0

    def order(self, epoch: int) -> np.ndarray:
        if not self.shuffle:
            return np.arange(self.length)
        return np.random.RandomState([self.seed & 0xFFFFFFFF, epoch]).permutation(self.length)

    def __iter__(self) -> Iterator[int]:
        offset = self.epoch * self.length
        for position in self.order(self.epoch)[self.start :]:
            yield int(offset + position)

    def __len__(self) -> int:
        return self.length - self.start


def seed_worker(worker_id: int) -> None:
    """Seed Python, numpy and torch in a worker from the loader's per-worker seed, and keep the worker
    single-threaded (parallelism comes from the workers; threads inside each would oversubscribe).

    SIGTERM ends a worker quietly (exit status 0): ``timeout`` and job schedulers signal every process
    of the group, and a worker killed by the signal makes torch raise "DataLoader worker ... is killed by
    signal" in the main process wherever it is, while the main process is handling the same signal (it
    finishes the step and writes its checkpoint). Ctrl-C needs nothing: torch's workers already end
    quietly on it.
    """
    signal.signal(signal.SIGTERM, _exit_quietly)
    seed = torch.utils.data.get_worker_info().seed % 2**32
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(1)


def _exit_quietly(signum: int, frame: Any) -> None:
    os._exit(0)


class ResumableLoader:
    """Iterates a dataset batch by batch, one epoch per ``iter()``, and can save and restore its position.

    Use :func:`build_dataloader` to make one.
    """

    def __init__(
        self,
        dataset: Dataset,
        batch_size: int,
        num_workers: int,
        seed: int,
        shuffle: bool,
        drop_last: bool,
        pin_memory: bool,
        persistent_workers: bool,
        prefetch_factor: int,
        collate_fn: Callable | None,
    ):
        self.dataset = dataset
        self.batch_size = batch_size
        self.seed = seed
        self.drop_last = drop_last
        self.sampler = ResumableSampler(len(dataset), shuffle, seed)
        workers = (
            {"prefetch_factor": prefetch_factor, "persistent_workers": persistent_workers}
            if num_workers
            else {}
        )
        self.loader = DataLoader(
            dataset,
            batch_size=batch_size,
            sampler=self.sampler,
            num_workers=num_workers,
            drop_last=drop_last,
            pin_memory=pin_memory and torch.cuda.is_available(),
            worker_init_fn=seed_worker if num_workers else None,
            generator=torch.Generator().manual_seed(seed),
            collate_fn=collate_fn,
            **workers,
        )
        self.epoch = 0
        self.batches = 0  # batches of the current epoch already handed out

    def __len__(self) -> int:
        """Batches in a full epoch."""
        full, rest = divmod(len(self.dataset), self.batch_size)
        return full if self.drop_last or not rest else full + 1

    def __iter__(self) -> Iterator:
        """The remaining batches of the current epoch; the next ``iter()`` starts the next epoch."""
        if self.batches >= len(self):
            self.epoch, self.batches = self.epoch + 1, 0
        self.sampler.epoch = self.epoch
        self.sampler.start = self.batches * self.batch_size
        for batch in self.loader:
            self.batches += 1
            yield batch
        self.epoch, self.batches = self.epoch + 1, 0

    def forever(self) -> Iterator:
        """Batches across epochs without end (what a step-counted training loop wants)."""
        while True:
            yield from self

    def state_dict(self) -> dict:
        """Plain data: the position to resume from."""
        return {
            "epoch": self.epoch,
            "batches": self.batches,
            "seed": self.seed,
            "batch_size": self.batch_size,
            "dataset_length": len(self.dataset),
        }

    def load_state_dict(self, state: dict) -> None:
        """Continue from ``state`` (from :meth:`state_dict` of a loader over the same data and settings)."""
        for key in ("batch_size", "dataset_length"):
            if key in state and state[key] != self.state_dict()[key]:
                raise DataError(
                    f"cannot resume the data position: saved {key}={state[key]} but this loader has "
                    f"{self.state_dict()[key]}; keep the batch size and dataset when resuming"
                )
        self.epoch = int(state["epoch"])
        self.batches = int(state["batches"])


def build_dataloader(
    dataset: Dataset,
    batch_size: int,
    num_workers: int = 0,
    seed: int = 0,
    shuffle: bool = True,
    drop_last: bool = True,
    pin_memory: bool = True,
    persistent_workers: bool = True,
    prefetch_factor: int = 4,
    collate_fn: Callable | None = None,
) -> ResumableLoader:
    """A loader over ``dataset`` with a resumable position (see :class:`ResumableLoader`).

    Parameters
    ----------
    dataset : Dataset
        Items ``{"x": (1, T_in), "y": (1, T_out), "index"}``; the default collate stacks them to
        ``(B, 1, T)``.
    batch_size, num_workers : int
    seed : int
        Epoch orders and worker seeds derive from it.
    shuffle, drop_last : bool
    pin_memory : bool
        Pin batches in page-locked memory (only where CUDA is available).
    persistent_workers : bool
        Keep worker processes (and their caches of decoded noise/impulse responses) between epochs.
    prefetch_factor : int
        Batches each worker prepares ahead.
    collate_fn : callable, optional
    """
    if batch_size <= 0:
        raise DataError(f"batch_size must be positive, got {batch_size}")
    if drop_last and len(dataset) < batch_size:
        raise DataError(f"the dataset has {len(dataset)} items, fewer than one batch of {batch_size}")
    return ResumableLoader(
        dataset,
        batch_size,
        num_workers,
        seed,
        shuffle,
        drop_last,
        pin_memory,
        persistent_workers,
        prefetch_factor,
        collate_fn,
    )
