"""Time one training step of the stage-1 and stage-2 configs, split into its parts.

    python benchmarks/train_step.py                  # CPU, 2 threads, small batch and segments
    python benchmarks/train_step.py --device cuda    # adds bf16 and torch.compile variants

The models are the configs' own (default HiFi++, MPD + MS-STFT + multi-band discriminators, mel + L1 +
WavLM losses); only the batch and segment are small. WavLM is a random model with WavLM-Large's conv
encoder (the only part the loss runs) and a one-layer transformer, saved and loaded like a real one, since
no weights can be downloaded here. Data are synthetic speech degraded on the fly by the config's task, read
through the real loader (``--workers`` processes; 0 puts the degradation cost into "data").

Prints a markdown table of milliseconds per step: data wait, generator forward, generator backward,
discriminator forward+backward, losses (reconstruction + adversarial forward in the generator step),
optimizer (unscale, clip, step, EMA for both sides) and the rest.
"""

from __future__ import annotations

import argparse
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
from gan_enhance.train.config import load_config  # noqa: E402
from gan_enhance.train.data import build_loaders  # noqa: E402
from gan_enhance.train.distributed import DistInfo  # noqa: E402
from gan_enhance.train.loop import BatchStream  # noqa: E402
from gan_enhance.train.state import PhaseTimer  # noqa: E402
from gan_enhance.train.step import train_step  # noqa: E402

PHASES = ("data", "gen_forward", "gen_backward", "disc_forward_backward", "losses", "optimizer")
HEADERS = ("data", "G fwd", "G bwd", "D fwd+bwd", "losses", "optim", "other", "total")
OUTPUT_RATES = {"stage1_16k": 16000, "stage2_48k": 48000}


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


def measure(stage: str, args, variant: dict, corpus: str, wavlm: str) -> dict[str, float]:
    config = {
        **load_config(os.path.join(ROOT, "conf", f"{stage}.yml")),
        "WavLMFeatureLoss.model": wavlm,
        "FineTune.checkpoint": "",
        "Trainer.device": args.device,
        "Trainer.batch_size": args.batch_size,
        "Trainer.num_workers": args.workers,
        "Trainer.adversarial_start": 0,
        "Trainer.precision": variant["precision"],
        "Trainer.compile": variant["compile"],
        "Data.segment_samples": segment_samples(args.segment_seconds, OUTPUT_RATES[stage]),
        "Data.train_sources": [corpus],
        "Data.val_sources": [corpus],
        "Data.epoch_items": 1000,
        "Data.pin_memory": args.device == "cuda",
    }
    experiment = read_experiment(config)
    device = torch.device(args.device)
    state = build_state(experiment, DistInfo(device=device))
    state.phase_timer = PhaseTimer(device)
    train, _ = build_loaders(experiment.data, args.batch_size, args.workers, DistInfo(device=device))
    batches = BatchStream(train)
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
    return means


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
    parser.add_argument("--stages", nargs="+", default=list(OUTPUT_RATES), choices=list(OUTPUT_RATES))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    variants = [{"precision": "fp32", "compile": False}]
    if args.device == "cuda":
        variants += [
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
        print(f"{args.steps} measured steps after {args.warmup} warm-up; milliseconds per step\n")
        print("| config | precision | compile | " + " | ".join(HEADERS) + " |")
        print("|---" * (3 + len(HEADERS)) + "|")
        for stage in args.stages:
            for variant in variants:
                means = measure(stage, args, variant, corpus, wavlm)
                cells = [f"{means.get(key, 0.0):.0f}" for key in PHASES] + [f"{means['other']:.0f}"]
                cells.append(f"{means['total']:.0f}")
                compiled = "on" if variant["compile"] else "off"
                print(
                    f"| {stage} | {variant['precision']} | {compiled} | " + " | ".join(cells) + " |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
