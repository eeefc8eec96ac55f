"""Clean-audio sources: folders and manifests, indexed once, sampled by weight, excerpted away from silence.

A source is a folder (searched recursively) or a manifest: CSV with a ``path`` column (and optionally
``duration`` in seconds) or JSON Lines with ``{"path": ..., "duration": ...}``; relative paths are taken
relative to the manifest's folder. When a manifest gives durations, indexing trusts them and opens no file,
which keeps start-up fast on large corpora; otherwise each file's header is read once.

Files that cannot be read or are shorter than ``min_duration`` are reported once (one warning listing
them) and skipped; a source list with no usable file is a :class:`~gan_enhance.errors.DataError`.
"""

from __future__ import annotations

import csv
import json
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import soundfile

from gan_enhance.atomic import atomic_path
from gan_enhance.audio import audio_info, check_finite, resample, truncation_error
from gan_enhance.data.files import find_audio_files
from gan_enhance.data.transforms import check_range, rms_db
from gan_enhance.errors import AudioFileError, DataError

logger = logging.getLogger(__name__)

MANIFEST_EXTENSIONS = (".csv", ".jsonl", ".json")
# How many skipped files a report names before summarising the rest as a count.
REPORT_NAMES = 20
# Threads reading file headers while indexing a source.
INDEX_THREADS = 8


@dataclass(frozen=True)
class AudioEntry:
    """One usable file: its path, duration in seconds and sample rate (0 when a manifest gave the
    duration and the header was not read)."""

    path: str
    duration: float
    sample_rate: int = 0


def read_manifest(path: str) -> list[tuple[str, float]]:
    """``(path, duration or -1)`` rows of a CSV or JSON Lines manifest; paths resolved against its folder."""
    root = os.path.dirname(os.path.abspath(path))
    rows: list[tuple[str, float]] = []
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            if path.lower().endswith(".csv"):
                records = list(csv.DictReader(handle))
                if records and "path" not in records[0]:
                    raise DataError(
                        f"manifest '{path}' has no 'path' column; its columns: {list(records[0])}"
                    )
            else:
                records = [json.loads(line) for line in handle if line.strip()]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, csv.Error) as error:
        raise DataError(f"cannot read manifest '{path}': {error}") from None
    for number, record in enumerate(records, start=1):
        if not isinstance(record, dict) or not record.get("path"):
            raise DataError(f"manifest '{path}' row {number} has no 'path'")
        duration = record.get("duration")
        try:
            duration = float(duration) if duration not in (None, "") else -1.0
        except ValueError:
            raise DataError(
                f"manifest '{path}' row {number}: duration {duration!r} is not a number"
            ) from None
        rows.append((os.path.normpath(os.path.join(root, str(record["path"]))), duration))
    return rows


def report_skipped(skipped: list[tuple[str, str]], what: str) -> None:
    """Log skipped files once, as one warning naming them (up to ``REPORT_NAMES``)."""
    if not skipped:
        return
    lines = [f"  {path}: {reason}" for path, reason in skipped[:REPORT_NAMES]]
    more = len(skipped) - REPORT_NAMES
    if more > 0:
        lines.append(f"  ... and {more} more")
    logger.warning("skipped %d %s file(s):\n%s", len(skipped), what, "\n".join(lines))


def _check_file(candidate: tuple[str, float]) -> tuple[str, float, int, str]:
    """``(path, duration, sample_rate, problem)`` of one manifest row or found file."""
    path, duration = candidate
    if duration >= 0:  # the manifest gave it: trust it and open nothing
        return (path, duration, 0, "") if os.path.exists(path) else (path, duration, 0, "does not exist")
    try:
        info = audio_info(path)
        # A WAV cut short is found from its header alone (libsndfile would read the part that is there).
        truncated = truncation_error(path, info.frames, info.frames)
        if truncated is not None:
            raise truncated
    except AudioFileError as error:
        return path, -1.0, 0, str(error)
    return path, info.duration, info.sample_rate, ""


def index_source(
    source: str, min_duration: float, threads: int = INDEX_THREADS
) -> tuple[list[AudioEntry], list[tuple[str, str]]]:
    """Usable entries of one folder or manifest, and the ``(path, reason)`` of each skipped file.

    Headers are read by ``threads`` threads (libsndfile releases the interpreter lock while it reads, which
    matters on network file systems); the order of the result does not depend on them.
    """
    if not os.path.exists(source):
        raise DataError(f"data source '{source}' does not exist; give a folder or a CSV/JSONL manifest")
    if os.path.isfile(source) and source.lower().endswith(MANIFEST_EXTENSIONS):
        candidates = read_manifest(source)
    else:
        candidates = [(path, -1.0) for path in find_audio_files([source])]
    if threads > 1 and len(candidates) > threads:
        with ThreadPoolExecutor(threads) as pool:
            checked = list(pool.map(_check_file, candidates, chunksize=64))
    else:
        checked = [_check_file(candidate) for candidate in candidates]
    entries, skipped = [], []
    for path, duration, sample_rate, problem in checked:
        if problem:
            skipped.append((path, problem))
        elif duration < min_duration:
            skipped.append((path, f"shorter than {min_duration:g} s ({duration:.2f} s)"))
        else:
            entries.append(AudioEntry(path, duration, sample_rate))
    return entries, skipped


def write_manifest(entries: list[AudioEntry], path: str) -> None:
    """Write ``entries`` as a CSV manifest with durations, so the next indexing opens no file."""
    folder = os.path.dirname(os.path.abspath(path))
    with atomic_path(path) as temporary, open(temporary, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "duration"])
        for entry in entries:
            writer.writerow([os.path.relpath(os.path.abspath(entry.path), folder), f"{entry.duration:.6f}"])


def active_level_db(
    wav: np.ndarray, sample_rate: int, frame_seconds: float = 0.02, range_db: float = 40.0
) -> float:
    """Level (dB FS) of the active part of a signal: mean power of the frames within ``range_db`` of
    the loudest frame, in the spirit of ITU-T P.56, so pauses do not lower the measured level."""
    frame = max(1, int(frame_seconds * sample_rate))
    count = wav.size // frame
    if count == 0:
        return rms_db(wav)
    powers = np.mean(np.square(wav[: count * frame].reshape(count, frame), dtype=np.float64), axis=1)
    loudest = powers.max()
    if loudest <= 0:
        return rms_db(wav)
    active = powers[powers >= loudest * 10.0 ** (-range_db / 10.0)]
    return float(10.0 * np.log10(active.mean()))


def level_range(value: float | list[float]) -> tuple[float, float] | None:
    """``CleanSource.target_level_db`` as ``(min, max)`` dB FS, or None when it is 0 (no normalisation)."""
    if isinstance(value, int | float) and not isinstance(value, bool) and value == 0:
        return None
    try:
        low, high = check_range("CleanSource.target_level_db", value, high=0.0)
    except (TypeError, ValueError) as error:  # ConfigError is a ValueError; a mapping a TypeError
        raise DataError(
            f"CleanSource.target_level_db: {value!r} is not a level in dB FS (at most 0) nor a [min, max] range "
            "of them (e.g. [-45, -15]; 0 turns normalisation off)"
        ) from error
    return low, high


class CleanSource:
    """Several clean-audio sources sampled with weights; random excerpts that avoid silence.

    Parameters
    ----------
    sources : list[str]
        Folders and/or CSV/JSONL manifests.
    weights : list[float]
        Probability weight of each source (equal when empty). Within a source, files are drawn in
        proportion to their duration, so every second of audio is equally likely.
    min_duration : float
        Files shorter than this (seconds) are skipped.
    silence_threshold_db : float
        An excerpt whose RMS level is below this (dB FS) is redrawn, up to ``tries`` times; the loudest
        draw is kept if none passes.
    tries : int
        Draws per excerpt before the loudest one drawn is taken.
    target_level_db : float or list[float]
        [min, max] active level (dB FS) drawn per excerpt, which it is scaled to; a single number fixes
        the level and 0 disables normalisation. The degradations then act on the scaled excerpt, so input
        and target share the level. A range is what keeps a model level-preserving: trained on targets at
        one fixed level, it learns to output that level whatever comes in, and does worse on quiet
        recordings (``benchmarks/level_robustness.py``). The default spans quiet consumer recordings (-45)
        to loud broadcast speech (-15).
    max_peak : float
        Excerpts whose peak exceeds this after normalisation are scaled down to it.
    speed : list[float]
        [min, max] speed factor drawn per excerpt (Kaldi-style speed perturbation: tempo, pitch and
        formants move together, as if another voice read it): the excerpt is read at ``rate / factor``
        (rounded to 100 Hz) and used at ``rate``. ``[1, 1]`` leaves the audio as recorded. Training
        reads it; validation always gets the audio as recorded.
    """

    def __init__(
        self,
        sources: list[str],
        weights: list[float] = [],  # noqa: B006
        min_duration: float = 1.0,
        silence_threshold_db: float = -50.0,
        tries: int = 8,
        target_level_db: float | list[float] = [-45.0, -15.0],  # noqa: B006
        max_peak: float = 0.99,
        speed: list[float] = [1.0, 1.0],  # noqa: B006
    ):
        if len(speed) != 2 or not 0.5 <= speed[0] <= speed[1] <= 2.0:
            raise DataError(f"CleanSource.speed: {list(speed)} is not a [min, max] range within 0.5-2")
        self.speed = (float(speed[0]), float(speed[1]))
        if not sources:
            raise DataError("no clean-audio sources given; pass folders or manifests")
        weights = list(weights) or [1.0] * len(sources)
        if len(weights) != len(sources) or min(weights) < 0:
            raise DataError(f"{len(sources)} sources need {len(sources)} non-negative weights, got {weights}")
        self.sources, self.entries, kept_weights, skipped = [], [], [], []
        for source, weight in zip(sources, weights, strict=True):
            entries, bad = index_source(source, min_duration)
            skipped += bad
            if not entries:
                logger.warning("data source '%s' has no usable audio file and is ignored", source)
                continue
            self.sources.append(source)
            self.entries.append(entries)
            kept_weights.append(weight)
        report_skipped(skipped, "clean-audio")
        self.skipped = skipped
        if not self.entries or sum(kept_weights) <= 0:
            raise DataError(
                f"no usable audio in {sources} (need files of at least {min_duration:g} s in "
                f"{', '.join(e.lstrip('.') for e in ('.wav', '.flac', '.ogg', '.mp3'))} or manifests)"
            )
        self.weights = np.asarray(kept_weights, dtype=np.float64) / sum(kept_weights)
        self.file_weights = [
            np.asarray([e.duration for e in entries]) / sum(e.duration for e in entries)
            for entries in self.entries
        ]
        self.silence_threshold_db = silence_threshold_db
        self.tries = max(1, tries)
        self.target_level_db = level_range(target_level_db)
        self.max_peak = max_peak
        self._bad: set[str] = set()
        self._new_failures: list[str] = []

    def __len__(self) -> int:
        return sum(len(entries) for entries in self.entries)

    @property
    def total_seconds(self) -> float:
        return float(sum(e.duration for entries in self.entries for e in entries))

    def pick(self, state: np.random.RandomState) -> AudioEntry:
        """A file: a source by weight, then a file of it by duration."""
        source = int(state.choice(len(self.entries), p=self.weights))
        return self.entries[source][int(state.choice(len(self.entries[source]), p=self.file_weights[source]))]

    def read(self, entry: AudioEntry, start_seconds: float, seconds: float, sample_rate: int) -> np.ndarray:
        """``seconds`` of ``entry`` from ``start_seconds``, mono, at ``sample_rate``, zero-padded at the end."""
        try:
            with soundfile.SoundFile(entry.path) as handle:
                native = handle.samplerate
                start = int(start_seconds * native)
                handle.seek(start)
                data = handle.read(int(np.ceil(seconds * native)), dtype="float32", always_2d=True)
        except (soundfile.LibsndfileError, RuntimeError) as error:
            raise AudioFileError(f"cannot read '{entry.path}': {error}") from None
        # NaN or infinite samples (float files only) would poison every pair made from them.
        check_finite(entry.path, data, start, native)
        wav = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
        if native != sample_rate:
            import torch

            wav = resample(torch.from_numpy(np.ascontiguousarray(wav)), native, sample_rate).numpy()
        length = int(round(seconds * sample_rate))
        return wav[:length] if wav.size >= length else np.pad(wav, (0, length - wav.size))

    def excerpt(self, state: np.random.RandomState, length: int, sample_rate: int) -> np.ndarray:
        """A random non-silent excerpt, ``(length,)`` float32 at ``sample_rate``, level-normalised.

        Unreadable files met here (a manifest can name a broken file without indexing opening it) are
        reported once and avoided from then on.
        """
        # Speed perturbation: ``length`` samples read at ``read_rate`` play ``sample_rate / read_rate``
        # times faster. The factor is drawn only when asked for, so seeded items are otherwise unchanged.
        read_rate = sample_rate
        if self.speed != (1.0, 1.0):
            factor = state.uniform(*self.speed)
            read_rate = max(100, int(round(sample_rate / factor / 100.0)) * 100)
        seconds = length / read_rate
        best, best_level, reads = None, -np.inf, 0
        # Bounded: a few more draws than ``tries`` are allowed for files found unreadable on the way.
        for _ in range(self.tries * 4):
            if reads >= self.tries:
                break
            entry = self.pick(state)
            start = state.uniform(0.0, max(0.0, entry.duration - seconds))
            if entry.path in self._bad:
                continue
            try:
                wav = self.read(entry, start, seconds, read_rate)  # length samples
            except AudioFileError as error:
                self._bad.add(entry.path)
                self._new_failures.append(str(error))
                logger.warning("skipping unreadable file (reported once): %s", error)
                continue
            reads += 1
            level = rms_db(wav)
            if level > best_level:
                best, best_level = wav, level
            if level >= self.silence_threshold_db:
                break
        if best is None:
            raise DataError(f"could not read any audio from {self.sources}; see the warnings above")
        return self.normalize(best, sample_rate, self.draw_level(state))

    def draw_level(self, state: np.random.RandomState) -> float | None:
        """The level of the next excerpt; drawn only for a range, so seeded items at a fixed level are what
        they always were."""
        if self.target_level_db is None:
            return None
        low, high = self.target_level_db
        return low if low == high else float(state.uniform(low, high))

    def take_failures(self) -> list[str]:
        """Errors of the files found unreadable since the last call (each file once per process)."""
        failures, self._new_failures = self._new_failures, []
        return failures

    def normalize(self, wav: np.ndarray, sample_rate: int, target_db: float | None) -> np.ndarray:
        """``wav`` scaled to the active level ``target_db`` (None: as it is), its peak kept <= ``max_peak``."""
        if target_db is not None:
            level = active_level_db(wav, sample_rate)
            if level > -120.0:
                wav = wav * np.float32(10.0 ** ((target_db - level) / 20.0))
        peak = float(np.max(np.abs(wav))) if wav.size else 0.0
        if peak > self.max_peak:
            wav = wav * np.float32(self.max_peak / peak)
        return wav.astype(np.float32)
