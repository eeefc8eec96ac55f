"""Preprocessed shards: degraded/clean pairs computed once, read back with no decoding or DSP.

On-the-fly degradation was the training bottleneck (2.6 -> 40 it/s once precomputed). A shard folder holds
``shard-<k>-x.npy`` ``(N, T_in)`` and ``shard-<k>-y.npy`` ``(N, T_out)`` (int16 by default, memory-mapped
when read) and ``index.json`` describing them; the index is written last, so a folder with an index is
complete.
"""

from __future__ import annotations

import bisect
import contextlib
import json
import os
import time

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from gan_enhance.atomic import atomic_path, write_text
from gan_enhance.data.datasets import make_item
from gan_enhance.errors import DataError

FORMAT = "gan_enhance.shards"
VERSION = 1
INDEX_NAME = "index.json"
# int16 full scale; stored value = round(sample * scale)
INT16_SCALE = 32767.0
DTYPES = ("int16", "float16", "float32")


def _encode(wav: np.ndarray, dtype: str) -> np.ndarray:
    if dtype == "int16":
        return np.round(np.clip(wav, -1.0, 1.0) * INT16_SCALE).astype(np.int16)
    return wav.astype(dtype)


def _decode(stored: np.ndarray) -> np.ndarray:
    if stored.dtype == np.int16:
        return stored.astype(np.float32) / np.float32(INT16_SCALE)
    return stored.astype(np.float32)


class _ShardWriter:
    """Fills one shard's two arrays row by row in memory-mapped temporary files (constant memory
    whatever the shard size), then renames them into place."""

    def __init__(self, folder: str, name: str, count: int, dataset: Dataset, dtype: str):
        self.name, self.count, self.rows = name, count, 0
        self._files = contextlib.ExitStack()
        temporaries = [
            self._files.enter_context(atomic_path(os.path.join(folder, f"{name}-{part}.npy")))
            for part in ("x", "y")
        ]
        shapes = [(count, int(dataset.in_length)), (count, int(dataset.out_length))]
        self.arrays = [
            np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)
            for path, shape in zip(temporaries, shapes, strict=True)
        ]

    @property
    def full(self) -> bool:
        return self.rows == self.count

    def add(self, x: np.ndarray, y: np.ndarray) -> None:
        self.arrays[0][self.rows], self.arrays[1][self.rows] = x, y
        self.rows += 1

    def close(self) -> dict:
        """Flush both arrays and rename them into place."""
        for array in self.arrays:
            array.flush()
        self.arrays = []
        self._files.close()
        return {"name": self.name, "items": self.count}

    def abort(self, error: BaseException) -> None:
        """Remove both temporary files; nothing is renamed."""
        self.arrays = []
        self._files.__exit__(type(error), error, error.__traceback__)


def write_shards(
    dataset: Dataset,
    folder: str,
    num_items: int,
    items_per_shard: int = 1000,
    dtype: str = "int16",
    num_workers: int = 0,
    metadata: dict | None = None,
    progress: bool = False,
) -> dict:
    """Compute items ``0 .. num_items - 1`` of ``dataset`` and store them as shards in ``folder``.

    Parameters
    ----------
    dataset : Dataset
        Gives ``{"x": (1, T_in), "y": (1, T_out), "index"}`` items of fixed length, with
        ``in_sample_rate`` and ``out_sample_rate`` attributes.
    folder : str
        Created if missing; an existing index there is replaced.
    num_items, items_per_shard : int
    dtype : str
        int16 (default; 96 dB of range at a quarter of float32's size), float16 or float32.
    num_workers : int
        DataLoader worker processes computing items.
    metadata : dict, optional
        Stored in the index (task, seed, sources...).
    progress : bool
        Print a line per shard.

    Returns
    -------
    dict
        The index written to ``folder/index.json``.
    """
    if dtype not in DTYPES:
        raise DataError(f"shard dtype must be one of {DTYPES}, got {dtype!r}")
    if num_items <= 0 or items_per_shard <= 0:
        raise DataError("num_items and items_per_shard must be positive")
    os.makedirs(folder, exist_ok=True)
    loader = DataLoader(
        torch.utils.data.Subset(dataset, range(num_items)),
        batch_size=None,
        num_workers=num_workers,
        worker_init_fn=_single_thread_worker if num_workers else None,
    )
    # A stale index would describe shards this run is about to overwrite: remove it first, so the folder
    # only counts as complete again once the new index is written.
    stale = os.path.join(folder, INDEX_NAME)
    if os.path.exists(stale):
        os.remove(stale)
    shards: list[dict] = []
    started = time.time()
    writer = None
    try:
        for position, item in enumerate(loader):
            if writer is None:
                count = min(items_per_shard, num_items - position)
                writer = _ShardWriter(folder, f"shard-{len(shards):05d}", count, dataset, dtype)
            writer.add(_encode(item["x"][0].numpy(), dtype), _encode(item["y"][0].numpy(), dtype))
            if writer.full:
                shards.append(writer.close())
                writer = None
                if progress:
                    done = sum(shard["items"] for shard in shards)
                    rate = done / (time.time() - started)
                    print(f"  {shards[-1]['name']}: {done}/{num_items} items, {rate:.1f} items/s", flush=True)
    except BaseException as error:
        if writer is not None:
            writer.abort(error)
        raise
    index = {
        "format": FORMAT,
        "version": VERSION,
        "in_sample_rate": int(dataset.in_sample_rate),
        "out_sample_rate": int(dataset.out_sample_rate),
        "in_length": int(dataset.in_length),
        "out_length": int(dataset.out_length),
        "dtype": dtype,
        "items": num_items,
        "shards": shards,
        "metadata": metadata or {},
    }
    write_text(os.path.join(folder, INDEX_NAME), json.dumps(index, indent=2))
    return index


def _single_thread_worker(worker_id: int) -> None:
    # Several workers each running multi-threaded torch ops oversubscribe the cores.
    torch.set_num_threads(1)


def read_index(folder: str) -> dict:
    path = os.path.join(folder, INDEX_NAME)
    if not os.path.isfile(path):
        raise DataError(
            f"'{folder}' has no {INDEX_NAME}: not a shard folder, or preprocessing did not finish"
        )
    try:
        with open(path, encoding="utf-8") as stream:
            index = json.load(stream)
    except (OSError, json.JSONDecodeError) as error:
        raise DataError(f"cannot read shard index '{path}': {error}") from None
    if index.get("format") != FORMAT or index.get("version") != VERSION:
        raise DataError(f"'{path}' is not a version-{VERSION} {FORMAT} index; re-run gan-enhance preprocess")
    return index


class ShardDataset(Dataset):
    """Items read from a shard folder (memory-mapped; index ``i`` wraps around the stored items).

    Parameters
    ----------
    folder : str
        A folder written by :func:`write_shards` / ``gan-enhance preprocess``.
    """

    def __init__(self, folder: str):
        self.folder = folder
        self.index = read_index(folder)
        self.in_sample_rate = self.index["in_sample_rate"]
        self.out_sample_rate = self.index["out_sample_rate"]
        self.in_length = self.index["in_length"]
        self.out_length = self.index["out_length"]
        self.metadata = self.index["metadata"]
        self._ends = list(np.cumsum([shard["items"] for shard in self.index["shards"]]))
        for shard in self.index["shards"]:
            for part in ("x", "y"):
                path = os.path.join(folder, f"{shard['name']}-{part}.npy")
                if not os.path.isfile(path):
                    raise DataError(f"shard file '{path}' is missing; re-run gan-enhance preprocess")
        # Opened lazily in each process: memory maps are not shared across worker forks/spawns.
        self._arrays: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def __len__(self) -> int:
        return int(self._ends[-1]) if self._ends else 0

    def _shard(self, number: int) -> tuple[np.ndarray, np.ndarray]:
        if number not in self._arrays:
            name = self.index["shards"][number]["name"]
            self._arrays[number] = tuple(
                np.load(os.path.join(self.folder, f"{name}-{part}.npy"), mmap_mode="r") for part in ("x", "y")
            )
        return self._arrays[number]

    def __getitem__(self, index: int) -> dict:
        position = index % len(self)
        number = bisect.bisect_right(self._ends, position)
        row = position - (self._ends[number - 1] if number else 0)
        x, y = self._shard(number)
        return make_item(_decode(x[row]), _decode(y[row]), index)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_arrays"] = {}
        return state
