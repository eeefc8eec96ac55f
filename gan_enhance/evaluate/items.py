"""The files an evaluation scores: clean references paired with degraded and enhanced files, or recordings
with no reference at all.

Every input may be a folder or a single audio file. Files in folders are matched by relative path without
extension (``clean/a/b.wav`` <-> ``enhanced/a/b.flac``); a single file is matched to a single clean (or
recording) file whatever its name, and to the file of its own name in a folder.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch

from gan_enhance.audio import AUDIO_EXTENSIONS, read_audio
from gan_enhance.errors import DataError, GanEnhanceError


@dataclass
class Item:
    """One test file: its key (relative path without extension), clean and degraded signals.

    ``clean`` is None for a recording scored without a reference; its ``degraded`` signal is then the
    recording (the input systems run on).
    """

    key: str
    clean: torch.Tensor | None
    clean_rate: int
    degraded: torch.Tensor | None = None
    degraded_rate: int = 0
    # system name -> its output file (enhanced folders, and the recording itself without a reference)
    enhanced_paths: dict[str, str] = field(default_factory=dict)


@dataclass
class Failure:
    """A test file that cannot be scored: its key and the error (whose message names the file)."""

    key: str
    error: GanEnhanceError


def files_by_key(path: str) -> dict[str, str]:
    """Audio files of a folder (key: relative path without extension), or ``{stem: path}`` for one file."""
    from gan_enhance.data.files import find_audio_files, relative_key

    if os.path.isfile(path):
        if not path.lower().endswith(AUDIO_EXTENSIONS):
            raise DataError(
                f"'{path}' is not an audio file; give one ending in {', '.join(AUDIO_EXTENSIONS)}"
            )
        return {os.path.splitext(os.path.basename(path))[0]: path}
    if not os.path.isdir(path):
        raise DataError(f"'{path}' does not exist; check the path")
    files = {relative_key(file, path): file for file in find_audio_files([path])}
    if not files:
        raise DataError(f"no audio files under '{path}'")
    return files


def matched_keys(clean_dir: str, other_dirs: list[str]) -> tuple[dict[str, str], list[dict[str, str]]]:
    """Clean files and, for each other folder (or file), its files, restricted to keys present everywhere.

    When ``clean_dir`` is a single file, every other single file is paired with it whatever its name.
    """
    clean = files_by_key(clean_dir)
    others = [files_by_key(folder) for folder in other_dirs]
    if os.path.isfile(clean_dir):
        (key,) = clean
        others = [
            {key: next(iter(files.values()))} if os.path.isfile(folder) else files
            for folder, files in zip(other_dirs, others)
        ]
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
    """Items from folders (or single files): clean always, degraded and enhanced (system name -> folder)
    when given.

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


def recording_items(
    recordings: str, name: str, enhanced: dict[str, str] | None = None
) -> Iterator[Item | Failure]:
    """Items without a reference: each recording (a folder's files, or one file) is scored itself as
    system ``name``, is the input systems run on, and is matched to the files of ``enhanced`` folders.

    An unreadable recording gives a :class:`Failure`.
    """
    enhanced = enhanced or {}
    found, others = matched_keys(recordings, list(enhanced.values()))
    for key, path in found.items():
        try:
            wav, rate = read_audio(path)
        except GanEnhanceError as error:
            yield Failure(key, error)
            continue
        paths = {name: path, **{system: files[key] for system, files in zip(enhanced, others)}}
        yield Item(key=key, clean=None, clean_rate=0, degraded=wav, degraded_rate=rate, enhanced_paths=paths)


def degraded_items(
    clean_dir: str, degrade: Callable[[torch.Tensor, int, int], tuple[torch.Tensor, int]]
) -> Iterator[Item | Failure]:
    """Items whose degraded signal is made from the clean file by ``degrade(wav, rate, index)``; an
    unreadable clean file gives a :class:`Failure`."""
    clean = files_by_key(clean_dir)
    for index, (key, path) in enumerate(clean.items()):
        try:
            wav, rate = read_audio(path)
        except GanEnhanceError as error:
            yield Failure(key, error)
            continue
        degraded, degraded_rate = degrade(wav, rate, index)
        yield Item(key=key, clean=wav, clean_rate=rate, degraded=degraded, degraded_rate=degraded_rate)
