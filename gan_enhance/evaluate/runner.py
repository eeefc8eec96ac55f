"""Score systems over a test set and write the per-file tables, the summary and spectrogram figures.

Three ways to get the signals to score, all against a folder of clean references:

1. an enhanced folder (files matched to the clean ones by relative path without extension);
2. a degraded folder run through one or more systems (baselines or exported models);
3. the clean folder degraded on the fly with a seeded task preset, then run through systems.

Outputs in ``out_dir``: ``<system>.csv`` (one row per file), ``summary.md`` (mean, std, median, min,
max per metric and a side-by-side table of means), ``spectrograms/<file>.png`` for the first few files,
and (unless disabled) the audio each system produced under ``audio/<system>/`` (plus ``audio/degraded/``
when degrading on the fly), ready for ``gan-enhance listen``.
"""

from __future__ import annotations

import contextlib
import logging
import math
import multiprocessing
import os
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field

import torch

from gan_enhance.atomic import write_text
from gan_enhance.audio import read_audio, resample, write_audio
from gan_enhance.errors import DataError, GanEnhanceError
from gan_enhance.evaluate import report
from gan_enhance.evaluate.metrics import DEFAULT_METRICS, compute_metrics
from gan_enhance.evaluate.spectral import estimate_cutoff
from gan_enhance.evaluate.systems import System

SUMMARY_FILE = "summary.md"
# Outputs whose length differs from the clean file's by more than this fraction get a warning.
LENGTH_TOLERANCE = 0.01
logger = logging.getLogger(__name__)
# Scored outputs queued per metric process before the loop waits (bounds the audio held in memory).
_PENDING_PER_JOB = 4
# Files are written as 16-bit WAV for listening; scoring uses the float signals in memory.
AUDIO_SUBTYPE = "PCM_16"


@dataclass
class Item:
    """One test file: its key (relative path without extension), clean and degraded signals."""

    key: str
    clean: torch.Tensor
    clean_rate: int
    degraded: torch.Tensor | None = None
    degraded_rate: int = 0
    # system name -> enhanced file (enhanced-folder mode)
    enhanced_paths: dict[str, str] = field(default_factory=dict)


@dataclass
class Failure:
    """A test file that cannot be scored: its key and the error (whose message names the file)."""

    key: str
    error: GanEnhanceError


def _files_by_key(folder: str) -> dict[str, str]:
    from gan_enhance.data.files import find_audio_files, relative_key

    if not os.path.isdir(folder):
        raise DataError(f"folder '{folder}' does not exist; check the path")
    files = {relative_key(path, folder): path for path in find_audio_files([folder])}
    if not files:
        raise DataError(f"no audio files under '{folder}'")
    return files


def matched_keys(clean_dir: str, other_dirs: list[str]) -> tuple[dict[str, str], list[dict[str, str]]]:
    """Clean files and, for each other folder, its files, restricted to keys present everywhere."""
    clean = _files_by_key(clean_dir)
    others = [_files_by_key(folder) for folder in other_dirs]
    common = [key for key in clean if all(key in other for other in others)]
    if not common:
        names = ", ".join(f"'{d}'" for d in other_dirs)
        raise DataError(
            f"no file of '{clean_dir}' has a counterpart in {names}; files are matched by relative path "
            "without extension (clean/a/b.wav <-> enhanced/a/b.flac)"
        )
    return {k: clean[k] for k in common}, [{k: other[k] for k in common} for other in others]


def folder_items(
    clean_dir: str, degraded_dir: str = "", enhanced: dict[str, str] | None = None
) -> Iterator[Item | Failure]:
    """Items from folders: clean always, degraded and enhanced (system name -> folder) when given.

    A clean or degraded file that cannot be read (or holds NaN) gives a :class:`Failure` instead.
    """
    enhanced = enhanced or {}
    folders = ([degraded_dir] if degraded_dir else []) + list(enhanced.values())
    clean, others = matched_keys(clean_dir, folders)
    degraded = others.pop(0) if degraded_dir else {}
    for key, path in clean.items():
        try:
            wav, rate = read_audio(path)
            item = Item(key=key, clean=wav, clean_rate=rate)
            if degraded:
                item.degraded, item.degraded_rate = read_audio(degraded[key])
        except GanEnhanceError as error:
            yield Failure(key, error)
            continue
        item.enhanced_paths = {name: files[key] for name, files in zip(enhanced, others)}
        yield item


def degraded_items(
    clean_dir: str, degrade: Callable[[torch.Tensor, int, int], tuple[torch.Tensor, int]]
) -> Iterator[Item | Failure]:
    """Items whose degraded signal is made from the clean file by ``degrade(wav, rate, index)``; an
    unreadable clean file gives a :class:`Failure`."""
    clean = _files_by_key(clean_dir)
    for index, (key, path) in enumerate(clean.items()):
        try:
            wav, rate = read_audio(path)
        except GanEnhanceError as error:
            yield Failure(key, error)
            continue
        degraded, degraded_rate = degrade(wav, rate, index)
        yield Item(key=key, clean=wav, clean_rate=rate, degraded=degraded, degraded_rate=degraded_rate)


def _align(estimate: torch.Tensor, rate: int, item: Item) -> torch.Tensor:
    """The estimate at the reference's rate and channel count (mono estimates are spread over channels)."""
    if rate != item.clean_rate:
        estimate = resample(estimate, rate, item.clean_rate)
    if estimate.shape[0] != item.clean.shape[0]:
        if estimate.shape[0] == 1:
            estimate = estimate.expand(item.clean.shape[0], -1)
        else:
            raise DataError(
                f"'{item.key}': the output has {estimate.shape[0]} channels but the clean file has "
                f"{item.clean.shape[0]}"
            )
    mismatch = abs(estimate.shape[-1] - item.clean.shape[-1]) / item.clean.shape[-1]
    if mismatch > LENGTH_TOLERANCE:
        logger.warning(
            "'%s': the output is %d samples long but the clean file %d (at %d Hz); scoring the common "
            "part. Is the output's sample rate right?",
            item.key,
            estimate.shape[-1],
            item.clean.shape[-1],
            item.clean_rate,
        )
    return estimate


def input_cutoff(item: Item) -> float:
    """The degraded input's band limit in Hz (NaN without a degraded input)."""
    if item.degraded is None:
        return math.nan
    mono = item.degraded.mean(dim=0).numpy()
    return min(estimate_cutoff(mono, item.degraded_rate), item.degraded_rate / 2)


def evaluate_items(
    items: Iterator[Item | Failure],
    systems: list[System],
    out_dir: str,
    metrics: list[str] = DEFAULT_METRICS,
    quality_models: list | None = None,
    spectrograms: int = 3,
    save_audio: bool = True,
    cutoff_hz: float = 0.0,
    progress: Callable[[str], None] | None = None,
    jobs: int = 1,
    on_error: Callable[[str, str], None] | None = None,
) -> dict[str, list[dict]]:
    """Score every item with every system (and every enhanced folder) and write the reports.

    Parameters
    ----------
    items : iterator of Item or Failure
        From :func:`folder_items` or :func:`degraded_items`.
    systems : list of System
        Run on each item's degraded signal (items without one need no systems).
    out_dir : str
        Where tables, summary, figures and audio go.
    metrics : list[str]
        Intrusive metric names.
    quality_models : list of QualityModel
        No-reference plug-ins scored on each output (see :mod:`gan_enhance.evaluate.quality`).
    spectrograms : int
        Number of files (the first ones) that get a degraded / enhanced / clean figure.
    save_audio : bool
        Write each system's output (and on-the-fly degraded inputs) under ``out_dir/audio``.
    cutoff_hz : float
        The input's band limit for ``lsd_low``/``lsd_high``; 0 estimates it from each degraded input.
    progress : callable, optional
        Called with each item's key once its systems have run.
    jobs : int
        Processes computing the metrics (systems and quality models run in this process, so a model
        on a GPU is loaded once). 1 computes them here.
    on_error : callable, optional
        Called with ``(key, message)`` for each file that cannot be scored (unreadable or NaN samples, a
        channel count that does not match, a system failing on it or producing NaN); that file gets no
        row, audio or figure and the others go on. Without it the first such error is raised.

    Returns
    -------
    dict[str, list[dict]]
        System name -> its rows, as written to ``<system>.csv``.
    """
    tables: dict[str, list[dict]] = {}
    settings = _Settings(out_dir, metrics, quality_models or [], save_audio, cutoff_hz)
    with _metric_pool(jobs) as pool:
        # (row, metrics future, quality scores), resolved in submission order so rows keep file order.
        pending: list[tuple[dict, Future, dict]] = []
        scored = 0
        for item in items:
            try:
                if isinstance(item, Failure):
                    raise item.error
                outputs = _outputs(item, systems)
            except GanEnhanceError as error:
                if on_error is None:
                    raise
                on_error(item.key, str(error))
                continue
            _score_item(item, outputs, scored < spectrograms, systems, settings, pool, pending)
            scored += 1
            while len(pending) > _PENDING_PER_JOB * max(jobs, 1):
                _resolve(pending.pop(0), tables)
            if progress is not None:
                progress(item.key)
        for entry in pending:
            _resolve(entry, tables)
    if not tables:
        raise DataError("nothing was scored: give enhanced folders or systems to run")
    write_reports(tables, out_dir)
    return tables


def _resolve(entry: tuple[dict, Future, dict], tables: dict[str, list[dict]]) -> None:
    row, scores, quality = entry
    row.update(scores.result())
    row.update(quality)
    tables.setdefault(row["system"], []).append(row)


@dataclass
class _Settings:
    """What :func:`evaluate_items` was asked for, handed to the per-item step."""

    out_dir: str
    metrics: list[str]
    quality_models: list
    save_audio: bool
    cutoff_hz: float

    @property
    def audio_dir(self) -> str:
        return os.path.join(self.out_dir, "audio")


def _outputs(item: Item, systems: list[System]) -> dict[str, tuple[torch.Tensor, int, torch.Tensor]]:
    """System name -> ``(output, its rate, output aligned to the clean file)`` for one item.

    Everything that can fail on a bad file happens here, before anything is queued or written, so a
    file that fails leaves no row, audio or figure behind.
    """
    outputs: dict[str, tuple[torch.Tensor, int]] = {}
    for system in systems:
        if item.degraded is None:
            raise DataError(f"system '{system.name}' needs a degraded input for '{item.key}'")
        outputs[system.name] = system(item.degraded, item.degraded_rate)
        if not torch.isfinite(outputs[system.name][0]).all():
            raise DataError(f"'{item.key}': system '{system.name}' produced NaN or infinite samples")
    for name, path in item.enhanced_paths.items():
        outputs[name] = read_audio(path)
    return {name: (wav, rate, _align(wav, rate, item)) for name, (wav, rate) in outputs.items()}


def _score_item(
    item: Item,
    outputs: dict[str, tuple[torch.Tensor, int, torch.Tensor]],
    figure: bool,
    systems: list[System],
    settings: _Settings,
    pool,
    pending: list,
) -> None:
    """Queue one item's scoring (onto ``pending``), write its audio and figure."""
    cutoff = settings.cutoff_hz or input_cutoff(item)
    for name, (wav, rate, estimate) in outputs.items():
        row = {"file": item.key, "system": name, "duration_s": item.clean.shape[-1] / item.clean_rate}
        row.update({"sample_rate": float(item.clean_rate), "cutoff_hz": cutoff})
        scores = pool.submit(
            compute_metrics, estimate.numpy(), item.clean.numpy(), item.clean_rate, settings.metrics, cutoff
        )
        quality = {}
        for model in settings.quality_models:
            quality.update(model.score(wav, rate))
        pending.append((row, scores, quality))
        if settings.save_audio and name not in item.enhanced_paths:
            write_audio(os.path.join(settings.audio_dir, name, f"{item.key}.wav"), wav, rate, AUDIO_SUBTYPE)
    if settings.save_audio and systems and item.degraded is not None:
        path = os.path.join(settings.audio_dir, "degraded", f"{item.key}.wav")
        write_audio(path, item.degraded, item.degraded_rate, AUDIO_SUBTYPE)
    if figure:
        panels = [("degraded", item.degraded, item.degraded_rate)] if item.degraded is not None else []
        panels += [(name, wav, rate) for name, (wav, rate, _) in outputs.items()]
        panels.append(("clean", item.clean, item.clean_rate))
        path = os.path.join(settings.out_dir, "spectrograms", f"{item.key}.png")
        report.spectrogram_figure(path, [(n, w.mean(dim=0).numpy(), r) for n, w, r in panels], title=item.key)


class _InProcess:
    """The executor interface for ``jobs=1``: runs each call at once."""

    def submit(self, function, *args) -> Future:
        future: Future = Future()
        future.set_result(function(*args))
        return future


def _single_thread() -> None:
    torch.set_num_threads(1)


@contextlib.contextmanager
def _metric_pool(jobs: int):
    if jobs <= 1:
        yield _InProcess()
        return
    # spawn, not fork: forking a process whose torch/OpenMP threads are running can deadlock.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(jobs, mp_context=context, initializer=_single_thread) as pool:
        yield pool


def write_reports(tables: dict[str, list[dict]], out_dir: str) -> str:
    """Write ``<system>.csv`` per system and ``summary.md``; return the summary's markdown."""
    for name, rows in tables.items():
        report.write_scores_csv(os.path.join(out_dir, f"{name}.csv"), rows)
    text = summary_text(tables)
    write_text(os.path.join(out_dir, SUMMARY_FILE), text)
    return text


def summary_text(tables: dict[str, list[dict]]) -> str:
    """The summary markdown: means side by side, then each system's full statistics."""
    parts = [
        "## Evaluation summary\n",
        "Mean ± std per system (↑ higher is better, ↓ lower, →0 nearest zero).\n",
    ]
    parts.append(report.means_markdown(tables))
    parts += [report.summary_markdown(rows, title=name) for name, rows in tables.items()]
    return "\n".join(parts)
