"""Datasets producing ``{"x": (1, T_in), "y": (1, T_out), "index": int}`` items.

- :class:`DegradedDataset`: clean excerpts degraded on the fly; the item at ``index`` depends only on
  ``(seed, index)``, so a validation set is fixed by its seed and the same item comes out whichever
  worker makes it.
- :class:`PairedDataset`: degraded/clean folders matched by relative name (e.g. VoiceBank-DEMAND), cut at
  the same offset, each resampled to its own rate.
- :class:`ReplaceBadItems` (training): an item whose file fails to load is replaced by another and the
  failure reported with the batch; :class:`BadFileLog` counts them against ``Data.max_bad_share``.

Indices past ``len(dataset)`` are allowed: the resumable sampler numbers the items of epoch ``e`` from
``e * len(dataset)``, so an on-the-fly dataset draws new excerpts every epoch while a fixed one (paired,
shards) wraps around.
"""

from __future__ import annotations

import logging
import math
import os

import numpy as np
import soundfile
import torch
from torch.utils.data import Dataset

from gan_enhance.audio import audio_info, read_audio, resample
from gan_enhance.data.files import find_audio_files, relative_key
from gan_enhance.data.sources import CleanSource, report_skipped
from gan_enhance.data.transforms import Degradation
from gan_enhance.data.transforms import warm_up as warm_up_degradation
from gan_enhance.errors import AudioFileError, DataError, GanEnhanceError

logger = logging.getLogger(__name__)


def item_state(seed: int, index: int) -> np.random.RandomState:
    """The random state of item ``index`` under ``seed`` (independent of workers, order and epoch)."""
    return np.random.RandomState(
        np.array([seed & 0xFFFFFFFF, index & 0xFFFFFFFF, index >> 32], dtype=np.uint32)
    )


def segment_lengths(segment_samples: int, in_sample_rate: int, out_sample_rate: int) -> tuple[int, int]:
    """``(T_in, T_out)`` for a segment of ``segment_samples`` at the output rate; both must be whole."""
    t_in = segment_samples * in_sample_rate / out_sample_rate
    if segment_samples <= 0 or t_in != int(t_in):
        raise DataError(
            f"segment_samples={segment_samples} at {out_sample_rate} Hz is not a whole number of samples at "
            f"{in_sample_rate} Hz; use a multiple of {out_sample_rate // math.gcd(in_sample_rate, out_sample_rate)}"
        )
    return int(t_in), segment_samples


def fit_length(wav: np.ndarray, length: int) -> np.ndarray:
    return (
        wav[..., :length]
        if wav.shape[-1] >= length
        else np.pad(wav, [(0, 0)] * (wav.ndim - 1) + [(0, length - wav.shape[-1])])
    )


def make_item(x: np.ndarray, y: np.ndarray, index: int) -> dict:
    """Pack mono arrays into an item; the degraded input is scaled down if it would leave [-1, 1]."""
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    if peak > 1.0:
        x = x / peak
    return {
        "x": torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).reshape(1, -1),
        "y": torch.from_numpy(np.ascontiguousarray(y, dtype=np.float32)).reshape(1, -1),
        "index": int(index),
    }


class DegradedDataset(Dataset):
    """Clean excerpts at ``out_sample_rate`` (the target), degraded, then resampled to ``in_sample_rate``.

    Parameters
    ----------
    source : CleanSource
    degradation : Degradation
        Applied at ``out_sample_rate`` (so band-limiting effects act on the full-band signal).
    in_sample_rate, out_sample_rate : int
    segment_samples : int
        Length of ``y`` in samples; ``x`` has ``segment_samples * in_sample_rate / out_sample_rate``.
    length : int
        Items per epoch.
    seed : int
        Item ``i`` is a function of ``(seed, i)`` only.
    warm_up : bool
        Run every degradation once now, in this process, so forked DataLoader workers inherit the slow
        first-call work (imports, compilation, file caches) instead of each paying it.
    """

    def __init__(
        self,
        source: CleanSource,
        degradation: Degradation,
        in_sample_rate: int,
        out_sample_rate: int,
        segment_samples: int,
        length: int,
        seed: int = 0,
        warm_up: bool = True,
    ):
        self.source = source
        self.degradation = degradation
        self.in_sample_rate = in_sample_rate
        self.out_sample_rate = out_sample_rate
        self.in_length, self.out_length = segment_lengths(segment_samples, in_sample_rate, out_sample_rate)
        if length <= 0:
            raise DataError(f"dataset length must be positive, got {length}")
        self.length = length
        self.seed = seed
        if warm_up:
            warm_up_degradation(degradation, out_sample_rate)
            if in_sample_rate != out_sample_rate:
                resample(torch.zeros(1, out_sample_rate // 10), out_sample_rate, in_sample_rate)

    def __len__(self) -> int:
        return self.length

    @property
    def file_count(self) -> int:
        """Clean files the excerpts come from."""
        return len(self.source)

    def __getitem__(self, index: int) -> dict:
        state = item_state(self.seed, index)
        clean = self.source.excerpt(state, self.out_length, self.out_sample_rate)
        degraded = self.degradation(clean, self.out_sample_rate, state)
        if self.in_sample_rate != self.out_sample_rate:
            degraded = resample(torch.from_numpy(degraded), self.out_sample_rate, self.in_sample_rate).numpy()
        item = make_item(fit_length(degraded, self.in_length), clean, index)
        # Files the source met broken and avoided, for the training-side count (ReplaceBadItems). Every
        # item has the key, so batches of items with and without failures collate alike.
        return {**item, "bad": "\n".join(self.source.take_failures())}


class PairedDataset(Dataset):
    """Degraded/clean file pairs matched by their path relative to each folder (extension ignored).

    Parameters
    ----------
    degraded_dir, clean_dir : str
    in_sample_rate, out_sample_rate : int
        Rates of ``x`` and ``y`` (files at other rates are resampled).
    segment_samples : int
        Excerpt length at ``out_sample_rate``; both files are cut at the same time offset (on a grid
        exact at both files' rates). Shorter pairs are zero-padded. 0: whole files (use batch size 1).
    seed : int
        Offsets of item ``i`` are a function of ``(seed, i)``.
    """

    def __init__(
        self,
        degraded_dir: str,
        clean_dir: str,
        in_sample_rate: int,
        out_sample_rate: int,
        segment_samples: int = 0,
        seed: int = 0,
    ):
        for folder in (degraded_dir, clean_dir):
            if not os.path.isdir(folder):
                raise DataError(f"paired-data folder '{folder}' does not exist")
        clean = {relative_key(p, clean_dir): p for p in find_audio_files([clean_dir])}
        degraded = {relative_key(p, degraded_dir): p for p in find_audio_files([degraded_dir])}
        skipped = [(degraded[k], "no clean file with this name") for k in sorted(set(degraded) - set(clean))]
        skipped += [(clean[k], "no degraded file with this name") for k in sorted(set(clean) - set(degraded))]
        self.pairs = []
        for key in sorted(set(clean) & set(degraded)):
            try:
                infos = audio_info(degraded[key]), audio_info(clean[key])
            except AudioFileError as error:
                skipped.append((key, str(error)))
                continue
            self.pairs.append((degraded[key], clean[key], infos))
        report_skipped(skipped, "paired")
        self.skipped = skipped
        if not self.pairs:
            raise DataError(f"no matching file names between '{degraded_dir}' and '{clean_dir}'")
        self.in_sample_rate = in_sample_rate
        self.out_sample_rate = out_sample_rate
        self.segment_samples = segment_samples
        if segment_samples:
            self.in_length, self.out_length = segment_lengths(
                segment_samples, in_sample_rate, out_sample_rate
            )
        self.seed = seed

    def __len__(self) -> int:
        return len(self.pairs)

    @property
    def file_count(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict:
        degraded_path, clean_path, (degraded_info, clean_info) = self.pairs[index % len(self.pairs)]
        duration = min(degraded_info.duration, clean_info.duration)
        if not self.segment_samples:
            x, _ = read_audio(degraded_path, self.in_sample_rate, mono=True)
            y, _ = read_audio(clean_path, self.out_sample_rate, mono=True)
            t_in = min(x.shape[-1], y.shape[-1] * self.in_sample_rate // self.out_sample_rate)
            t_out = t_in * self.out_sample_rate // self.in_sample_rate
            return make_item(x[0, :t_in].numpy(), fit_length(y[0].numpy(), t_out), index)
        seconds = self.out_length / self.out_sample_rate
        # An offset on the grid of both files' rates is a whole number of samples in each.
        grid = math.gcd(degraded_info.sample_rate, clean_info.sample_rate)
        steps = int(max(0.0, duration - seconds) * grid)
        offset = item_state(self.seed, index).randint(steps + 1) / grid
        x, _ = read_audio(degraded_path, self.in_sample_rate, mono=True, offset=offset, duration=seconds)
        y, _ = read_audio(clean_path, self.out_sample_rate, mono=True, offset=offset, duration=seconds)
        return make_item(
            fit_length(x[0].numpy(), self.in_length), fit_length(y[0].numpy(), self.out_length), index
        )


# Errors of an item that could not be read or decoded (file changed, truncated, unreadable) during training.
LOAD_ERRORS = (GanEnhanceError, OSError, EOFError, soundfile.LibsndfileError)
# Replacement item of item ``i`` after ``k`` failures: ``i + k * STRIDE`` (a prime, so the candidates of
# neighbouring items do not coincide).
REPLACEMENT_STRIDE = 7919


class TooManyBadFilesError(DataError):
    """More training files failed to load than ``Data.max_bad_share`` allows."""


class ReplaceBadItems(Dataset):
    """Items that fail to load are replaced by other items of ``dataset``; what failed travels with the item.

    Each item gains ``"bad"``: the error lines of the items tried before it, joined by newlines (``""``
    when it loaded at once), plus any the dataset reported itself (a :class:`DegradedDataset` whose source
    skipped a broken file), so the training process can log and count failures that happen in data
    workers. Replacements are deterministic (item ``i + k * 7919`` after ``k`` failures; datasets accept
    any index, see above), so a resumed run sees the same data.

    Parameters
    ----------
    dataset : Dataset
        Any map-style dataset of items (dicts) that accepts any index.
    attempts : int
        Items tried before giving up with a :class:`~gan_enhance.errors.DataError`.
    """

    def __init__(self, dataset: Dataset, attempts: int = 8):
        self.dataset, self.attempts = dataset, attempts

    def __len__(self) -> int:
        return len(self.dataset)

    @property
    def file_count(self) -> int:
        """Files behind the items (the denominator of ``Data.max_bad_share``)."""
        return int(getattr(self.dataset, "file_count", len(self.dataset)))

    def __getitem__(self, index: int) -> dict:
        failures = []
        for attempt in range(self.attempts):
            try:
                item = self.dataset[index + attempt * REPLACEMENT_STRIDE]
            except LOAD_ERRORS as error:
                failures.append(str(error).strip().splitlines()[0] if str(error).strip() else repr(error))
                continue
            return {**item, "bad": "\n".join(failures + [item.get("bad", "")]).strip("\n")}
        raise DataError(
            f"{self.attempts} training items in a row failed to load, starting at item {index}: "
            + " | ".join(failures)
        )


class BadFileLog:
    """Training-side record of the failures :class:`ReplaceBadItems` reports in batches.

    Parameters
    ----------
    file_count : int
        Files of the training data.
    max_share : float
        Largest share of them allowed to fail; beyond it :meth:`record` raises, listing every failure.
    """

    def __init__(self, file_count: int, max_share: float):
        self.file_count, self.max_share = max(1, file_count), max_share
        self.failures: list[str] = []

    def record(self, batch_bad: list[str]) -> list[str]:
        """Add the ``"bad"`` entries of a batch; returns the failures not seen before.

        Raises
        ------
        TooManyBadFilesError
            More distinct failures than ``max_share`` of the files.
        """
        new = []
        for entry in batch_bad:
            for line in filter(None, entry.split("\n")):
                if line not in self.failures and line not in new:
                    new.append(line)
        self.failures.extend(new)
        if len(self.failures) > self.max_share * self.file_count + 1e-9:  # 0.29 * 100 is 28.999...
            enough = math.ceil(100 * len(self.failures) / self.file_count) / 100
            raise TooManyBadFilesError(
                f"{len(self.failures)} of {self.file_count} training files failed to load, more than "
                f"Data.max_bad_share={self.max_share:g} allows; fix or remove them, or raise the share "
                f"(--Data.max_bad_share {enough:g} would allow them): " + " | ".join(self.failures)
            )
        return new
