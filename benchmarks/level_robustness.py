"""Does a model keep the input's level, and does it work as well on quiet and loud recordings?

Each model enhances a test set (``degraded/`` and ``clean/`` folders with matching names, as
``benchmarks/learning.py`` writes under ``<out>/data/test``) with every input scaled by each offset, and
the output is scored against the clean file:

- SI-SDR, PESQ-WB and STOI: all three ignore the output's scale (PESQ aligns levels first), so a
  level-robust model scores the same at every offset;
- level change: the output's speech gain over the input's, ``20 log10(<y, c> / <x, c>)`` in dB (``c`` the
  clean file, ``x`` the scaled input, ``y`` the output), mean and standard deviation over the items. A
  level-preserving model sits near 0 dB at every offset (a little below where it removes noise that the
  projection counts as speech); a model that learned one output level moves it by the offset's opposite.

Usage::

    .venv/bin/python benchmarks/level_robustness.py exp/learning_long/models/reg-adamw-colour-speed-k31 \\
        exp/learning_long/models/reg-adamw-colour-speed-k31-level --test exp/learning_long/data/test

Skips cleanly when the test folder is missing. Run it alone on the machine (it enhances every item once
per offset).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

OFFSETS_DB = (-30.0, -20.0, -10.0, 0.0, 6.0)


def level_change_db(output: np.ndarray, noisy: np.ndarray, clean: np.ndarray) -> float:
    """The output's speech gain over the input's, in dB: both projected on the clean signal."""
    return float(20.0 * np.log10(abs(np.dot(output, clean)) / abs(np.dot(noisy, clean))))


def score_model(
    model: str, items: list[tuple[Path, Path]], offsets: tuple[float, ...], threads: int
) -> list[dict]:
    """One row per offset: mean SI-SDR, PESQ-WB, STOI, and the level change's mean and spread."""
    import soundfile
    import torch

    from gan_enhance.bundle import load_generator
    from gan_enhance.enhance import Enhancer
    from gan_enhance.evaluate.metrics import pesq_score, si_sdr, stoi_score

    torch.set_num_threads(threads)
    enhancer = Enhancer(load_generator(model))
    pairs = [
        (*soundfile.read(degraded, dtype="float32"), soundfile.read(clean_path, dtype="float32")[0])
        for degraded, clean_path in items
    ]  # read once, scaled per offset
    rows = []
    for offset in offsets:
        gain = np.float32(10.0 ** (offset / 20.0))
        sdr, pesq, stoi, change = [], [], [], []
        for noisy, rate, clean in pairs:
            scaled = noisy * gain
            output, out_rate = enhancer.enhance_waveform(torch.from_numpy(scaled)[None], rate)
            if out_rate != rate:
                raise SystemExit(
                    f"{model} changes the rate ({rate} -> {out_rate} Hz); this benchmark needs same-rate models"
                )
            output = output[0].numpy()[: clean.size]
            sdr.append(si_sdr(output, clean))
            pesq.append(pesq_score(output, clean, rate))
            stoi.append(stoi_score(output, clean, rate))
            change.append(level_change_db(output, scaled[: clean.size], clean))
        rows.append(
            {
                "offset": offset,
                "si_sdr": float(np.mean(sdr)),
                "pesq": float(np.mean(pesq)),
                "stoi": float(np.mean(stoi)),
                "change": float(np.mean(change)),
                "spread": float(np.std(change)),
            }
        )
    return rows


def table(name: str, rows: list[dict]) -> str:
    reference = next((row for row in rows if row["offset"] == 0.0), rows[0])
    lines = [
        f"### {name}",
        "",
        "| input level | SI-SDR (dB) | vs 0 dB | PESQ-WB | STOI | level change (dB) mean | sd |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['offset']:+g} dB | {row['si_sdr']:.2f} | {row['si_sdr'] - reference['si_sdr']:+.2f} | "
            f"{row['pesq']:.3f} | {row['stoi']:.3f} | {row['change']:+.2f} | {row['spread']:.2f} |"
        )
    changes = [row["change"] for row in rows]
    lines += [
        "",
        f"Level change moves by {max(changes) - min(changes):.2f} dB across the offsets (0 = level-preserving).",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("models", nargs="+", help="exported model folders (gan-enhance export)")
    parser.add_argument("--test", required=True, help="folder with degraded/ and clean/ (same names)")
    parser.add_argument(
        "--offsets", type=float, nargs="+", default=list(OFFSETS_DB), help="input gains in dB"
    )
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default %(default)s)")
    args = parser.parse_args()
    test = Path(args.test)
    degraded = sorted((test / "degraded").glob("*.wav"))
    items = [
        (path, test / "clean" / path.name) for path in degraded if (test / "clean" / path.name).is_file()
    ]
    if not items:
        print(f"skipped: no degraded/clean .wav pairs under {test}")
        return 0
    print(
        f"# level robustness: {len(items)} items of {test}, inputs scaled by {', '.join(f'{o:+g}' for o in args.offsets)} dB\n"
    )
    for model in args.models:
        print(
            table(Path(model).name, score_model(model, items, tuple(args.offsets), args.threads)),
            "\n",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
