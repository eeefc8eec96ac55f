"""Finding audio files in folders."""

from __future__ import annotations

import os

from gan_enhance.audio import AUDIO_EXTENSIONS


def find_audio_files(folders: list[str], extensions: tuple[str, ...] = AUDIO_EXTENSIONS) -> list[str]:
    """Audio files under ``folders`` (recursively, symlinks followed), sorted so every process and run
    sees the same order. A path that is itself an audio file is taken as is."""
    found: list[str] = []
    for folder in folders:
        if os.path.isfile(folder) and folder.lower().endswith(extensions):
            found.append(folder)
            continue
        for root, directories, names in os.walk(folder, followlinks=True):
            directories.sort()
            found.extend(
                os.path.join(root, name)
                for name in sorted(names)
                if name.lower().endswith(extensions) and not name.startswith(".")
            )
    return found


def relative_key(path: str, root: str) -> str:
    """A file's path relative to ``root`` without its extension (how paired folders are matched)."""
    return os.path.splitext(os.path.relpath(path, root))[0].replace(os.sep, "/")
