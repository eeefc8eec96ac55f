"""What the equal-wall-time benchmarks share (``learning.py``, ``stage_discriminators.py``).

- The held-out split of the shared data (``--data``, see its MANIFEST.md): whole speakers, noise files and
  rooms kept out of training (``TEST_*``) and voices kept for validation (``VAL_SPEECH``).
- Test material: speech cut into pieces and degraded once, seeded, by ``gan-enhance degrade`` with a
  run's own task chain at 0-10 dB SNR with the held-out noise recordings.
- Training an arm for a fixed wall time: ``gan-enhance train`` stopped by SIGTERM at its deadline (equal
  time, not equal steps), recorded in ``arm.json`` so that a later call with the same settings reuses it.
- Scoring: ``gan-enhance export`` + ``enhance``, the means of an ``evaluate`` table and ``gan-enhance
  compare``'s paired tests.

Every step runs through the project's own command line, as a user would run it.
"""

from __future__ import annotations

import csv
import fnmatch
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Held out whole: every CMU ARCTIC speaker (a0007's speaker is unnamed, so it stays with them), one
# LibriSpeech reader, VCTK p286 and one Lyra voice for test; two other voices for validation.
TEST_SPEECH = ("cmu_arctic_*", "librispeech_3436-*", "vctk_p286_*", "lyra_sample2_*")
VAL_SPEECH = ("lyra_sample1_*", "hifitts_*")
# Two of five noise files and three of ten responses (both clap files are the same seminar room).
TEST_NOISE = ("speechcommands_running_tap*", "freesound_573577*")
TEST_RIR = ("clap_seminar_room_*", "openair_st_margarets_church*")
TEST_SNR_DB = [0.0, 10.0]
TEST_COLORS = ["white", "pink", "brown"]
TEST_PIECE_SECONDS = 4.0
# The test and validation pieces' rate (stage 1's and learning.py's).
SAMPLE_RATE = 16000
# After SIGTERM the trainer finishes its step, writes checkpoints/latest and exits 143.
STOP_GRACE_SECONDS = 180
INTERRUPTED = 128 + signal.SIGTERM


class BenchmarkError(RuntimeError):
    """A stage failed; the message names the command and shows the end of its output."""


def log(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)


def gan_enhance(args: list[str], env: dict[str, str], log_path: Path) -> str:
    """Run one ``gan-enhance`` command to the end, its output saved to ``log_path``; returns stdout."""
    result = subprocess.run(
        [sys.executable, "-m", "gan_enhance", *args], cwd=ROOT, env=env, capture_output=True, text=True
    )
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_path.write_text(result.stdout + result.stderr)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-15:])
        raise BenchmarkError(f"gan-enhance {args[0]} exited {result.returncode} ({log_path}):\n{tail}")
    return result.stdout


# -- test material --------------------------------------------------------------------------------------------------
def matches(path: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatch(os.path.basename(path), pattern) for pattern in patterns)


def split(files: list[str], test: tuple[str, ...], val: tuple[str, ...] = ()) -> dict[str, list[str]]:
    """Files by split, matched on their names; whatever no pattern holds out is training data."""
    parts: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    for path in files:
        held = [key for key, patterns in (("test", test), ("val", val)) if matches(path, patterns)]
        parts[held[0] if held else "train"].append(path)
    return parts


def held_out_split(data: Path) -> dict[str, dict[str, list[str]]]:
    """The files of ``data``'s ``speech/``, ``noise/`` and ``rir/`` by split (``{"speech": {"train": [...],
    "val": [...], "test": [...]}, ...}``); noise and rooms have no validation files.

    Raises
    ------
    BenchmarkError
        A folder leaves a split without files.
    """
    from gan_enhance.data.files import find_audio_files

    parts = {
        "speech": split(find_audio_files([str(data / "speech")]), TEST_SPEECH, VAL_SPEECH),
        "noise": split(find_audio_files([str(data / "noise")]), TEST_NOISE),
        "rir": split(find_audio_files([str(data / "rir")]), TEST_RIR),
    }
    for kind, files in parts.items():
        empty = [name for name, paths in files.items() if not paths and (kind == "speech" or name != "val")]
        if empty:
            raise BenchmarkError(f"{data / kind}: no {kind} file for the {', '.join(empty)} split(s)")
    return parts


def write_manifest(paths: list[str], target: Path) -> None:
    with open(target, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path"])
        writer.writerows([os.path.abspath(path)] for path in paths)


def cut_pieces(paths: list[str]) -> list[tuple[str, object]]:
    """``(name, samples)`` of ``paths`` cut into <= ``TEST_PIECE_SECONDS`` pieces at ``SAMPLE_RATE``."""
    import numpy as np

    from gan_enhance.audio import read_audio

    pieces = []
    for path in paths:
        wav = read_audio(path, SAMPLE_RATE, mono=True)[0][0].numpy()
        count = math.ceil(wav.size / (TEST_PIECE_SECONDS * SAMPLE_RATE))
        stem = os.path.splitext(os.path.basename(path))[0]
        pieces += [(f"{stem}_{number}", piece) for number, piece in enumerate(np.array_split(wav, count))]
    return pieces


def write_pieces(pieces: list[tuple[str, object]], folder: Path) -> None:
    """Each ``(name, samples)`` as ``folder/<name>.wav`` at ``SAMPLE_RATE``."""
    import torch

    from gan_enhance.audio import write_audio

    for name, piece in pieces:
        write_audio(folder / f"{name}.wav", torch.from_numpy(piece)[None], SAMPLE_RATE)


def degrade_pieces(
    config: Path,
    folder: Path,
    noises: list[str],
    rirs: list[str],
    seed: int,
    reverb: bool,
    env: dict[str, str],
) -> None:
    """``folder/pieces`` degraded by ``gan-enhance degrade`` with the run's own task chain, at 0-10 dB SNR
    with the recordings ``noises`` (and the rooms ``rirs`` when ``reverb``; else the Reverb step is off):
    ``clean/`` and ``degraded/`` under ``folder``."""
    from gan_enhance.train.builders import read_experiment
    from gan_enhance.train.config import load_config

    data = read_experiment(load_config(config)).data
    settings = {name: dict(values) for name, values in data.degradation_settings.items()}
    # The noise recordings only: no synthetic share, whatever training draws. The colours are then unused but
    # still drawn, and a list of one draws no random number (numpy's randint(1)): pinning the three of the
    # benchmark's first test set keeps its seeded items whatever colours training uses.
    settings.setdefault("AddNoise", {}).update(snr_db=TEST_SNR_DB, synthetic_prob=0.0, colors=TEST_COLORS)
    if not reverb:
        settings.setdefault("Reverb", {})["prob"] = 0.0
    args = ["degrade", str(folder / "pieces"), str(folder), "--task", data.task, "--seed", str(seed)]
    args += ["--in-sample-rate", str(SAMPLE_RATE), "--out-sample-rate", str(SAMPLE_RATE)]
    args += ["--noise", *noises, "--rir", *rirs]
    for class_name, values in settings.items():
        for key, value in values.items():
            args += ["--set", f"{class_name}.{key}={json.dumps(value)}"]
    gan_enhance(args, env, folder / "degrade.log")


def write_test_set(
    config: Path, parts: dict, folder: Path, seed: int, limit: int, reverb: bool, env: dict[str, str]
) -> int:
    """Held-out speech in <= 4 s pieces (the first ``limit``; 0: all), degraded with the held-out noises
    (and rooms when ``reverb``): ``clean/`` and ``degraded/`` under ``folder``; returns how many items."""
    pieces = cut_pieces(parts["speech"]["test"])
    pieces = pieces[:limit] if limit else pieces
    shutil.rmtree(folder, ignore_errors=True)
    write_pieces(pieces, folder / "pieces")
    degrade_pieces(config, folder, parts["noise"]["test"], parts["rir"]["test"], seed, reverb, env)
    return len(pieces)


# -- training at equal wall time ------------------------------------------------------------------------------------
def reusable(run_dir: Path, args: list[str], minutes: float, validation: str = "") -> dict | None:
    """The record of the arm an earlier call trained in ``run_dir`` with these ``args`` for ``minutes``
    and the validation set ``validation`` (a version string); None when it must be trained (again)."""
    record_path = run_dir / "arm.json"
    if not record_path.is_file():
        return None
    record = json.loads(record_path.read_text())
    same = (record["args"], record["minutes"], record.get("validation")) == (args, minutes, validation)
    return record if same else None


def train_arm(
    name: str, args: list[str], minutes: float, run_dir: Path, env: dict[str, str], validation: str = ""
) -> dict:
    """Train until the deadline, then SIGTERM; returns (and records in ``arm.json``) steps and seconds.
    An earlier call's record with the same ``args``, ``minutes`` and ``validation`` is returned instead."""
    record = reusable(run_dir, args, minutes, validation)
    if record:
        log(f"{name}: reusing the finished run in {run_dir}")
        return record
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    log_path = run_dir / "train.log"
    log(f"{name}: training {minutes:g} min: gan-enhance {' '.join(args)}")
    started = time.monotonic()
    with open(log_path, "w") as handle:
        command = [sys.executable, "-m", "gan_enhance", *args]
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT)
        try:
            process.wait(timeout=minutes * 60)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=STOP_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    seconds = time.monotonic() - started
    text = log_path.read_text()
    steps = re.findall(r"at step (\d+)", text)
    if process.returncode not in (0, INTERRUPTED) or not steps:
        tail = "\n".join(text.splitlines()[-15:])
        raise BenchmarkError(f"{name}: gan-enhance train exited {process.returncode} ({log_path}):\n{tail}")
    record = {"args": args, "minutes": minutes, "validation": validation}
    record.update(steps=int(steps[-1]), seconds=seconds)
    (run_dir / "arm.json").write_text(json.dumps(record, indent=1))
    log(f"{name}: {record['steps']} steps in {seconds:.0f} s ({record['steps'] / seconds:.2f} steps/s)")
    return record


def validation_curves(run_dir: Path) -> dict[str, list[float]]:
    """``mel/loss`` and ``metric/sisdr`` of ``logs/val``, in step order."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    if not (run_dir / "logs" / "val").is_dir():
        return {}
    events = EventAccumulator(str(run_dir / "logs" / "val"), size_guidance={"scalars": 0})
    events.Reload()
    tags = events.Tags()["scalars"]
    return {
        tag: [e.value for e in events.Scalars(tag)] for tag in ("mel/loss", "metric/sisdr") if tag in tags
    }


# -- scoring --------------------------------------------------------------------------------------------------------
def export_and_enhance(
    name: str, out: Path, test: Path, threads: int, env: dict[str, str], tag: str = ""
) -> Path:
    """Export run ``name``'s checkpoint ``tag`` (default: ``best`` when it has one, else ``latest``) and
    enhance ``test/degraded`` with it; returns the folder of enhanced files."""
    run_dir, model, enhanced = out / "runs" / name, out / "models" / name, out / "enhanced" / name
    tag = tag or ("best" if (run_dir / "checkpoints" / "best").is_dir() else "latest")
    gan_enhance(["export", str(run_dir), str(model), "--tag", tag], env, out / "logs" / f"{name}.export.log")
    shutil.rmtree(enhanced, ignore_errors=True)
    options = ["--output", str(enhanced), "--threads", str(threads), "--no-progress"]
    gan_enhance(
        ["enhance", str(model), str(test / "degraded"), *options], env, out / "logs" / f"{name}.enhance.log"
    )
    return enhanced


def compare(
    baseline: str,
    systems: list[str],
    scores: Path,
    folder: Path,
    env: dict[str, str],
    metrics: tuple[str, ...],
) -> dict:
    """``gan-enhance compare`` (paired t-test, Holm over ``systems``) -> {(baseline, system, metric): row}."""
    tables = [f"{name}={scores / (name + '.csv')}" for name in [baseline, *systems]]
    args = ["compare", *tables, "--test", "ttest", "--metrics", ",".join(metrics), "--out", str(folder)]
    gan_enhance(args, env, folder / "compare.log")
    with open(folder / "comparison.csv", newline="", encoding="utf-8") as handle:
        return {(row["baseline"], row["system"], row["metric"]): row for row in csv.DictReader(handle)}


def mean_scores(path: Path, metrics: tuple[str, ...]) -> dict[str, float]:
    """Each metric's mean over the finite values of an ``evaluate`` table (NaN when there are none)."""
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    means = {}
    for metric in metrics:
        values = [float(row[metric]) for row in rows if row.get(metric) not in (None, "")]
        values = [v for v in values if math.isfinite(v)]
        means[metric] = sum(values) / len(values) if values else math.nan
    return means
