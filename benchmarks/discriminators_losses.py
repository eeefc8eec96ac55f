"""Forward + backward time and peak memory of each discriminator and each loss.

Usage::

    python benchmarks/discriminators_losses.py [--device cpu|cuda] [--threads 2] [--rates 16000 48000]
                                               [--batch 4] [--seconds 1.0] [--repeats 5] [--items mpd mel ...]

Every (item, rate) runs in a fresh subprocess, so one item's allocator caches never count for another.

What is measured
----------------
- time: median wall time, and median CPU time of the process (all its threads; less disturbed by other
  processes on a shared machine), of ``repeats`` forward + backward passes after one warm-up pass.
  Discriminators: one forward of a ``(batch, 1, seconds * rate)`` batch and a backward of the mean of all
  logits into their weights and the input. Losses: ``loss(y_hat, y)`` and its backward into ``y_hat``.
- peak memory, CPU: the growth of the process's resident set during the first (warm-up) forward +
  backward, i.e. peak RSS (``VmHWM``, reset through ``/proc/self/clear_refs`` just before) minus the RSS
  just before. It covers activations, the autograd graph, gradients and allocator overhead, not the
  weights (already resident). On CUDA: ``torch.cuda.max_memory_allocated`` minus the allocation before.
- The WavLM loss uses a random WavLM with WavLM-Large's convolutional encoder (the only part the loss
  runs), saved with ``save_pretrained`` and loaded through the loss's real loading path (no download).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

DISCRIMINATORS = ["mpd", "msstft", "mbd", "msd", "cqt"]
LOSSES = ["mel", "stft", "l1", "sisdr", "wavlm"]


def rss_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def build(item: str, rate: int, device: str):
    """``(module, step)`` where ``step(y_hat, y)`` runs one forward + backward."""

    from gan_enhance._compat import patch

    patch()
    from gan_enhance import losses
    from gan_enhance.models.discriminators import build_discriminator

    if item in DISCRIMINATORS:
        module = build_discriminator([item], None, rate, normalize_input=True).to(device)

        def step(y_hat, y):
            sum(output.logits.mean() for output in module(y_hat)).backward()

        return module, step
    if item == "wavlm":
        from transformers import WavLMConfig, WavLMModel

        # WavLM-Large's conv encoder (512 channels, layer norm, conv bias); a tiny transformer, never run.
        config = WavLMConfig(
            feat_extract_norm="layer",
            conv_bias=True,
            do_stable_layer_norm=True,
            hidden_size=64,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=64,
        )
        with tempfile.TemporaryDirectory(prefix="bench_wavlm_") as folder:
            WavLMModel(config).save_pretrained(folder)
            module = losses.WavLMFeatureLoss(folder, sample_rate=rate)
    else:
        module = {
            "mel": lambda: losses.MultiScaleMelLoss(rate),
            "stft": lambda: losses.MultiResolutionSTFTLoss(),
            "l1": lambda: losses.WaveformL1Loss(),
            "sisdr": lambda: losses.SISDRLoss(),
        }[item]()
    module = module.to(device)

    def step(y_hat, y):
        module(y_hat, y).backward()

    return module, step


def worker(item: str, rate: int, device: str, threads: int, batch: int, seconds: float, repeats: int) -> dict:
    import torch

    from gan_enhance.nn.layers import count_parameters

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    module, step = build(item, rate, device)
    length = int(seconds * rate)
    y = 0.1 * torch.randn(batch, 1, length, device=device)
    y_hat = (y + 0.05 * torch.randn_like(y)).requires_grad_(True)

    def synchronize():
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        step(y_hat, y)
        synchronize()
        peak_mib = (torch.cuda.max_memory_allocated() - before) / 2**20
    else:
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")  # reset the peak-RSS counter to the current RSS
        before = rss_kib("VmRSS")
        step(y_hat, y)
        peak_mib = (rss_kib("VmHWM") - before) / 1024
    times, cpu_times = [], []
    for _ in range(repeats):
        module.zero_grad(set_to_none=True)
        y_hat.grad = None
        synchronize()
        start, cpu_start = time.perf_counter(), time.process_time()
        step(y_hat, y)
        synchronize()
        times.append(time.perf_counter() - start)
        cpu_times.append(time.process_time() - cpu_start)
    trainable = count_parameters(module, trainable_only=True)
    return {
        "item": item,
        "rate": rate,
        "ms": 1000 * statistics.median(times),
        "cpu_ms": 1000 * statistics.median(cpu_times),
        "peak_mib": peak_mib,
        "params": trainable,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rates", type=int, nargs="+", default=[16000, 48000])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--items", nargs="+", default=DISCRIMINATORS + LOSSES)
    parser.add_argument("--worker", nargs=2, metavar=("ITEM", "RATE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        item, rate = args.worker
        result = worker(item, int(rate), args.device, args.threads, args.batch, args.seconds, args.repeats)
        print(json.dumps(result))
        return 0

    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    common = ["--device", args.device, "--threads", str(args.threads), "--batch", str(args.batch)]
    common += ["--seconds", str(args.seconds), "--repeats", str(args.repeats)]
    print(
        f"device {args.device}, {args.threads} threads, batch {args.batch} x {args.seconds} s, median of {args.repeats}"
    )
    print(
        "| item | rate | fwd+bwd wall ms | CPU ms | peak MiB | trainable params |\n|---|---|---|---|---|---|"
    )
    for item in args.items:
        for rate in args.rates:
            command = [sys.executable, __file__, *common, "--worker", item, str(rate)]
            done = subprocess.run(command, env=env, capture_output=True, text=True)
            if done.returncode:
                print(f"| {item} | {rate} | failed: {done.stderr.strip().splitlines()[-1]} | | | |")
                continue
            r = json.loads(done.stdout.strip().splitlines()[-1])
            row = f"| {item} | {rate} | {r['ms']:.0f} | {r['cpu_ms']:.0f} | {r['peak_mib']:.0f} | {r['params']:,} |"
            print(row, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
