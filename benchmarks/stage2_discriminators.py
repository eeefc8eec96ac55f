"""Stage 2's adversary at equal wall time: which discriminator families should the 48 kHz stage train with?

Usage::

    .venv/bin/python benchmarks/stage2_discriminators.py         # 4 arms x 18 min after a 20 min warm-up
    .venv/bin/python benchmarks/stage2_discriminators.py --quick # smoke run: 1 min each
    .venv/bin/python benchmarks/stage2_discriminators.py --arms mpd-mbd msstft --minutes-per-arm 30

``conf/stage2_48k.yml`` as shipped (HiFi++ 16 -> 48 kHz, restoration task, its loss weights and its
full-size discriminators), on the only genuinely full-band recordings of ``--data`` (``FULL_BAND``: two
voices, castanets and an anechoic operatic voice; see its MANIFEST.md). WavLM's weights cannot be
downloaded here, so its loss weight is 0 in every arm; batch and segment are small.

1. Each recording is split in time: its first 70% trains, its last 30% is cut into <= 1 s test pieces and
   degraded once, seeded, by ``gan-enhance degrade`` with the stage's task at 0-10 dB SNR with held-out
   noise recordings (16 kHz degraded input, 48 kHz clean reference).
2. A regression warm-up (no adversary) of ``--warmup-minutes`` stands in for stage 1; every arm then
   fine-tunes from it (``FineTune.checkpoint``, discriminators new) for ``--minutes-per-arm`` of wall time,
   stopped by SIGTERM: equal time, not equal steps, since the question is what a discriminator buys per
   unit of training time. Arms (``ARMS``): the three families (MPD + MS-STFT + multi-band, the stage's
   old default), FINALLY's MS-STFT alone (at base.yml's weights, and with the adversarial weights raised
   to the three families' share of the gradient), DAC's pair (MPD + multi-band; not run by default), and
   the warm-up continued without an adversary (``regression``: what any adversary changes at this
   scale). Validation (the curves under the table) draws from the training material. A finished arm is
   reused by a later call with the same settings.
3. ``gan-enhance export`` (the arm's last state) and ``enhance`` of the test pieces; ``gan-enhance
   evaluate`` (SI-SDR, log-spectral distance over the whole band, below and above the input's 8 kHz band
   edge, multi-scale mel distance); ``gan-enhance compare`` (paired t-tests against the three-family arm).

Prints one markdown table (and writes ``<out>/stage2_discriminators.md``): metric means, p-values against
the three-family arm, steps and steps per second. Everything goes under ``--out`` (git-ignored ``exp/``).
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from learning import (  # noqa: E402
    TEST_NOISE,
    BenchmarkError,
    compare,
    export_and_enhance,
    gan_enhance,
    log,
    matches,
    mean_scores,
    train_arm,
    validation_curves,
)

FULL_BAND = (
    "hifitts_44k*",
    "vctk_p286_011_48k*",
    "castanets_dry_44k*",
    "openair_anechoic_operatic_voice_48k*",
)
TRAIN_SHARE = 0.7
TEST_PIECE_SECONDS = 1.0
OUT_RATE, IN_RATE = 48000, 16000
REFERENCE = "mpd-msstft-mbd"
# Each arm's discriminator families and any other settings.
ARMS = {
    REFERENCE: ["--discriminators", "[mpd, msstft, mbd]"],
    "msstft": ["--discriminators", "[msstft]"],
    # MS-STFT alone at base.yml's weights gives the adversary less of the gradient at the output than the
    # three families do (over the first 200 steps, logged grad/adv/*: feature matching 0.047 against 0.113,
    # adversarial 0.0032 against 0.0089); 2.4x the adversarial weights give it most of their share (0.077
    # and 0.0066), so a difference is not just a weaker adversary.
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
METRICS = ("si_sdr", "lsd", "lsd_low", "lsd_high", "mel_distance")
LABELS = {
    "si_sdr": "SI-SDR dB (up)",
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


def prepare(data: Path, out: Path, valid_every: int, env: dict[str, str]) -> tuple[Path, Path, int]:
    """Train and test material, the overlay config and the degraded test set; returns (config, test, items)."""
    import numpy as np
    import torch
    import yaml

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
    folder = out / "data"
    shutil.rmtree(folder, ignore_errors=True)
    for path in files:
        wav = read_audio(path, OUT_RATE, mono=True)[0][0].numpy()
        cut = int(TRAIN_SHARE * wav.size)
        stem = Path(path).stem
        write_audio(folder / "train" / f"{stem}.wav", torch.from_numpy(wav[:cut])[None], OUT_RATE)
        count = math.ceil((wav.size - cut) / (TEST_PIECE_SECONDS * OUT_RATE))
        for number, piece in enumerate(np.array_split(wav[cut:], count)):
            write_audio(folder / "pieces" / f"{stem}_{number}.wav", torch.from_numpy(piece)[None], OUT_RATE)
    overlay = {
        "$include": [str(ROOT / "conf" / "stage2_48k.yml")],
        "name": "stage2_discriminators",
        "runs_dir": str(out / "runs"),
        "Data.train_sources": [str(folder / "train")],
        "Data.val_sources": [str(folder / "train")],
        "Data.noise_dirs": train_noise,
        "Trainer.valid_every": valid_every,
        **SETTINGS,
    }
    config = folder / "stage2_data.yml"
    config.write_text(yaml.safe_dump(overlay, sort_keys=False))
    test = folder / "test"
    args = ["degrade", str(folder / "pieces"), str(test), "--task", "restoration", "--seed", "0"]
    args += ["--in-sample-rate", str(IN_RATE), "--out-sample-rate", str(OUT_RATE), "--noise", *test_noise]
    args += ["--set", "AddNoise.snr_db=[0, 10]", "--set", "AddNoise.synthetic_prob=0"]
    gan_enhance(args, env, folder / "degrade.log")
    return config, test, len(find_audio_files([str(folder / "pieces")]))


def evaluate(names: list[str], out: Path, test: Path, threads: int, env: dict[str, str]) -> tuple[dict, dict]:
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
        + ["--system=identity=identity", "--metrics", ",".join(METRICS), "--spectrograms", "0"]
        + ["--no-save-audio", "--out", str(scores)],
        env,
        out / "logs" / "evaluate.log",
    )
    means = {name: mean_scores(scores / f"{name}.csv", METRICS) for name in ["identity", *names]}
    others = [name for name in names if name != REFERENCE]
    if REFERENCE not in names or not others:
        return means, {}
    return means, compare(REFERENCE, others, scores, out / "compare", env, METRICS)


def report(means: dict, arms: dict, rows: dict, title: str) -> str:
    lines = [title, "", "| system | " + " | ".join(LABELS[m] for m in METRICS) + " | steps | steps/s |"]
    lines.append("|---" * (len(METRICS) + 3) + "|")
    for name, values in means.items():
        cells = []
        for metric in METRICS:
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
    parser.add_argument("--data", default=default_data, help="folder with speech/, music/, noise/")
    parser.add_argument("--out", default=str(ROOT / "exp" / "stage2_discriminators"), help="output folder")
    default_arms = [name for name in ARMS if name != "mpd-mbd"]
    parser.add_argument("--arms", nargs="+", default=default_arms, choices=list(ARMS))
    parser.add_argument("--warmup-minutes", type=float, default=0.0, help="regression warm-up (default 20)")
    parser.add_argument("--minutes-per-arm", type=float, default=0.0, help="wall time per arm (default 18)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (OMP_NUM_THREADS)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 minute each")
    args = parser.parse_args()
    data, out = Path(args.data), Path(args.out).resolve()
    if not (data / "speech").is_dir():
        print(f"skipped: no shared data at {data} (set --data or GAN_ENHANCE_DATA)")
        return 0
    warmup = args.warmup_minutes or (1.0 if args.quick else 20.0)
    minutes = args.minutes_per_arm or (1.0 if args.quick else 18.0)
    valid_every = 10 if args.quick else 50
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    config, test, items = prepare(data, out, valid_every, env)
    log(f"{items} test pieces; warm-up {warmup:g} min, then {minutes:g} min per arm")
    base = ["train", "--args.load", str(config)]
    start = ["--discriminators", "[]", "--Trainer.adversarial_start", "10000000"]
    train_arm("warmup", [*base, "--name", "warmup", *start], warmup, out / "runs" / "warmup", env)
    arms = {}
    for name in args.arms:
        extra = ["--name", name, *ARMS[name], "--Trainer.adversarial_start", "0"]
        extra += ["--FineTune.checkpoint", str(out / "runs" / "warmup" / "checkpoints" / "latest")]
        arms[name] = train_arm(
            name, [*base, *extra, "--FineTune.use_ema", "false"], minutes, out / "runs" / name, env
        )
        arms[name]["curves"] = validation_curves(out / "runs" / name)
    means, rows = evaluate(list(arms), out, test, args.threads, env)
    title = (
        f"# stage 2's discriminators: {items} held-out full-band test pieces (0-10 dB SNR, restoration task), "
        f"{warmup:g} min regression warm-up, then {minutes:g} min per arm, {args.threads} thread(s)"
    )
    text = report(means, arms, rows, title)
    print(text)
    (out / "stage2_discriminators.md").write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
