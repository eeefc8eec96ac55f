"""Each stage's adversary at equal wall time: which discriminator families should a stage train with?

Usage::

    .venv/bin/python benchmarks/stage_discriminators.py --stage 2   # 4 arms x 18 min after a 20 min warm-up
    .venv/bin/python benchmarks/stage_discriminators.py --stage 1   # 3 arms x 18 min after a 20 min warm-up
    .venv/bin/python benchmarks/stage_discriminators.py --stage 1 --quick  # smoke run: 1 min each
    .venv/bin/python benchmarks/stage_discriminators.py --stage 2 --arms mpd-mbd msstft --minutes-per-arm 30

The stage's config as shipped (``conf/stage1_16k.yml``: HiFi++ 16 -> 16 kHz; ``conf/stage2_48k.yml``:
HiFi++ 16 -> 48 kHz; restoration task, the stage's loss weights and full-size discriminators). WavLM's
weights cannot be downloaded here, so its loss weight is 0 in every arm; batch and segment are small.

1. Data (``STAGES``). Stage 1: the speech of ``--data`` split by whole speakers, noises and rooms as in
   ``benchmarks/learning.py`` (held-out speakers in <= 4 s test pieces; validation on its validation
   voices). Stage 2: the only genuinely full-band recordings (``FULL_BAND``: two voices, castanets and an
   anechoic operatic voice; see its MANIFEST.md), split in time: each one's first 70% trains, its last 30%
   is cut into <= 1 s test pieces (validation draws from the training material). Either way the test
   pieces are degraded once, seeded, by ``gan-enhance degrade`` with the stage's task at 0-10 dB SNR with
   held-out noise recordings (stage 1 without reverb, as learning.py's test set; stage 2 with synthetic
   rooms at the task's rate).
2. A regression warm-up (no adversary) of ``--warmup-minutes`` stands in for the stage's regression phase
   (stage 1) or for stage 1 (stage 2); every arm then fine-tunes from it (``FineTune.checkpoint``,
   discriminators new) for ``--minutes-per-arm`` of wall time, stopped by SIGTERM: equal time, not equal
   steps, since the question is what a discriminator buys per unit of training time. Arms (``ARMS``): the
   three families (MPD + MS-STFT + multi-band, base.yml's), FINALLY's MS-STFT alone (at base.yml's
   weights; stage 2 also with the adversarial weights raised to the three families' share of the
   gradient), DAC's pair (MPD + multi-band; not run by default), and the warm-up continued without an
   adversary (``regression``: what any adversary changes at this scale). A finished arm is reused by a
   later call with the same settings.
3. ``gan-enhance export`` (the arm's last state) and ``enhance`` of the test pieces; ``gan-enhance
   evaluate`` (SI-SDR, log-spectral distance, multi-scale mel distance; stage 1 adds wide-band PESQ and
   STOI, stage 2 splits LSD below and above the input's 8 kHz band edge); ``gan-enhance compare`` (paired
   t-tests against the three-family arm).

Prints one markdown table (and writes ``<out>/stage<N>_discriminators.md``): metric means, p-values against
the three-family arm, steps and steps per second, and the validation curves. Everything goes under
``--out`` (default ``exp/stage<N>_discriminators``, git-ignored).
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from equal_time import (  # noqa: E402
    TEST_NOISE,
    BenchmarkError,
    compare,
    export_and_enhance,
    gan_enhance,
    held_out_split,
    log,
    matches,
    mean_scores,
    train_arm,
    validation_curves,
    write_manifest,
    write_test_set,
)

FULL_BAND = (
    "hifitts_44k*",
    "vctk_p286_011_48k*",
    "castanets_dry_44k*",
    "openair_anechoic_operatic_voice_48k*",
)
TRAIN_SHARE = 0.7
FULL_BAND_PIECE_SECONDS = 1.0
# Stage 2's rates: 16 kHz degraded input, 48 kHz clean reference.
IN_RATE, OUT_RATE = 16000, 48000
REFERENCE = "mpd-msstft-mbd"
# Each arm's discriminator families and any other settings.
ARMS = {
    REFERENCE: ["--discriminators", "[mpd, msstft, mbd]"],
    "msstft": ["--discriminators", "[msstft]"],
    # Stage 2: MS-STFT alone at base.yml's weights gives the adversary less of the gradient at the output
    # than the three families do (over the first 200 steps, logged grad/adv/*: feature matching 0.047
    # against 0.113, adversarial 0.0032 against 0.0089); 2.4x the adversarial weights give it most of their
    # share (0.077 and 0.0066), so a difference is not just a weaker adversary.
    "msstft-x2.4": [
        "--discriminators",
        "[msstft]",
        "--lambdas.adv/feat",
        "1296",
        "--lambdas.adv/gen",
        "31.2",
    ],
    "mpd-mbd": ["--discriminators", "[mpd, mbd]"],
    "regression": ["--discriminators", "[]"],
}
LABELS = {
    "si_sdr": "SI-SDR dB (up)",
    "pesq_wb": "PESQ-WB (up)",
    "stoi": "STOI (up)",
    "lsd": "LSD (down)",
    "lsd_low": "LSD < 8 kHz (down)",
    "lsd_high": "LSD > 8 kHz (down)",
    "mel_distance": "mel distance (down)",
}
# Small enough for minutes on a 2-core CPU; everything else is the stage's.
SETTINGS = {
    "lambdas": {"wavlm/loss": 0.0},
    "Trainer.device": "cpu",
    "Trainer.max_steps": 10_000_000,
    "Trainer.batch_size": 2,
    "Trainer.num_workers": 1,
    "Trainer.quiet": True,
    "Trainer.log_every": 25,
    "Trainer.sample_every": 0,
    "Trainer.checkpoint_every": 100_000,
    "Trainer.keep_every": 0,
    "Trainer.speech_metrics": False,
    "Scheduler.warmup_steps": 50,
    "EMA.start_step": 100,
    "Data.segment_samples": 24576,
    "Data.val_segment_samples": 24576,
    "Data.epoch_items": 2000,
    "Data.val_items": 4,
    "Data.pin_memory": False,
    "FineTune.checkpoint": "",
}


@dataclass(frozen=True)
class Stage:
    """What differs between the stages: the config, the material and what the test set measures.

    ``prepare(data, folder, config, env)`` writes the training material under ``folder``, adds it to the
    overlay ``config``, writes the degraded test set in ``folder/test`` and returns its number of pieces.
    """

    config: str
    metrics: tuple[str, ...]
    arms: tuple[str, ...]
    prepare: Callable[[Path, Path, Path, dict[str, str]], int]
    material: str


def prepare_speech(data: Path, folder: Path, config: Path, env: dict[str, str]) -> int:
    """Stage 1's material: the speech split by speakers, noises and rooms as ``benchmarks/learning.py``
    splits it; the held-out speakers in <= 4 s pieces, degraded as learning.py's test set (the stage's chain
    without its Reverb step)."""
    parts = held_out_split(data)
    for name in ("train", "val"):
        write_manifest(parts["speech"][name], folder / f"{name}.csv")
    material = {
        "Data.train_sources": [str(folder / "train.csv")],
        "Data.val_sources": [str(folder / "val.csv")],
        "Data.noise_dirs": parts["noise"]["train"],
        "Data.rir_dirs": parts["rir"]["train"],
    }
    write_overlay(config, material)
    return write_test_set(config, parts, folder / "test", 0, 0, False, env)


def prepare_full_band(data: Path, folder: Path, config: Path, env: dict[str, str]) -> int:
    """Stage 2's material: the full-band recordings split in time (first 70% trains, the rest in <= 1 s
    test pieces degraded to 16 kHz with held-out noises)."""
    import numpy as np
    import torch

    from gan_enhance.audio import read_audio, write_audio
    from gan_enhance.data.files import find_audio_files

    files = [path for path in find_audio_files([str(data)]) if matches(path, FULL_BAND)]
    noises = find_audio_files([str(data / "noise")])
    train_noise = [path for path in noises if not matches(path, TEST_NOISE)]
    test_noise = [path for path in noises if matches(path, TEST_NOISE)]
    if len(files) < len(FULL_BAND) or not train_noise or not test_noise:
        raise BenchmarkError(
            f"{data}: needs the full-band files {', '.join(FULL_BAND)} and noise/ recordings"
        )
    for path in files:
        wav = read_audio(path, OUT_RATE, mono=True)[0][0].numpy()
        cut = int(TRAIN_SHARE * wav.size)
        stem = Path(path).stem
        write_audio(folder / "train" / f"{stem}.wav", torch.from_numpy(wav[:cut])[None], OUT_RATE)
        count = math.ceil((wav.size - cut) / (FULL_BAND_PIECE_SECONDS * OUT_RATE))
        for number, piece in enumerate(np.array_split(wav[cut:], count)):
            target = folder / "pieces" / f"{stem}_{number}.wav"
            write_audio(target, torch.from_numpy(piece)[None], OUT_RATE)
    material = {
        "Data.train_sources": [str(folder / "train")],
        "Data.val_sources": [str(folder / "train")],
        "Data.noise_dirs": train_noise,
    }
    write_overlay(config, material)
    args = ["degrade", str(folder / "pieces"), str(folder / "test"), "--task", "restoration", "--seed", "0"]
    args += ["--in-sample-rate", str(IN_RATE), "--out-sample-rate", str(OUT_RATE)]
    args += ["--noise", *test_noise, "--set", "AddNoise.snr_db=[0, 10]", "--set", "AddNoise.synthetic_prob=0"]
    gan_enhance(args, env, folder / "degrade.log")
    return len(find_audio_files([str(folder / "pieces")]))


STAGES = {
    1: Stage(
        config="stage1_16k.yml",
        metrics=("si_sdr", "pesq_wb", "stoi", "lsd", "mel_distance"),
        arms=(REFERENCE, "msstft", "regression"),
        prepare=prepare_speech,
        material="held-out speakers in <= 4 s pieces",
    ),
    2: Stage(
        config="stage2_48k.yml",
        metrics=("si_sdr", "lsd", "lsd_low", "lsd_high", "mel_distance"),
        arms=(REFERENCE, "msstft", "msstft-x2.4", "regression"),
        prepare=prepare_full_band,
        material="held-out full-band pieces",
    ),
}


def write_overlay(config: Path, entries: dict) -> None:
    """Add ``entries`` to the overlay config ``config`` (written anew when it does not exist yet)."""
    import yaml

    overlay = yaml.safe_load(config.read_text()) if config.is_file() else {}
    config.write_text(yaml.safe_dump({**overlay, **entries}, sort_keys=False))


def prepare(
    number: int, data: Path, out: Path, valid_every: int, env: dict[str, str]
) -> tuple[Path, Path, int]:
    """Material, the overlay config and the degraded test set of stage ``number``; (config, test, items)."""
    stage = STAGES[number]
    folder = out / "data"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    config = folder / f"stage{number}_data.yml"
    overlay = {
        "$include": [str(ROOT / "conf" / stage.config)],
        "name": f"stage{number}_discriminators",
        "runs_dir": str(out / "runs"),
        "Trainer.valid_every": valid_every,
        **SETTINGS,
    }
    write_overlay(config, overlay)
    return config, folder / "test", stage.prepare(data, folder, config, env)


def evaluate(
    names: list[str], out: Path, test: Path, metrics: tuple[str, ...], threads: int, env: dict[str, str]
) -> tuple[dict, dict]:
    """Export each arm's last state, enhance, evaluate, compare with the reference arm; (means, compare
    rows keyed by (baseline, system, metric))."""
    enhanced = [
        f"--enhanced={name}={export_and_enhance(name, out, test, threads, env, tag='latest')}"
        for name in names
    ]
    scores = out / "eval"
    shutil.rmtree(scores, ignore_errors=True)
    log("evaluating")
    gan_enhance(
        ["evaluate", "--clean", str(test / "clean"), "--degraded", str(test / "degraded"), *enhanced]
        + ["--system=identity=identity", "--metrics", ",".join(metrics), "--spectrograms", "0"]
        + ["--no-save-audio", "--out", str(scores)],
        env,
        out / "logs" / "evaluate.log",
    )
    means = {name: mean_scores(scores / f"{name}.csv", metrics) for name in ["identity", *names]}
    others = [name for name in names if name != REFERENCE]
    if REFERENCE not in names or not others:
        return means, {}
    return means, compare(REFERENCE, others, scores, out / "compare", env, metrics)


def report(means: dict, arms: dict, rows: dict, metrics: tuple[str, ...], title: str) -> str:
    lines = [title, "", "| system | " + " | ".join(LABELS[m] for m in metrics) + " | steps | steps/s |"]
    lines.append("|---" * (len(metrics) + 3) + "|")
    for name, values in means.items():
        cells = []
        for metric in metrics:
            cell = f"{values[metric]:.3f}"
            row = rows.get((REFERENCE, name, metric))
            if row:
                cell += f" (p {float(row['p_ttest']):.2f})"
            cells.append(cell)
        arm = arms.get(name)
        steps = [str(arm["steps"]), f"{arm['steps'] / arm['seconds']:.2f}"] if arm else ["-", "-"]
        lines.append(f"| {name} | " + " | ".join(cells + steps) + " |")
    lines += ["", f"p: paired t-test against {REFERENCE} (gan-enhance compare, Holm over the arms)."]
    for name, arm in arms.items():
        curve = arm.get("curves", {}).get("mel/loss", [])
        if curve:
            lines.append(
                f"- {name}: validation mel/loss {curve[0]:.3f} -> {curve[-1]:.3f} ({len(curve)} points)"
            )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    default_data = os.environ.get("GAN_ENHANCE_DATA") or str(ROOT.parent / "shared" / "data")
    parser.add_argument("--stage", type=int, required=True, choices=sorted(STAGES), help="the stage to ask")
    parser.add_argument("--data", default=default_data, help="folder with speech/, music/, noise/, rir/")
    parser.add_argument("--out", default="", help="output folder (default exp/stage<N>_discriminators)")
    parser.add_argument("--arms", nargs="+", default=[], choices=list(ARMS), help="default: the stage's")
    parser.add_argument("--warmup-minutes", type=float, default=0.0, help="regression warm-up (default 20)")
    parser.add_argument("--minutes-per-arm", type=float, default=0.0, help="wall time per arm (default 18)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (OMP_NUM_THREADS)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 minute each")
    args = parser.parse_args()
    stage = STAGES[args.stage]
    data = Path(args.data)
    out = Path(args.out or ROOT / "exp" / f"stage{args.stage}_discriminators").resolve()
    if not (data / "speech").is_dir():
        print(f"skipped: no shared data at {data} (set --data or GAN_ENHANCE_DATA)")
        return 0
    warmup = args.warmup_minutes or (1.0 if args.quick else 20.0)
    minutes = args.minutes_per_arm or (1.0 if args.quick else 18.0)
    valid_every = 10 if args.quick else 50
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    config, test, items = prepare(args.stage, data, out, valid_every, env)
    log(f"{items} test pieces; warm-up {warmup:g} min, then {minutes:g} min per arm")
    base = ["train", "--args.load", str(config)]
    start = ["--discriminators", "[]", "--Trainer.adversarial_start", "10000000"]
    train_arm("warmup", [*base, "--name", "warmup", *start], warmup, out / "runs" / "warmup", env)
    arms = {}
    for name in args.arms or stage.arms:
        extra = ["--name", name, *ARMS[name], "--Trainer.adversarial_start", "0"]
        extra += ["--FineTune.checkpoint", str(out / "runs" / "warmup" / "checkpoints" / "latest")]
        arms[name] = train_arm(
            name, [*base, *extra, "--FineTune.use_ema", "false"], minutes, out / "runs" / name, env
        )
        arms[name]["curves"] = validation_curves(out / "runs" / name)
    means, rows = evaluate(list(arms), out, test, stage.metrics, args.threads, env)
    title = (
        f"# stage {args.stage}'s discriminators: {items} {stage.material} (0-10 dB SNR, restoration task), "
        f"{warmup:g} min regression warm-up, then {minutes:g} min per arm, {args.threads} thread(s)"
    )
    text = report(means, arms, rows, stage.metrics, title)
    print(text)
    (out / f"stage{args.stage}_discriminators.md").write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
