"""Score systems over a test set and write the per-file tables, the summary and spectrogram figures.

Three ways to get the signals to score against clean references (folders or single files):

1. an enhanced folder (files matched to the clean ones by relative path without extension);
2. a degraded folder run through one or more systems (baselines or exported models);
3. the clean folder degraded on the fly with a seeded task preset, then run through systems.

And one without references: recordings scored as they are, by the no-reference metrics (DNSMOS), along
with systems run over them and enhanced folders matched to them. See :mod:`~gan_enhance.evaluate.items`.

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
from dataclasses import dataclass

import torch

from gan_enhance.atomic import write_text
from gan_enhance.audio import read_audio, resample, write_audio
from gan_enhance.errors import DataError, GanEnhanceError
from gan_enhance.evaluate import report

# The item builders live in items.py; these names stay importable from here.
from gan_enhance.evaluate.items import (  # noqa: F401
    Failure,
    Item,
    degraded_items,
    folder_items,
    matched_keys,
    recording_items,
)
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


def _align(estimate: torch.Tensor, rate: int, item: Item) -> torch.Tensor:
    """The estimate at the reference's rate and channel count (mono estimates are spread over channels);
    as it is without a reference."""
    if item.clean is None:
        return estimate
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
        From :func:`folder_items`, :func:`degraded_items` or :func:`recording_items`.
    systems : list of System
        Run on each item's degraded signal (items without one need no systems).
    out_dir : str
        Where tables, summary, figures and audio go.
    metrics : list[str]
        Metric names (no-reference ones only for items without a clean signal).
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
    reference = item.clean
    cutoff = math.nan if reference is None else settings.cutoff_hz or input_cutoff(item)
    for name, (wav, rate, estimate) in outputs.items():
        row = {"file": item.key, "system": name}
        if reference is None:
            # Scored on its own, at its own rate.
            row.update({"duration_s": wav.shape[-1] / rate, "sample_rate": float(rate)})
            scores = pool.submit(compute_metrics, wav.numpy(), None, rate, settings.metrics)
        else:
            row.update(
                {"duration_s": reference.shape[-1] / item.clean_rate, "sample_rate": float(item.clean_rate)}
            )
            row["cutoff_hz"] = cutoff
            scores = pool.submit(
                compute_metrics,
                estimate.numpy(),
                reference.numpy(),
                item.clean_rate,
                settings.metrics,
                cutoff,
            )
        quality = {}
        for model in settings.quality_models:
            quality.update(model.score(wav, rate))
        pending.append((row, scores, quality))
        if settings.save_audio and name not in item.enhanced_paths:
            write_audio(os.path.join(settings.audio_dir, name, f"{item.key}.wav"), wav, rate, AUDIO_SUBTYPE)
    # Without a reference the degraded signal is the recording, already an output of its own.
    degraded = item.degraded is not None and reference is not None
    if settings.save_audio and systems and degraded:
        path = os.path.join(settings.audio_dir, "degraded", f"{item.key}.wav")
        write_audio(path, item.degraded, item.degraded_rate, AUDIO_SUBTYPE)
    if figure:
        panels = [("degraded", item.degraded, item.degraded_rate)] if degraded else []
        panels += [(name, wav, rate) for name, (wav, rate, _) in outputs.items()]
        if reference is not None:
            panels.append(("clean", reference, item.clean_rate))
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
