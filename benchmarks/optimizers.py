"""Optimizer step time of AdamW and Muon on the default generators, with random gradients.

    python benchmarks/optimizers.py                     # CPU, 2 threads, unet1d and hifipp at 16 kHz
    python benchmarks/optimizers.py --bf16-steps 1      # one timed bfloat16 step where that is slow

Rows: AdamW on every parameter; Muon with its Newton-Schulz iteration in float32 (``muon_dtype: auto`` on
CPU); the same in bfloat16 (what ``torch.optim.Muon`` always does), to show what the dtype costs on this
CPU. A Muon step is the MatrixMuon step on the weight matrices plus the AdamW step on the rest. Each time is
the median over ``--steps`` steps after ``--warmup`` untimed ones (the first step allocates the state).

Muon's cost is matrix multiplication: the "NS GFLOP" column counts the iteration's floating-point
operations per step, and the line above the table gives a plain fp32 and bf16 matmul's GFLOP/s on the same
threads, so the table shows how close the iteration runs to the machine's matmul speed, and whether this
CPU multiplies bfloat16 natively (bf16 faster than fp32) or emulates it (much slower). "CPU ms" is process
CPU time divided by the threads: less sensitive to other processes on a shared machine than wall time.
"NS GFLOP/s" is the NS GFLOP over the whole Muon step's wall time (the AdamW part included).
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass

import torch
from torch import nn

from gan_enhance.models.generators import build_generator
from gan_enhance.train.optim import OptimizerSettings, build_optimizers, split_parameters

GENERATOR_NAMES = ("unet1d", "hifipp")
SAMPLE_RATE = 16000


@dataclass
class Variant:
    """One table row's optimizer: its label, settings and how many steps to time."""

    label: str
    settings: OptimizerSettings
    steps: int


def newton_schulz_gflop(model: nn.Module, steps: int) -> float:
    """Floating-point operations (GFLOP) of one Newton-Schulz pass over ``model``'s Muon matrices."""
    total = 0
    for parameter in split_parameters(model)["matrix"]:
        small, large = sorted((parameter.shape[0], parameter[0].numel()))
        # Per iteration: X X^T and P X (small^2 * large MACs each), A A (small^3 MACs); 2 FLOP per MAC.
        total += steps * 2 * (2 * small * small * large + small**3)
    return total / 1e9


def matmul_gflops(dtype: torch.dtype, size: int = 1024, repeats: int = 3) -> float:
    """Best GFLOP/s of a ``(size, size)`` matmul in ``dtype`` on the current threads."""
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def step_times(model: nn.Module, settings: OptimizerSettings, warmup: int, steps: int) -> tuple[float, float]:
    """Median wall and CPU seconds (CPU time per thread) of one step of ``model``'s optimizers."""
    optimizers = build_optimizers(model, settings)
    threads = torch.get_num_threads()
    wall, cpu = [], []
    for index in range(warmup + steps):
        for parameter in model.parameters():
            parameter.grad = torch.randn_like(parameter)
        start, cpu_start = time.perf_counter(), time.process_time()
        for optimizer in optimizers:
            optimizer.step()
        if index >= warmup:
            wall.append(time.perf_counter() - start)
            cpu.append((time.process_time() - cpu_start) / threads)
    return statistics.median(wall), statistics.median(cpu)


def variants(steps: int, bf16_steps: int) -> list[Variant]:
    return [
        Variant("AdamW", OptimizerSettings(kind="adamw"), steps),
        Variant("Muon, fp32 NS", OptimizerSettings(kind="muon", muon_dtype="float32"), steps),
        Variant("Muon, bf16 NS", OptimizerSettings(kind="muon", muon_dtype="bfloat16"), bf16_steps),
    ]


def table_rows(name: str, warmup: int, rows: list[Variant]) -> list[str]:
    """One markdown row per optimizer variant for generator ``name``."""
    model = build_generator(name, in_sample_rate=SAMPLE_RATE, out_sample_rate=SAMPLE_RATE)
    parameters = sum(p.numel() for p in model.parameters()) / 1e6
    in_muon = sum(p.numel() for p in split_parameters(model)["matrix"]) / 1e6
    lines, baseline = [], None
    for variant in rows:
        wall, cpu = step_times(model, variant.settings, warmup, variant.steps)
        baseline = baseline or wall
        is_muon = variant.settings.kind == "muon"
        gflop = newton_schulz_gflop(model, variant.settings.muon_ns_steps) if is_muon else 0.0
        achieved = f"{gflop / wall:.1f}" if is_muon else "-"
        lines.append(
            f"| {name} | {parameters:.2f} M ({in_muon:.2f} M in Muon) | {variant.label} | {variant.steps} "
            f"| {1e3 * wall:.0f} | {1e3 * cpu:.0f} | {wall / baseline:.1f}x | {gflop:.2f} | {achieved} |"
        )
    return lines


def main() -> None:
    arguments = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    arguments.add_argument("--threads", type=int, default=2)
    arguments.add_argument("--warmup", type=int, default=1)
    arguments.add_argument("--steps", type=int, default=5)
    arguments.add_argument(
        "--bf16-steps", type=int, default=5, help="timed bfloat16 steps (slow on some CPUs)"
    )
    arguments.add_argument(
        "--generator", action="append", default=[], help="repeatable; default unet1d, hifipp"
    )
    options = arguments.parse_args()
    torch.set_num_threads(options.threads)
    torch.manual_seed(0)
    rows = variants(options.steps, options.bf16_steps)
    lines = []
    for name in options.generator or GENERATOR_NAMES:
        lines += table_rows(name, options.warmup, rows)
    print(
        f"CPU, {options.threads} threads, {SAMPLE_RATE} Hz generators, median after {options.warmup} warm-up "
        f"step(s); 1024^2 matmul: fp32 {matmul_gflops(torch.float32):.0f} GFLOP/s, "
        f"bf16 {matmul_gflops(torch.bfloat16):.0f} GFLOP/s"
    )
    print()
    print(
        "| generator | parameters | optimizer | steps timed | step (ms) | CPU ms | vs AdamW | NS GFLOP "
        "| NS GFLOP/s |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
