"""Split clean speech (folders and/or CSV/JSONL manifests) into train / validation / test for the recipe.

Held-out sets are drawn by file, or by speaker when ``--speaker-pattern`` names the speaker in each
file's path (relative to its folder or manifest): a speaker's files all land in one split. Sets given
explicitly (``--val``, ``--test``) are used as they are and nothing is held out for them. Writes:

- ``OUT/train.csv``, ``OUT/val.csv``: manifests with durations (training indexes them without opening
  a file);
- ``OUT/test_clean/``: links to the test files (relative paths kept), for ``gan-enhance degrade``;
- ``OUT/split.txt``: files, hours and speakers per split (also printed).

The draw is a function of ``--seed`` and the file list only: the same data gives the same split.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import sys
from collections import defaultdict

from gan_enhance.data.sources import AudioEntry, index_source, report_skipped, write_manifest

SPLITS = ("train", "val", "test")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--speech", nargs="+", required=True, help="clean speech folders or manifests")
    parser.add_argument("--val", nargs="*", default=[], help="validation speech (else held out of --speech)")
    parser.add_argument("--test", nargs="*", default=[], help="test speech (else held out of --speech)")
    parser.add_argument("--val-size", type=float, default=0.05, help="share (< 1) or count (>= 1) held out")
    parser.add_argument("--test-size", type=float, default=0.05, help="share (< 1) or count (>= 1) held out")
    parser.add_argument("--speaker-pattern", default="", help="regex naming the speaker (its first group)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the held-out draw")
    parser.add_argument("--min-duration", type=float, default=1.0, help="shorter files are left out (s)")
    parser.add_argument("--out", required=True, help="folder for the manifests and the test links")
    return parser.parse_args(argv)


def index(sources: list[str], min_duration: float) -> list[tuple[str, AudioEntry]]:
    """``(path relative to its source, entry)`` of every usable file, in a fixed order."""
    found, skipped = [], []
    for source in sources:
        if not os.path.exists(source):
            sys.exit(f"error: '{source}' does not exist; give folders or CSV/JSONL manifests of clean speech")
        entries, bad = index_source(source, min_duration)
        skipped += bad
        root = source if os.path.isdir(source) else os.path.dirname(os.path.abspath(source))
        prefix = os.path.basename(os.path.normpath(source)) if len(sources) > 1 else ""
        for entry in entries:
            relative = os.path.relpath(os.path.abspath(entry.path), os.path.abspath(root))
            found.append((os.path.join(prefix, relative) if prefix else relative, entry))
    report_skipped(skipped, "clean-speech")
    return sorted(found, key=lambda item: item[0])


def speaker_of(relative: str, pattern: re.Pattern | None) -> str:
    """The group a file is held out with: its speaker, or the file itself without a pattern."""
    if pattern is None:
        return relative
    match = pattern.search(relative)
    if match is None:
        sys.exit(
            f"error: --speaker_pattern '{pattern.pattern}' finds no speaker in '{relative}'; "
            "fix the pattern (it is searched in each file's path relative to its folder) or leave it empty"
        )
    return match.group(1) if pattern.groups else match.group(0)


def held_out_count(size: float, groups: int) -> int:
    """A share (< 1, at least one group when positive) or a count (>= 1) of ``groups``."""
    if size <= 0:
        return 0
    return max(1, round(size * groups)) if size < 1 else int(size)


def split(files, val_size: float, test_size: float, pattern: re.Pattern | None, seed: int) -> dict:
    """Split ``files`` into the held-out sets asked for (0 size: none) and train, by group."""
    groups: dict[str, list] = defaultdict(list)
    for relative, entry in files:
        groups[speaker_of(relative, pattern)].append((relative, entry))
    names = sorted(groups)
    random.Random(seed).shuffle(names)
    n_val, n_test = held_out_count(val_size, len(names)), held_out_count(test_size, len(names))
    what = "speakers" if pattern else "files"
    if n_val + n_test >= len(names):
        sys.exit(
            f"error: holding out {n_val} validation and {n_test} test {what} leaves none of the "
            f"{len(names)} for training; lower --val_size / --test_size or add data"
        )
    chosen = {"val": names[:n_val], "test": names[n_val : n_val + n_test], "train": names[n_val + n_test :]}
    return {name: sorted(f for group in chosen[name] for f in groups[group]) for name in chosen}


def link_tree(files, folder: str) -> None:
    """Symbolic links to ``files`` under ``folder``, at their relative paths (a fresh folder each time)."""
    if os.path.isdir(folder):
        for root, _, names in os.walk(folder, topdown=False):
            for name in names:
                os.remove(os.path.join(root, name))
            os.rmdir(root)
    for relative, entry in files:
        target = os.path.join(folder, relative)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        os.symlink(os.path.abspath(entry.path), target)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    pattern = re.compile(args.speaker_pattern) if args.speaker_pattern else None
    speech = index(args.speech, args.min_duration)
    if not speech:
        sys.exit(f"error: no usable audio in {args.speech} (files of at least {args.min_duration:g} s)")
    sets = split(
        speech,
        0 if args.val else args.val_size,
        0 if args.test else args.test_size,
        pattern,
        args.seed,
    )
    for name, given in (("val", args.val), ("test", args.test)):
        if given:
            sets[name] = index(given, args.min_duration)
        if not sets[name]:
            sys.exit(f"error: the {name} set is empty; give --{name}_speech or a positive --{name}_size")
    os.makedirs(args.out, exist_ok=True)
    for name in ("train", "val"):
        write_manifest([entry for _, entry in sets[name]], os.path.join(args.out, f"{name}.csv"))
    link_tree(sets["test"], os.path.join(args.out, "test_clean"))
    lines = []
    for name in SPLITS:
        files = sets[name]
        hours = sum(entry.duration for _, entry in files) / 3600
        named = (
            {m.group(1) if pattern.groups else m.group(0) for r, _ in files if (m := pattern.search(r))}
            if pattern
            else set()
        )
        speakers = f", {len(named)} speakers" if pattern else ""
        lines.append(f"{name}: {len(files)} files, {hours:.2f} h{speakers}")
    with open(os.path.join(args.out, "split.txt"), "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
