"""Data-loading speed: on-the-fly degradation (each alone and the full restoration chain) vs. shards.

Prints items/s and seconds of audio per second (= times real time) for 1 and 2 DataLoader workers, after
a warm-up that absorbs imports, numba compilation and the per-worker caches.

    .venv/bin/python benchmarks/data_loading.py [--data ../shared/data] [--seconds 2] [--items 96]

With ``--data`` (a folder holding speech/, noise/ and rir/) real recordings are used; without it, a
synthetic corpus in a temporary folder and synthetic noise / impulse responses.
Targets: shards >= 10x faster than the full on-the-fly chain; the chain >= 20x real time per worker at
16 kHz output. The last column, CPU time per item in one process, is what a worker costs on an idle
machine (item seconds / CPU seconds = times real time per worker); wall-clock rates drop when other
processes share the cores.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import torch

from gan_enhance.data import (
    CleanSource,
    DegradedDataset,
    ShardDataset,
    build_dataloader,
    build_degradation,
    build_task,
    write_shards,
    write_synthetic_corpus,
)
from gan_enhance.data.transforms import Compose

SAMPLE_RATE = 16000
DEGRADATIONS = ["AddNoise", "Reverb", "BandLimit", "Clipping", "Codec", "PitchShift", "Equalizer", "Gain"]


def throughput(dataset, workers: int, batch_size: int, items: int, warmup_batches: int) -> float:
    """Items per second once warm."""
    loader = build_dataloader(dataset, batch_size, num_workers=workers, seed=0, persistent_workers=True)
    stream = loader.forever()
    for _ in range(warmup_batches):
        next(stream)
    started = time.perf_counter()
    count = 0
    while count < items:
        count += next(stream)["x"].shape[0]
    return count / (time.perf_counter() - started)


def cpu_seconds_per_item(dataset, items: int, warmup_items: int = 4) -> float:
    """CPU time per item in this process: unlike wall-clock rates, barely moved by other processes
    competing for the cores, so it shows what one worker costs on an idle machine."""
    for index in range(warmup_items):
        dataset[index]
    started = time.process_time()
    for index in range(warmup_items, warmup_items + items):
        dataset[index]
    return (time.process_time() - started) / items


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data", default=os.environ.get("GAN_ENHANCE_DATA", ""), help="folder with speech/ noise/ rir/"
    )
    parser.add_argument("--seconds", type=float, default=2.0, help="item length")
    parser.add_argument("--items", type=int, default=96, help="items timed per row (after warm-up)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--only", nargs="*", default=[], help="rows to run (names as printed)")
    args = parser.parse_args()
    torch.set_num_threads(1)

    with tempfile.TemporaryDirectory(prefix="gan_enhance_bench_") as scratch:
        run(args, scratch)


def run(args: argparse.Namespace, scratch: str) -> None:
    """Build the rows in ``scratch`` (synthetic corpus, shards) and print the table."""
    if args.data:
        clean, noise, rir = (os.path.join(args.data, sub) for sub in ("speech", "noise", "rir"))
        origin = f"real data from {args.data}"
    else:
        clean, noise, rir = os.path.join(scratch, "clean"), "", ""
        write_synthetic_corpus(clean, num_files=24, seconds=6.0, sample_rate=SAMPLE_RATE, seed=0)
        origin = "synthetic speech, synthetic noise and impulse responses"
    source = CleanSource([clean], min_duration=args.seconds)
    segment = int(args.seconds * SAMPLE_RATE)
    length = 100000  # the sampler never wraps during a row

    def dataset(degradation) -> DegradedDataset:
        return DegradedDataset(source, degradation, SAMPLE_RATE, SAMPLE_RATE, segment, length, seed=0)

    settings = {
        "AddNoise": {"noise_dirs": [noise] if noise else []},
        "Reverb": {"rir_dirs": [rir] if rir else []},
    }
    rows = [("clean excerpt only", dataset(Compose([])))]
    rows += [
        (f"{name} alone", dataset(build_degradation(name, **settings.get(name, {})))) for name in DEGRADATIONS
    ]
    task = build_task("restoration", [noise] if noise else [], [rir] if rir else [])
    rows.append(("restoration chain", dataset(task.degradation)))
    shard_dir = os.path.join(scratch, "shards")
    shard_items = max(args.items, 64)
    started = time.perf_counter()
    write_shards(
        dataset(task.degradation), shard_dir, shard_items, items_per_shard=32, num_workers=max(args.workers)
    )
    preprocess_seconds = time.perf_counter() - started
    rows.append(("restoration shards", ShardDataset(shard_dir)))

    print(f"# data loading, {args.seconds:g} s items at {SAMPLE_RATE} Hz, batch {args.batch_size}; {origin}")
    print(f"# (preprocessing {shard_items} restoration items into shards took {preprocess_seconds:.1f} s)")
    print("| pipeline | workers | items/s | audio s/s (x real time) | x real time per worker | CPU ms/item |")
    print("|---|---:|---:|---:|---:|---:|")
    results = {}
    for name, data in rows:
        if args.only and name not in args.only:
            continue
        cpu_ms = 1000 * cpu_seconds_per_item(data, max(args.items // 2, 8))
        for workers in args.workers:
            # Shards are so fast that a short run measures start-up; give them more items.
            items = args.items * (8 if "shards" in name else 1)
            rate = throughput(data, workers, args.batch_size, items, warmup_batches=2 * workers + 1)
            results[(name, workers)] = rate
            realtime = rate * args.seconds
            print(
                f"| {name} | {workers} | {rate:.1f} | {realtime:.1f} | {realtime / workers:.1f} | {cpu_ms:.1f} |",
                flush=True,
            )
    for workers in args.workers:
        chain, shards = (
            results.get(("restoration chain", workers)),
            results.get(("restoration shards", workers)),
        )
        if chain and shards:
            print(f"# {workers} worker(s): shards are {shards / chain:.1f}x faster than the on-the-fly chain")


if __name__ == "__main__":
    main()
