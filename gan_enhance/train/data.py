"""Training and validation data of a run, built from config: on-the-fly degradation, paired folders or shards.

Under DDP each rank reads its own share of every epoch (:class:`RankShard`); the loader's position is
saved in checkpoints so a resumed run continues with the next batch.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass, field
from typing import Any

from torch.utils.data import DataLoader, Dataset

from gan_enhance.errors import ConfigError
from gan_enhance.train.distributed import DistInfo, barrier

log = logging.getLogger("gan_enhance.train")


@dataclass
class DataSettings:
    """Where the audio comes from (config prefix ``Data.``). Set one kind of source per split.

    Parameters
    ----------
    train_sources, val_sources : list[str]
        Clean-audio folders or manifests, degraded on the fly by the task's degradations.
    train_paired, val_paired : list[str]
        ``[degraded_dir, clean_dir]`` of pre-degraded pairs matched by file name (e.g. VoiceBank-DEMAND).
    train_shards, val_shards : str
        A shard folder written by ``gan-enhance preprocess`` (precomputed pairs: fastest to load).
    noise_dirs : list[str]
        Noise recordings (folders or files) for the task's ``AddNoise`` step (synthetic noise when empty).
    rir_dirs : list[str]
        Room impulse responses (folders or files) for the task's ``Reverb`` step (synthetic rooms when
        empty).
    segment_samples : int
        Training segment length at the output rate.
    val_segment_samples : int
        Validation segment length at the output rate (0: same as training).
    epoch_items : int
        Items per epoch of on-the-fly training data (each epoch draws new excerpts).
    val_items : int
        Size of the fixed validation set (on-the-fly validation).
    val_seed : int
        Seed of the validation set: the same seed gives the same degraded examples.
    val_batch_size : int
        Batch size of validation (0: ``Trainer.batch_size``).
    synthetic_files : int
        When > 0, a ``*_sources`` folder that does not exist yet is filled with this many synthetic
        speech-like files first (tiny runs and demos without a corpus).
    synthetic_seconds : float
        Length of each synthetic file.
    synthetic_sample_rate : int
        Rate of the synthetic files (resampled to the run's rates when read).
    pin_memory : bool
        Page-locked batches for faster copies to the GPU.
    prefetch_factor : int
        Batches each worker prepares ahead.
    max_bad_share : float
        Training files that fail to load are logged, replaced by other items and counted; when more than
        this share of the files has failed, the run stops with the list (after writing ``latest``).
    """

    train_sources: list[str] = field(default_factory=list)
    val_sources: list[str] = field(default_factory=list)
    train_paired: list[str] = field(default_factory=list)
    val_paired: list[str] = field(default_factory=list)
    train_shards: str = ""
    val_shards: str = ""
    noise_dirs: list[str] = field(default_factory=list)
    rir_dirs: list[str] = field(default_factory=list)
    segment_samples: int = 32768
    val_segment_samples: int = 0
    epoch_items: int = 10000
    val_items: int = 64
    val_seed: int = 123456
    val_batch_size: int = 0
    synthetic_files: int = 0
    synthetic_seconds: float = 4.0
    synthetic_sample_rate: int = 48000
    pin_memory: bool = True
    prefetch_factor: int = 4
    max_bad_share: float = 0.01


@dataclass
class DataSpec:
    """Everything needed to build the datasets, checked at config time."""

    settings: DataSettings
    task: str
    degradation_settings: dict[str, dict[str, Any]]
    source_settings: dict[str, Any]
    in_sample_rate: int
    out_sample_rate: int
    seed: int


class RankShard(Dataset):
    """Rank ``r`` of ``n`` sees items ``r, r + n, r + 2n, ...`` of the wrapped dataset.

    The resumable sampler numbers the items of epoch ``e`` from ``e * len(self)``; multiplying by ``n``
    keeps every rank's items distinct within and across epochs, as a DistributedSampler would.
    """

    def __init__(self, dataset: Dataset, rank: int, world_size: int):
        self.dataset, self.rank, self.world_size = dataset, rank, world_size

    def __len__(self) -> int:
        return len(self.dataset) // self.world_size

    @property
    def file_count(self) -> int:
        return int(getattr(self.dataset, "file_count", len(self.dataset)))

    def __getitem__(self, index: int) -> dict:
        return self.dataset[index * self.world_size + self.rank]


def check_sources(settings: DataSettings) -> None:
    """Exactly one kind of source per split, with the right shape; called before anything is built."""
    for split in ("train", "val"):
        kinds = [
            name
            for name in (f"{split}_sources", f"{split}_paired", f"{split}_shards")
            if getattr(settings, name)
        ]
        if len(kinds) != 1:
            given = ", ".join(f"Data.{kind}" for kind in kinds) or "none"
            raise ConfigError(
                f"set exactly one of Data.{split}_sources, Data.{split}_paired, Data.{split}_shards (given: {given})"
            )
        paired = getattr(settings, f"{split}_paired")
        if paired and len(paired) != 2:
            raise ConfigError(f"Data.{split}_paired must be [degraded_dir, clean_dir], got {paired}")


# The DataSettings fields that hold paths (a string or a list of them).
PATH_FIELDS = (
    "train_sources",
    "val_sources",
    "train_paired",
    "val_paired",
    "train_shards",
    "val_shards",
    "noise_dirs",
    "rir_dirs",
)


def absolute_paths(settings: DataSettings) -> DataSettings:
    """``settings`` with every relative path made absolute against the working directory (what a run
    folder's ``config.yml`` keeps, so the run resumes from any working directory)."""

    def absolute(value: str) -> str:
        return os.path.abspath(value) if value else value

    changed = {}
    for key in PATH_FIELDS:
        value = getattr(settings, key)
        changed[key] = absolute(value) if isinstance(value, str) else [absolute(path) for path in value]
    return dataclasses.replace(settings, **changed)


def check_data_paths(settings: DataSettings) -> None:
    """Every data path given exists, named with its key (source folders ``Data.synthetic_files`` will fill
    are exempt). Run before training and by ``train --check``; not part of reading a config, so overlays
    with placeholder paths can be checked and merged anywhere."""
    keys = [key for key in PATH_FIELDS if settings.synthetic_files <= 0 or not key.endswith("_sources")]
    for key in keys:
        value = getattr(settings, key)
        for path in [value] if isinstance(value, str) else value:
            if path and not os.path.exists(path):
                raise ConfigError(f"Data.{key}: '{path}' does not exist; fix the path or the config")


def build_datasets(spec: DataSpec, dist: DistInfo) -> tuple[Dataset, Dataset]:
    """The training dataset (this rank's share) and the fixed validation dataset."""
    from gan_enhance.data.datasets import ReplaceBadItems

    settings = spec.settings
    _write_synthetic(settings, dist)
    val_segment = settings.val_segment_samples or settings.segment_samples
    train = _dataset(spec, "train", settings.segment_samples, settings.epoch_items, spec.seed)
    val = _dataset(spec, "val", val_segment, settings.val_items, settings.val_seed)
    if dist.distributed:
        train = RankShard(train, dist.rank, dist.world_size)
    return ReplaceBadItems(train), val


def _dataset(spec: DataSpec, split: str, segment: int, items: int, seed: int) -> Dataset:
    from gan_enhance.data import CleanSource, DegradedDataset, PairedDataset, ShardDataset, build_task

    settings = spec.settings
    rates = (spec.in_sample_rate, spec.out_sample_rate)
    if getattr(settings, f"{split}_shards"):
        dataset = ShardDataset(getattr(settings, f"{split}_shards"))
        if (dataset.in_sample_rate, dataset.out_sample_rate) != rates:
            raise ConfigError(
                f"shards {getattr(settings, f'{split}_shards')} hold {dataset.in_sample_rate} -> "
                f"{dataset.out_sample_rate} Hz pairs but this run is {rates[0]} -> {rates[1]} Hz"
            )
        return dataset
    if getattr(settings, f"{split}_paired"):
        degraded_dir, clean_dir = getattr(settings, f"{split}_paired")
        return PairedDataset(degraded_dir, clean_dir, *rates, segment_samples=segment, seed=seed)
    source_settings = dict(spec.source_settings)
    if split != "train":  # validation measures the audio as recorded
        source_settings.pop("speed", None)
    source = CleanSource(getattr(settings, f"{split}_sources"), **source_settings)
    task = build_task(
        spec.task,
        noise_dirs=settings.noise_dirs,
        rir_dirs=settings.rir_dirs,
        settings=spec.degradation_settings,
        in_sample_rate=rates[0],
        out_sample_rate=rates[1],
    )
    return DegradedDataset(source, task.degradation, *rates, segment_samples=segment, length=items, seed=seed)


def build_loaders(
    spec: DataSpec, batch_size: int, num_workers: int, dist: DistInfo
) -> tuple[Any, DataLoader]:
    """Resumable training loader (shuffled, full batches) and validation loader.

    Validation uses a plain ``DataLoader`` in index order: every pass, whole or cut short by
    ``Trainer.valid_batches``, starts again at the first example, so the validation set never changes.
    """
    from gan_enhance.data import build_dataloader

    settings = spec.settings
    train_set, val_set = build_datasets(spec, dist)
    train = build_dataloader(
        train_set,
        batch_size,
        num_workers,
        seed=spec.seed,
        shuffle=True,
        drop_last=True,
        pin_memory=settings.pin_memory,
        prefetch_factor=settings.prefetch_factor,
    )
    val = DataLoader(val_set, batch_size=settings.val_batch_size or batch_size, shuffle=False, num_workers=0)
    return train, val


def _write_synthetic(settings: DataSettings, dist: DistInfo) -> None:
    """Fill missing source folders with synthetic speech (rank 0 writes, the others wait)."""
    if settings.synthetic_files <= 0:
        return
    from gan_enhance.data import write_synthetic_corpus

    for index, folder in enumerate(settings.train_sources + settings.val_sources):
        if dist.is_main and not os.path.exists(folder):
            log.info("writing %d synthetic speech files to %s", settings.synthetic_files, folder)
            write_synthetic_corpus(
                folder,
                settings.synthetic_files,
                settings.synthetic_seconds,
                settings.synthetic_sample_rate,
                seed=index,
            )
    barrier(dist)
