"""Time one training step of the demo, stage-1 and stage-2 configs, split into its parts.

    python benchmarks/train_step.py                  # CPU, 2 threads, small batch and segments
    python benchmarks/train_step.py --configs demo   # the demo config alone (regression vs adversarial)
    python benchmarks/train_step.py --device cuda    # adds bf16 and torch.compile variants

Each config is timed as a regression step (before ``Trainer.adversarial_start``) and as an adversarial
step, with the generator's optimizer as configured and with the other one (AdamW / Muon), so the table
shows what the adversary and the optimizer each add. Next to each stage config runs a DAC-equivalent step
built from our own components at the same rates, batch and segment: our ``dac`` backbone, DAC's MPD
(periods 2, 3, 5, 7, 11) + multi-band STFT discriminator (windows 2048, 1024, 512, five bands), the 7-scale
mel loss and DAC's AdamW; no MS-STFT family, no WavLM, no L1.

A second table splits the adversarial step into components, each timed alone on the same batch: the
generator forward+backward, every discriminator family (its update: real + fake forward and backward into
its weights; its share of the generator step: forward of the real half, forward and backward of the
generated half into the generator) and every reconstruction loss (forward + backward into the output),
with the GFLOP of each part and the rate it runs at (how much work there is, apart from how well the
hardware does it).

The models are the configs' own (HiFi++; both stages' MS-STFT discriminator; mel + L1 + WavLM losses);
only the batch and segment are small. WavLM is a random model with WavLM-Large's conv encoder (the only
part the loss runs) and a one-layer transformer, saved and loaded like a real one, since no weights can be
downloaded here. Data are synthetic speech degraded on the fly by the config's task, read through the
real loader (``--workers`` processes; 0 puts the degradation cost into "data").

Prints a markdown table of milliseconds per step: data wait, generator forward, generator backward,
discriminator forward+backward, losses (reconstruction + adversarial forward in the generator step),
optimizer (unscale, clip, step, EMA for both sides), the rest, the total, and seconds of training audio
per wall second; then the share of the step spent waiting for data (near 0: the loader keeps up), the
step's matmul and convolution GFLOP (counted once by ``torch.utils.flop_counter``), the TFLOP/s that
achieves, MFU against the device's dense bf16 peak (known GPUs, or ``--peak-tflops``) and, on CUDA, the
peak allocated memory. A second table gives each adversarial step's time over its regression step's, in
total and without the data wait.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from gan_enhance._compat import patch  # noqa: E402

patch()

from gan_enhance.train.builders import build_state, read_experiment  # noqa: E402
from gan_enhance.train.config import load_config, merge_config, parse_overrides  # noqa: E402
from gan_enhance.train.data import build_loaders  # noqa: E402
from gan_enhance.train.distributed import DistInfo, unwrap  # noqa: E402
from gan_enhance.train.loop import BatchStream  # noqa: E402
from gan_enhance.train.precision import frozen  # noqa: E402
from gan_enhance.train.state import PhaseTimer  # noqa: E402
from gan_enhance.train.step import train_step  # noqa: E402

PHASES = ("data", "gen_forward", "gen_backward", "disc_forward_backward", "losses", "optimizer")
HEADERS = ("data", "G fwd", "G bwd", "D fwd+bwd", "losses", "optim", "other", "total", "audio s/s")
EXTRA_HEADERS = ("data share", "GFLOP/step", "TFLOP/s", "MFU", "peak GiB")
FLOPS: dict[tuple, float] = {}  # GFLOP per step by (config, adversarial, optimizer, DAC-equivalent)
# Dense bf16 tensor-core peaks (TFLOP/s) by device-name fragment, the usual MFU denominator; --peak-tflops
# overrides (and is the only way to get MFU on other devices or the CPU).
PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "L4": 121.0, "A10": 125.0}
CONFIGS = {
    "demo": ("recipes/demo/conf/stage1.yml", 16000),
    "stage1_16k": ("conf/stage1_16k.yml", 16000),
    "stage2_48k": ("conf/stage2_48k.yml", 48000),
}
# DAC's training step at a config's rates (our components, DAC's published choices).
DAC_EQUIVALENT = {
    "generator": "dac",
    "discriminators": ["mpd", "mbd"],
    "MultiPeriodDiscriminator.periods": [2, 3, 5, 7, 11],
    "MultiBandDiscriminator.window_lengths": [2048, 1024, 512],
    "lambdas": {"l1/loss": 0.0, "wavlm/loss": 0.0, "stft/loss": 0.0, "sisdr/loss": 0.0},
    "generator/Optimizer.kind": "adamw",
}


def wavlm_folder(folder: str) -> str:
    """A WavLM with Large's conv encoder (512 channels, 7 layers) and a tiny transformer, saved to disk."""
    from transformers import WavLMConfig, WavLMModel

    config = WavLMConfig(
        hidden_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=128,
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
    )
    WavLMModel(config).save_pretrained(folder)
    return folder


def segment_samples(seconds: float, rate: int) -> int:
    """About ``seconds`` at ``rate``, rounded to a multiple of 3 * 1024 (whole at 16 and 48 kHz, any hop)."""
    grain = 3 * 1024
    return max(grain, round(seconds * rate / grain) * grain)


def experiment_for(name: str, args, variant: dict, corpus: str, wavlm: str):
    """The config ``name`` with the benchmark's batch, segment, data and ``variant`` settings."""
    path, rate = CONFIGS[name]
    config = load_config(os.path.join(ROOT, path))
    if variant.get("dac"):
        config = merge_config(config, load_config(os.path.join(ROOT, "conf/generator/dac.yml")))
        config = merge_config(config, DAC_EQUIVALENT)
    else:
        config = merge_config(config, args.overrides)
    overrides = {
        "WavLMFeatureLoss.model": wavlm,
        "FineTune.checkpoint": "",
        "Trainer.device": args.device,
        "Trainer.batch_size": args.batch_size,
        "Trainer.num_workers": args.workers,
        "Trainer.adversarial_start": 0 if variant["adversarial"] else 10**9,
        "Trainer.log_every": 10**9,  # no gradient-share measurement inside the timed steps
        "Trainer.precision": variant["precision"],
        "Trainer.compile": variant["compile"],
        "generator/Optimizer.kind": variant["optimizer"],
        "Data.segment_samples": segment_samples(args.segment_seconds, rate),
        "Data.train_sources": [corpus],
        "Data.val_sources": [corpus],
        "Data.epoch_items": 1000,
        "Data.pin_memory": args.device == "cuda",
    }
    return read_experiment(merge_config(config, overrides))


def measure(name: str, args, variant: dict, corpus: str, wavlm: str) -> dict[str, float]:
    experiment = experiment_for(name, args, variant, corpus, wavlm)
    device = torch.device(args.device)
    state = build_state(experiment, DistInfo(device=device))
    state.phase_timer = PhaseTimer(device)
    train, _ = build_loaders(experiment.data, args.batch_size, args.workers, DistInfo(device=device))
    batches = BatchStream(train)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    totals: dict[str, float] = {}
    for step in range(args.warmup + args.steps):
        started = time.perf_counter()
        batch = next(batches)
        fetched = time.perf_counter()
        train_step(state, batch)
        if device.type == "cuda":
            torch.cuda.synchronize()
        finished = time.perf_counter()
        phases = state.phase_timer.reset()
        if step < args.warmup:
            continue
        phases["data"] = fetched - started
        phases["total"] = finished - started
        for key, value in phases.items():
            totals[key] = totals.get(key, 0.0) + value
    means = {key: 1000 * value / args.steps for key, value in totals.items()}
    means["other"] = means["total"] - sum(means.get(key, 0.0) for key in PHASES)
    means["audio s/s"] = args.batch_size * args.segment_seconds / (means["total"] / 1000)
    means["peak GiB"] = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else math.nan
    # The same step's operations whatever the precision or compilation: counted once, eagerly (the
    # numerics list starts with fp32 uncompiled).
    key = (name, variant["adversarial"], variant["optimizer"], bool(variant.get("dac")))
    if key not in FLOPS:
        batch = next(batches)
        FLOPS[key] = gflop(lambda: train_step(state, batch))  # one more step of the same state
    means["GFLOP/step"] = FLOPS[key]
    return means


def gflop(function) -> float:
    """GFLOP of one call of ``function()``: matmuls and convolutions, forward and backward, as counted by
    ``torch.utils.flop_counter``."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        function()
    return counter.get_total_flops() / 1e9


def peak_tflops(args) -> float:
    """The device's peak for MFU: ``--peak-tflops``, else the table's entry for a known GPU, else NaN."""
    if args.peak_tflops:
        return args.peak_tflops
    if args.device == "cuda":
        name = torch.cuda.get_device_name()
        for fragment, tflops in PEAK_TFLOPS.items():
            if fragment in name:
                return tflops
    return math.nan


def timed(function, device: torch.device, repeats: int) -> tuple[float, float]:
    """Fastest of ``repeats`` calls of ``function()`` in milliseconds, and the GFLOP of one call (counted
    on a first, unmeasured call)."""
    operations = gflop(function)
    best = math.inf
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        function()
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - started)
    return 1000 * best, operations


def components(name: str, args, corpus: str, wavlm: str) -> list[tuple[str, float, float]]:
    """Milliseconds and GFLOP of each part of an adversarial step of config ``name``, each timed alone."""
    variant = {
        "precision": "fp32",
        "compile": False,
        "optimizer": configured_optimizer(name),
        "adversarial": True,
    }
    experiment = experiment_for(name, args, variant, corpus, wavlm)
    device = torch.device(args.device)
    state = build_state(experiment, DistInfo(device=device))
    train, _ = build_loaders(experiment.data, args.batch_size, 0, DistInfo(device=device))
    batch = next(iter(train))
    x, y = batch["x"].to(device), batch["y"].to(device)
    generator = state.generator

    def generator_pass():
        generator.zero_grad(set_to_none=True)
        generator(x).square().mean().backward()

    rows = [("generator forward + backward", *timed(generator_pass, device, args.steps))]
    if name != "demo":
        dac = experiment_for(name, args, {**variant, "optimizer": "adamw", "dac": True}, corpus, wavlm)
        dac_generator = build_state(dac, DistInfo(device=device)).generator

        def dac_generator_pass():
            dac_generator.zero_grad(set_to_none=True)
            dac_generator(x).square().mean().backward()

        rows.append(
            (
                "DAC-equivalent: dac generator forward + backward",
                *timed(dac_generator_pass, device, args.steps),
            )
        )
    with torch.no_grad():
        y_hat = generator(x)
    families = unwrap(state.discriminator).families
    for family in families:
        label = type(family).__name__

        def update(family=family):
            family.zero_grad(set_to_none=True)
            outputs = family(torch.cat([y, y_hat]))
            torch.stack([output.logits.square().mean() for output in outputs]).sum().backward()

        def generator_share(family=family):
            fake = y_hat.clone().requires_grad_()
            with frozen(family):
                with torch.no_grad():
                    family(y)
                outputs = family(fake)
                torch.stack([output.logits.square().mean() for output in outputs]).sum().backward()

        rows.append((f"{label}: discriminator update", *timed(update, device, args.steps)))
        rows.append((f"{label}: generator step", *timed(generator_share, device, args.steps)))
    for key, loss_fn in state.losses.reconstruction.items():

        def loss_pass(loss_fn=loss_fn):
            fake = y_hat.clone().requires_grad_()
            loss_fn(fake, y).backward()

        rows.append((f"loss {key} forward + backward", *timed(loss_pass, device, args.steps)))
    return rows


def configured_optimizer(name: str) -> str:
    """The generator optimizer a config chooses (``generator/Optimizer.kind``, else ``Optimizer.kind``)."""
    config = load_config(os.path.join(ROOT, CONFIGS[name][0]))
    return config.get("generator/Optimizer.kind", config.get("Optimizer.kind", "adamw"))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--workers", type=int, default=0, help="data-loading worker processes")
    parser.add_argument("--steps", type=int, default=3, help="measured steps per variant")
    parser.add_argument("--warmup", type=int, default=1, help="unmeasured steps first (compilation, caches)")
    parser.add_argument("--segment-seconds", type=float, default=0.5, help="training segment length")
    parser.add_argument(
        "--peak-tflops", type=float, default=0.0, help="device peak for the MFU column (default: known GPUs)"
    )
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--both-optimizers", action="store_true", help="also time the other optimizer")
    parser.add_argument("--no-dac", action="store_true", help="leave out the DAC-equivalent rows")
    parser.add_argument("--no-components", action="store_true", help="leave out the component table")
    parser.add_argument(
        "--set",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help="config overrides for our rows (YAML values), e.g. 'discriminators=[mpd, mbd]'",
    )
    args = parser.parse_args()
    # The trainer's own override reader: "KEY=VALUE" is its "--KEY=VALUE", the value read as YAML.
    args.overrides = parse_overrides([f"--{setting}" for setting in args.set])
    torch.set_num_threads(args.threads)
    numerics = [{"precision": "fp32", "compile": False}]
    if args.device == "cuda":
        numerics += [
            {"precision": "bf16", "compile": False},
            {"precision": "fp32", "compile": True},
            {"precision": "bf16", "compile": True},
        ]
    from gan_enhance.data import write_synthetic_corpus

    with tempfile.TemporaryDirectory() as folder:
        corpus = os.path.join(folder, "corpus")
        write_synthetic_corpus(corpus, num_files=4, seconds=3.0, sample_rate=48000)
        wavlm = wavlm_folder(os.path.join(folder, "wavlm"))
        print(
            f"device {args.device}, {args.threads} threads, batch {args.batch_size} x {args.segment_seconds} s, "
            f"{args.workers} workers, "
        )
        if args.overrides:
            print(f"our rows with {args.overrides}")
        print(f"{args.steps} measured steps after {args.warmup} warm-up; milliseconds per step\n")
        print(
            "| config | step | G optimizer | precision | compile | "
            + " | ".join(HEADERS + EXTRA_HEADERS)
            + " |"
        )
        print("|---" * (5 + len(HEADERS) + len(EXTRA_HEADERS)) + "|")
        peak = peak_tflops(args)
        ratios = []  # (config, optimizer, precision, compile, total ratio, ratio without the data wait)
        for name in args.configs:
            optimizers = [configured_optimizer(name)]
            if args.both_optimizers:
                optimizers.append("adamw" if optimizers[0] == "muon" else "muon")
            for optimizer in optimizers:
                regression = {}
                for adversarial in (False, True):
                    for numeric in numerics:
                        variant = {**numeric, "optimizer": optimizer, "adversarial": adversarial}
                        means = measure(name, args, variant, corpus, wavlm)
                        print_row(name, variant, means, peak)
                        key = (numeric["precision"], numeric["compile"])
                        if not adversarial:
                            regression[key] = means
                            continue
                        base = regression[key]
                        compute = (means["total"] - means["data"]) / (base["total"] - base["data"])
                        ratios.append((name, optimizer, *key, means["total"] / base["total"], compute))
            if not args.no_dac and name != "demo":
                for numeric in numerics:
                    variant = {**numeric, "optimizer": "adamw", "adversarial": True, "dac": True}
                    print_row(
                        f"{name} DAC-equivalent", variant, measure(name, args, variant, corpus, wavlm), peak
                    )
        print("\nadversarial step / regression step (issue 12's demo target: at most 3x)\n")
        print("| config | G optimizer | precision | compile | total | without the data wait |")
        print("|---|---|---|---|---|---|")
        for name, optimizer, precision, compiled, total, compute in ratios:
            on = "on" if compiled else "off"
            print(f"| {name} | {optimizer} | {precision} | {on} | {total:.1f}x | {compute:.1f}x |")
        if not args.no_components:
            for name in args.configs:
                print(
                    f"\n{name}: parts of an adversarial step, each timed alone (ms, best of {args.steps})\n"
                )
                print("| part | ms | GFLOP | GFLOP/s |\n|---|---|---|---|")
                for label, milliseconds, operations in components(name, args, corpus, wavlm):
                    rate = 1000 * operations / milliseconds
                    print(f"| {label} | {milliseconds:.1f} | {operations:.2f} | {rate:.1f} |", flush=True)


def print_row(name: str, variant: dict, means: dict[str, float], peak: float) -> None:
    """One table row; ``peak`` (TFLOP/s, NaN when unknown) turns the achieved rate into MFU."""
    cells = [f"{means.get(key, 0.0):.0f}" for key in PHASES] + [
        f"{means['other']:.0f}",
        f"{means['total']:.0f}",
    ]
    cells.append(f"{means['audio s/s']:.2f}")
    achieved = means["GFLOP/step"] / means["total"]  # GFLOP per ms = TFLOP/s
    cells += [
        f"{means['data'] / means['total']:.0%}",
        f"{means['GFLOP/step']:.1f}",
        f"{achieved:.3f}",
        "-" if math.isnan(peak) else f"{achieved / peak:.1%}",
        "-" if math.isnan(means["peak GiB"]) else f"{means['peak GiB']:.2f}",
    ]
    step = "adversarial" if variant["adversarial"] else "regression"
    compiled = "on" if variant["compile"] else "off"
    head = f"| {name} | {step} | {variant['optimizer']} | {variant['precision']} | {compiled} | "
    print(head + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
