"""The trainer where users run it: one GPU, a few minutes, one table.

    python benchmarks/gpu_check.py                    # CUDA: the checks below, under 5 minutes on one GPU
    python benchmarks/gpu_check.py --device cpu       # the same flow on CPU (fp32, no compile, demo sizes)
    python -m pytest -m gpu                           # the same checks as tests (skipped without CUDA)

Checks, each a row of the table (a failed check prints its error in the row and the script exits 1):

1. ``fit``: ``conf/stage1_16k.yml`` (HiFi++, MS-STFT discriminator) at full size on
   synthetic speech, bf16 autocast and ``torch.compile``, regression then adversarial steps, logging,
   validation, ``best`` and ``latest``; then ``--resume`` for more steps; export of ``best``; chunked
   enhancement of a longer clip equal to one pass over it.
2. ``torchrun``: the same config through ``torchrun --nproc_per_node 1`` and ``gan-enhance train``, which
   joins an NCCL process group (gloo on CPU), so DDP and every collective run.
3. ``fp16``: fp16 autocast with one ``GradScaler`` per side.

The WavLM loss is off (weight 0) unless ``--wavlm`` names a local WavLM folder: nothing is downloaded.
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass

import torch
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from gan_enhance._compat import patch  # noqa: E402

patch()

from gan_enhance.train.checkpoint import checkpoint_path  # noqa: E402
from gan_enhance.train.config import load_config, merge_config  # noqa: E402
from gan_enhance.train.run import run_training  # noqa: E402

CONFIGS = {"cuda": "conf/stage1_16k.yml", "cpu": "recipes/demo/conf/stage1.yml"}


@dataclass
class Row:
    check: str
    ok: bool
    seconds: float
    detail: str


@dataclass
class Settings:
    device: str
    steps: int
    batch_size: int
    segment: int
    wavlm: str
    folder: str


def run_config(settings: Settings, name: str, **overrides) -> dict:
    """The check's stage config with a short schedule: regression for the first third of the steps, then
    adversarial; log, validate, sample and checkpoint several times."""
    steps = settings.steps
    every = max(1, steps // 3)
    base = load_config(os.path.join(ROOT, CONFIGS[settings.device]))
    return merge_config(
        base,
        {
            "name": name,
            "runs_dir": os.path.join(settings.folder, "runs"),
            "Trainer.device": settings.device,
            "Trainer.max_steps": steps,
            "Trainer.adversarial_start": every,
            "Trainer.batch_size": settings.batch_size,
            "Trainer.num_workers": 2,
            "Trainer.log_every": max(1, every // 2),
            "Trainer.valid_every": every,
            "Trainer.valid_batches": 2,
            "Trainer.sample_every": every,
            "Trainer.checkpoint_every": every,
            "Trainer.keep_every": 0,
            "Trainer.quiet": True,
            "Trainer.speech_metrics": False,
            "EMA.start_step": 0,
            "Scheduler.warmup_steps": 0,
            "Data.segment_samples": settings.segment,
            "Data.epoch_items": 64,
            "Data.val_items": 4,
            "Data.pin_memory": settings.device == "cuda",
            "Data.train_sources": [os.path.join(settings.folder, "clean")],
            "Data.val_sources": [os.path.join(settings.folder, "clean")],
            "FineTune.checkpoint": "",
            "lambdas.wavlm/loss": 1.0 if settings.wavlm else 0.0,
            **({"WavLMFeatureLoss.model": settings.wavlm} if settings.wavlm else {}),
            **overrides,
        },
    )


def _finite(values: dict) -> bool:
    return all(math.isfinite(value) for key, value in values.items() if not key.startswith("metric/"))


def _peak_memory(device: str) -> str:
    if device != "cuda":
        return ""
    return f", peak {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB"


def check_fit(settings: Settings) -> str:
    """Train, resume, export ``best``, enhance chunked; raises on any failure."""
    from gan_enhance.export import export_checkpoint

    fast = settings.device == "cuda"
    options = {"Trainer.precision": "bf16" if fast else "fp32", "Trainer.compile": fast}
    if fast:
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    result = run_training(run_config(settings, "fit", **options))
    trained = time.perf_counter() - started
    run_dir = os.path.join(settings.folder, "runs", "fit")
    missing = [tag for tag in ("best", "latest") if not checkpoint_path(run_dir, tag).is_file()]
    if result.step != settings.steps or missing or not _finite(result.last_metrics):
        raise RuntimeError(f"step {result.step}, missing {missing}, validation {result.last_metrics}")
    resumed = run_training(
        run_config(settings, "fit", **options, **{"Trainer.max_steps": settings.steps + 3}), True
    )
    if resumed.step != settings.steps + 3:
        raise RuntimeError(f"resume ended at step {resumed.step}")
    bundle = os.path.join(settings.folder, "export")
    export_checkpoint(run_dir, bundle, tag="best")
    difference = chunked_difference(bundle, settings.device)
    if difference > 1e-3:
        raise RuntimeError(f"chunked enhancement differs from one pass by {difference:.2g} of its RMS")
    total = result.last_metrics.get("total/loss", float("nan"))
    return (
        f"{options['Trainer.precision']}, compile {options['Trainer.compile']}: {settings.steps} steps in "
        f"{trained:.0f} s ({settings.steps / trained:.2f} steps/s{_peak_memory(settings.device)}), val total "
        f"{total:.3g}; resumed to {resumed.step}; exported; chunked = whole within {difference:.1e} of RMS"
    )


def chunked_difference(bundle: str, device: str) -> float:
    """Largest difference between chunked enhancement of a 3 s clip and one pass over it, relative to the
    output's RMS. TF32 is off meanwhile: chunks and the whole clip take different kernels, and TF32's
    10-bit mantissa alone would show up through a deep generator."""
    from gan_enhance.bundle import load_generator
    from gan_enhance.enhance import Enhancer

    flags = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        generator = load_generator(bundle, device=device)
        clip = 0.1 * torch.randn(1, 3 * generator.in_sample_rate, generator=torch.Generator().manual_seed(0))
        chunked, _ = Enhancer(generator, chunk_seconds=0.5, device=device).enhance_waveform(
            clip, generator.in_sample_rate
        )
        with torch.no_grad():
            whole = generator(clip.to(device)[None]).reshape(1, -1).cpu()
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = flags
    whole = whole[:, : chunked.shape[-1]]
    rms = float(whole.square().mean().sqrt().clamp_min(1e-8))
    return float((chunked.reshape(1, -1) - whole).abs().max()) / rms


def check_torchrun(settings: Settings) -> str:
    """``torchrun --nproc_per_node 1 -m gan_enhance train``: joins a process group (NCCL on CUDA)."""
    config_file = os.path.join(settings.folder, "torchrun.yml")
    with open(config_file, "w") as handle:
        yaml.safe_dump(run_config(settings, "torchrun", **{"Trainer.num_workers": 0}), handle)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "1"]
    command += ["-m", "gan_enhance", "train", "--args.load", config_file]
    environment = {**os.environ, "PYTHONPATH": ROOT, "OMP_NUM_THREADS": "2"}
    done = subprocess.run(command, capture_output=True, text=True, env=environment, timeout=600)
    output = done.stdout + done.stderr
    backend = "nccl" if settings.device == "cuda" else "gloo"
    if done.returncode != 0 or f"backend {backend}" not in output:
        raise RuntimeError(f"exit {done.returncode}, no 'backend {backend}' line:\n{output[-3000:]}")
    if not checkpoint_path(os.path.join(settings.folder, "runs", "torchrun"), "best").is_file():
        raise RuntimeError("no best checkpoint")
    return f"process group {backend}, world size 1: {settings.steps} steps, validation and best written"


def check_fp16(settings: Settings) -> str:
    """fp16 autocast with a GradScaler per side (CUDA only)."""
    result = run_training(run_config(settings, "fp16", **{"Trainer.precision": "fp16"}))
    scales = {side: scaler.get_scale() for side, scaler in result.state.precision.scalers.items()}
    # The scaler's own overflows (it halves its scale from 65536 until gradients fit) are not non-finite
    # steps: a healthy fp16 run has none.
    nonfinite = result.state.nonfinite_total
    if result.step != settings.steps or nonfinite or not _finite(result.last_metrics):
        raise RuntimeError(
            f"step {result.step}, {nonfinite} non-finite steps, validation {result.last_metrics}"
        )
    shown = ", ".join(f"{side} {scale:g}" for side, scale in scales.items())
    return f"{settings.steps} steps, no non-finite step, final scales {shown}"


def run_checks(settings: Settings) -> list[Row]:
    """Every check for ``settings.device`` (the fp16 one on CUDA only); a failure becomes its row."""
    from gan_enhance.data import write_synthetic_corpus

    write_synthetic_corpus(
        os.path.join(settings.folder, "clean"), num_files=8, seconds=3.0, sample_rate=16000
    )
    checks: dict[str, Callable[[Settings], str]] = {"fit": check_fit, "torchrun": check_torchrun}
    if settings.device == "cuda":
        checks["fp16"] = check_fp16
    rows = []
    for name, check in checks.items():
        started = time.perf_counter()
        try:
            detail, ok = check(settings), True
        except Exception as error:  # the table reports every check, whatever failed
            detail, ok = f"{type(error).__name__}: {error}".replace("\n", " ")[:2000], False
            traceback.print_exc()
        rows.append(Row(name, ok, time.perf_counter() - started, detail))
    return rows


def print_table(rows: list[Row], settings: Settings) -> None:
    name = torch.cuda.get_device_name() if settings.device == "cuda" else "CPU"
    print(
        f"\n{name}, torch {torch.__version__}, {CONFIGS[settings.device]}, batch {settings.batch_size} x "
        f"{settings.segment} samples\n"
    )
    print("| check | result | seconds | detail |")
    print("|---|---|---|---|")
    for row in rows:
        print(f"| {row.check} | {'ok' if row.ok else 'FAILED'} | {row.seconds:.0f} | {row.detail} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument(
        "--steps", type=int, default=0, help="training steps per check (default 30 on CUDA, 6 on CPU)"
    )
    parser.add_argument("--batch-size", type=int, default=0, help="default 8 on CUDA, 2 on CPU")
    parser.add_argument(
        "--segment", type=int, default=0, help="samples per example (default 32768 on CUDA, 8192 on CPU)"
    )
    parser.add_argument("--wavlm", default="", help="a local WavLM folder: train with the WavLM loss too")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("no CUDA device: run with --device cpu for the CPU flow", file=sys.stderr)
        return 2
    cuda = args.device == "cuda"
    os.chdir(ROOT)  # the configs $include paths relative to the repository root
    with tempfile.TemporaryDirectory() as folder:
        settings = Settings(
            device=args.device,
            steps=args.steps or (30 if cuda else 6),
            batch_size=args.batch_size or (8 if cuda else 2),
            segment=args.segment or (32768 if cuda else 8192),
            wavlm=args.wavlm,
            folder=folder,
        )
        rows = run_checks(settings)
        print_table(rows, settings)
    return 0 if all(row.ok for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
