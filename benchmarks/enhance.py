"""Real-time factor and peak memory of ``gan-enhance enhance`` on long 48 kHz files, per backbone.

Each case runs the real command line in a fresh subprocess (``python -m gan_enhance enhance``) on a
synthetic file of the given length, and reads that process's peak resident memory from ``os.wait4``
(``ru_maxrss``). Streaming inference should show the same peak memory for 1 and 10 minutes. The real-time
factor is the subprocess's wall time (including start-up and model loading) over the audio's duration.

Usage::

    .venv/bin/python benchmarks/enhance.py                      # every backbone, 1 and 10 minutes, CPU
    .venv/bin/python benchmarks/enhance.py --backbones unet1d --minutes 1 10 --device cuda

Generators are built with their default settings (random weights: speed does not depend on them) for
``--in-rate`` -> ``--out-rate`` (default 16 kHz -> 48 kHz, the stage-2 recipe's final model).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import soundfile

FILE_RATE = 48000
# Frames written per block when making the synthetic input (bounded memory for long files).
WRITE_BLOCK = FILE_RATE * 10


def write_test_file(path: str, minutes: float, seed: int = 0) -> None:
    """Speech-like test signal: amplitude-modulated harmonic tones plus noise, PCM_16, mono, 48 kHz."""
    rng = np.random.default_rng(seed)
    frames = int(minutes * 60 * FILE_RATE)
    with soundfile.SoundFile(path, "w", FILE_RATE, 1, "PCM_16") as handle:
        for start in range(0, frames, WRITE_BLOCK):
            t = np.arange(start, min(frames, start + WRITE_BLOCK)) / FILE_RATE
            envelope = 0.5 * (1 + np.sin(2 * np.pi * 3 * t))
            voice = sum(np.sin(2 * np.pi * 140 * k * t) / k for k in range(1, 6))
            block = 0.2 * envelope * voice + 0.02 * rng.standard_normal(t.shape)
            handle.write(block.astype(np.float32))


def make_bundle(name: str, folder: str, in_rate: int, out_rate: int) -> str:
    from gan_enhance.bundle import save_bundle
    from gan_enhance.models.generators import build_generator

    generator = build_generator(name, in_sample_rate=in_rate, out_sample_rate=out_rate)
    parameters = sum(p.numel() for p in generator.parameters())
    path = save_bundle(generator, os.path.join(folder, f"model-{name}"))
    return path, parameters


def run_case(model: str, audio: str, output: str, args) -> tuple[float, float, int]:
    """Run the command once; returns (wall seconds, peak RSS in MiB, exit code)."""
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    command = [
        sys.executable, "-m", "gan_enhance", "enhance", model, audio, "--output", output,
        "--threads", str(args.threads), "--device", args.device, "--chunk-seconds", str(args.chunk_seconds),
        "--batch-size", str(args.batch_size), "--no-progress",
    ]  # fmt: skip
    start = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    return wall, usage.ru_maxrss / 1024, process.returncode  # ru_maxrss is in KiB on Linux


def main() -> int:
    from gan_enhance.models.generators import GENERATORS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbones", nargs="+", default=GENERATORS.names())
    parser.add_argument("--minutes", nargs="+", type=float, default=[1.0, 10.0])
    parser.add_argument("--in-rate", type=int, default=16000)
    parser.add_argument("--out-rate", type=int, default=48000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--chunk-seconds", type=float, default=10.0)
    parser.add_argument("--batch-size", type=int, default=0, help="0: the command's default")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="enhance-bench-") as folder:
        files = {}
        for minutes in args.minutes:
            files[minutes] = os.path.join(folder, f"input-{minutes:g}min.wav")
            write_test_file(files[minutes], minutes)
        print(f"gan-enhance enhance, {args.device}, {args.threads} threads, 48 kHz mono input, "
              f"model {args.in_rate} -> {args.out_rate} Hz, chunk {args.chunk_seconds:g} s, "
              f"batch {args.batch_size}")  # fmt: skip
        print("| backbone | params (M) | audio (min) | wall (s) | RTF | peak RSS (MiB) |")
        print("|---|---|---|---|---|---|")
        for name in args.backbones:
            model, parameters = make_bundle(name, folder, args.in_rate, args.out_rate)
            for minutes, audio in files.items():
                wall, peak, code = run_case(model, audio, os.path.join(folder, f"out-{name}"), args)
                status = "" if code == 0 else f" (exit {code})"
                print(f"| {name} | {parameters / 1e6:.2f} | {minutes:g} | {wall:.1f} | "
                      f"{wall / (minutes * 60):.3f} | {peak:.0f}{status} |", flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
