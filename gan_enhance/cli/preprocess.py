"""``gan-enhance preprocess``: degrade clean audio once and store the pairs as shards for fast training."""

from __future__ import annotations

import json
import logging
import math
import time

from gan_enhance.cli._args import number, parser

HELP = "write degraded/clean training pairs into shards (fast loading)"


def build_parser():
    from gan_enhance.data.presets import TASK_NAMES

    p = parser(
        "preprocess", "Degrade clean audio with a task preset and write (degraded, clean) pairs as shards."
    )
    p.add_argument("--clean", nargs="+", required=True, help="clean-audio folders and/or CSV/JSONL manifests")
    p.add_argument(
        "--weights", nargs="+", type=float, default=[], help="sampling weight of each --clean source"
    )
    p.add_argument("--task", choices=TASK_NAMES, default="denoise", help="degradation preset")
    p.add_argument("--noise", nargs="*", default=[], help="noise folders (synthetic noise when none)")
    p.add_argument("--rir", nargs="*", default=[], help="room impulse response folders (synthetic when none)")
    p.add_argument(
        "--settings",
        default="",
        help='JSON per-degradation overrides, e.g. \'{"AddNoise": {"snr_db": [0, 10]}}\'',
    )
    p.add_argument("--output", required=True, help="shard folder to write")
    p.add_argument("--items", type=number(int, 1), required=True, help="number of pairs to write")
    p.add_argument(
        "--segment-seconds",
        type=number(float, 0, strict=True),
        default=2.0,
        help="length of each pair (rounded to whole samples)",
    )
    p.add_argument("--in-sample-rate", type=int, default=0, help="input rate (0: the task's)")
    p.add_argument("--out-sample-rate", type=int, default=0, help="target rate (0: the task's)")
    p.add_argument(
        "--min-duration",
        type=float,
        default=0.0,
        help="skip clean files shorter than this (s); 0: the segment length",
    )
    p.add_argument(
        "--speed",
        nargs=2,
        type=float,
        default=[1.0, 1.0],
        metavar=("MIN", "MAX"),
        help="speed-perturb the clean audio by a factor drawn in [MIN, MAX] (training's CleanSource.speed; "
        "conf/base.yml trains 16 kHz models with 0.9 1.1)",
    )
    p.add_argument("--seed", type=int, default=0, help="same seed, same pairs")
    p.add_argument("--items-per-shard", type=int, default=1000, help="pairs per shard file")
    p.add_argument(
        "--dtype",
        choices=("int16", "float16", "float32"),
        default="int16",
        help="sample type stored in the shards (int16: a quarter of float32's size, 16-bit resolution)",
    )
    p.add_argument("--workers", type=int, default=0, help="worker processes computing pairs")
    return p


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    # Skipped files are reported by the data layer as warnings (one line per file, naming it); without a
    # handler they would print bare, without saying which command they come from.
    logging.basicConfig(level=logging.WARNING, format="gan-enhance preprocess: %(levelname)s: %(message)s")
    from gan_enhance.data.datasets import DegradedDataset
    from gan_enhance.data.shards import write_shards
    from gan_enhance.data.sources import CleanSource
    from gan_enhance.data.tasks import build_task
    from gan_enhance.errors import ConfigError

    try:
        settings = json.loads(args.settings) if args.settings else {}
    except json.JSONDecodeError as error:
        raise ConfigError(f"--settings is not valid JSON: {error}") from None
    if not isinstance(settings, dict):
        raise ConfigError("--settings must be a JSON object keyed by degradation class name")
    task = build_task(args.task, args.noise, args.rir, settings, args.in_sample_rate, args.out_sample_rate)
    # Whole samples at both rates: round the segment to the grid of the input rate.
    step = task.out_sample_rate // math.gcd(task.in_sample_rate, task.out_sample_rate)
    segment = max(step, round(args.segment_seconds * task.out_sample_rate / step) * step)
    # Files shorter than a segment would give zero-padded pairs; skip them unless asked otherwise.
    min_duration = args.min_duration or segment / task.out_sample_rate
    source = CleanSource(args.clean, args.weights, min_duration=min_duration, speed=args.speed)
    dataset = DegradedDataset(
        source, task.degradation, task.in_sample_rate, task.out_sample_rate, segment, args.items, args.seed
    )
    print(
        f"preprocess: task {task.name} ({task.in_sample_rate} -> {task.out_sample_rate} Hz), {len(source)} clean "
        f"files ({source.total_seconds / 3600:.2f} h), {args.items} pairs of {segment / task.out_sample_rate:.2f} s "
        f"-> {args.output}",
        flush=True,
    )
    started = time.time()
    write_shards(
        dataset,
        args.output,
        args.items,
        items_per_shard=args.items_per_shard,
        dtype=args.dtype,
        num_workers=args.workers,
        metadata={
            "task": task.name,
            "seed": args.seed,
            "clean": args.clean,
            "weights": args.weights,
            "noise": args.noise,
            "rir": args.rir,
            "settings": settings,
            "degradation": repr(task.degradation),
        },
        progress=True,
    )
    print(f"preprocess: wrote {args.items} pairs in {time.time() - started:.1f} s", flush=True)
    return 0
