"""Speed of every generator backbone at its default size: parameters, MACs per second of audio, real-time
factor (seconds of audio per second of compute) at 16 -> 16 kHz and 16 -> 48 kHz, and achieved GFLOP/s next
to a plain fp32 matmul's on the same threads.

    MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=100000000000 MALLOC_TOP_PAD_=1000000000 \\
        python benchmarks/generators.py --threads 2 --seconds 10 --repeats 3

Variants: --variant "unet1d patching=8 channels=[64,128,256,512]" (repeatable; replaces the defaults list).
Peers: a second table times DEMUCS, HiFi++, HiFi-GAN, BigVGAN and DAC from their own code when it has been
fetched under --peers (default exp/peers, git-ignored; see benchmarks/peers.py), in the same interleaved
loop, so both tables see the same load; --peer-seconds sets their input length.
Each timing is the best of --repeats runs, with the backbones interleaved so that load from other
processes spreads over all of them; on a shared machine run it twice and keep the better table. Besides
wall-clock RTF the table gives "CPU RTF": audio seconds per (process CPU seconds / threads). It is less
sensitive to other processes than wall-clock time (time spent waiting for a core does not count), but
still slowed by them (shared caches, memory bandwidth); on a quiet machine the two agree.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch
from peers import load_peers  # benchmarks/, first on sys.path when this script runs

from gan_enhance.models.generators import GENERATORS, build_generator
from gan_enhance.models.inspect import inspect_model

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

RATES = [(16000, 16000), (16000, 48000)]


def parse_variant(text: str) -> tuple[str, str, dict]:
    name, *settings = text.split()
    kwargs = {}
    for setting in settings:
        key, _, value = setting.partition("=")
        try:
            kwargs[key] = json.loads(value)
        except json.JSONDecodeError:
            kwargs[key] = value
    return text, name, kwargs


def matmul_gflops(device: str, repeats: int, size: int = 1024) -> float:
    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    best = float("inf")
    for _ in range(repeats + 1):
        synchronize(device)
        start = time.perf_counter()
        for _ in range(4):
            a @ b
        synchronize(device)
        best = min(best, (time.perf_counter() - start) / 4)
    return 2 * size**3 / best / 1e9


def synchronize(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def record(times: dict[str, list[float]], call, device: str, threads: int) -> None:
    """Run ``call()`` once; append its wall time to ``times["time"]`` and its CPU time per thread to
    ``times["cpu"]``."""
    synchronize(device)
    start, cpu_start = time.perf_counter(), time.process_time()
    call()
    synchronize(device)
    times["time"].append(time.perf_counter() - start)
    times["cpu"].append((time.process_time() - cpu_start) / threads)


def main() -> None:
    arguments = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    arguments.add_argument("--threads", type=int, default=2)
    arguments.add_argument("--seconds", type=float, default=10.0)
    arguments.add_argument("--repeats", type=int, default=3)
    arguments.add_argument("--device", default="cpu")
    arguments.add_argument("--variant", action="append", default=[])
    arguments.add_argument(
        "--peers",
        default=os.path.join(ROOT, "exp", "peers"),
        help="folder of the peers' code; 'none' skips them",
    )
    arguments.add_argument(
        "--peer-seconds",
        type=float,
        default=0.0,
        help="peers' input length (default --seconds; HiFi++ needs at least 2 s)",
    )
    options = arguments.parse_args()
    torch.set_num_threads(options.threads)
    device = options.device
    variants = [parse_variant(v) for v in options.variant] or [(n, n, {}) for n in GENERATORS.names()]

    models, rows = {}, {}
    for label, name, kwargs in variants:
        for rates in RATES:
            model = build_generator(name, in_sample_rate=rates[0], out_sample_rate=rates[1], **kwargs)
            report = inspect_model(model, rates[0], depth=1, receptive_field=False)
            models[label, rates] = model.remove_weight_norm().eval().to(device)
            rows[label, rates] = {
                "params": report.trainable_parameters,
                "macs": report.macs_per_second,
                "time": [],
                "cpu": [],
            }
    length = int(options.seconds * RATES[0][0])
    x = torch.randn(1, 1, length, device=device)
    peers = [] if options.peers == "none" else load_peers(options.peers, device)
    peer_seconds = options.peer_seconds or options.seconds
    peer_inputs = [peer.make_input(peer_seconds).to(device) for peer in peers]
    peer_times: list[dict[str, list[float]]] = [{"time": [], "cpu": []} for _ in peers]
    reference = 0.0
    with torch.inference_mode():
        for model in models.values():  # warm-up: allocator, kernels, first-call costs
            model(x[..., : length // 4])
        for peer, inputs in zip(peers, peer_inputs, strict=True):
            peer.call(peer.model, inputs[..., : inputs.shape[-1] // 4])
        for _ in range(options.repeats):
            for key, model in models.items():
                record(rows[key], lambda model=model: model(x), device, options.threads)
            for peer, inputs, times in zip(peers, peer_inputs, peer_times, strict=True):
                record(
                    times,
                    lambda peer=peer, inputs=inputs: peer.call(peer.model, inputs),
                    device,
                    options.threads,
                )
            # The reference is interleaved with the models too, so that it sees the same load.
            reference = max(reference, matmul_gflops(device, repeats=1))

    where = f"{options.threads} CPU threads" if device == "cpu" else device
    print(
        f"{options.seconds:g} s of audio, {where}, best of {options.repeats}; fp32 matmul: {reference:.1f} GFLOP/s"
    )
    print()
    print(
        "| backbone | params | GMAC/s audio (16k) | RTF 16->16 | RTF 16->48 | CPU RTF 16->16 | CPU RTF 16->48 "
        "| GFLOP/s 16->16 | % of matmul |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for label, _, _ in variants:
        low, high = rows[label, RATES[0]], rows[label, RATES[1]]
        rtf_low, rtf_high = options.seconds / min(low["time"]), options.seconds / min(high["time"])
        cpu_low, cpu_high = options.seconds / min(low["cpu"]), options.seconds / min(high["cpu"])
        achieved = 2 * low["macs"] * options.seconds / min(low["time"]) / 1e9
        print(
            f"| {label} | {low['params'] / 1e6:.2f} M | {low['macs'] / 1e9:.3f} | {rtf_low:.1f}x | {rtf_high:.1f}x "
            f"| {cpu_low:.1f}x | {cpu_high:.1f}x | {achieved:.1f} | {100 * achieved / reference:.0f}% |"
        )

    if peers:
        print(f"\npeers: their own code, random weights, weight norm removed, {peer_seconds:g} s of audio\n")
        print("| peer | params | rates (Hz) | RTF | CPU RTF |\n|---|---|---|---|---|")
        for peer, times in zip(peers, peer_times, strict=True):
            params = sum(p.numel() for p in peer.model.parameters())
            print(
                f"| {peer.label} | {params / 1e6:.2f} M | {peer.in_rate} -> {peer.out_rate} "
                f"| {peer_seconds / min(times['time']):.2f}x | {peer_seconds / min(times['cpu']):.2f}x |"
            )


if __name__ == "__main__":
    main()
