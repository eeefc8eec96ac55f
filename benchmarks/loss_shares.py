"""Each generator loss's share of the gradient at the generator output: DAC's weights and sums vs ours.

    python benchmarks/loss_shares.py --data ../shared/data      # real speech + noise (synthetic without)

DAC weighs mel 15, adversarial 1 and feature matching 2, but its adversarial and feature-matching losses
are sums over sub-discriminators (and layers); ours are means (``gan_enhance.losses.adversarial``), so the
same numbers give the adversary far less of the gradient. This script builds the models of ``--config`` at
their default sizes (default stage 1: HiFi++ and its MS-STFT discriminator; base.yml's weights were
matched with its three families), optionally trains the generator on the
regression losses for a few steps (the state adversarial training starts from), and on the same batches
measures ``||w_k * d loss_k / d y_hat||`` for:

- DAC: 15 * mel + 1 * sum_i adv_i + 2 * sum_i sum_j fm_ij (DAC's formulas on our discriminators);
- ours as configured (``conf/base.yml`` weights on the averaged losses);
- ours with the weights that give DAC's shares: w_adv = 1 * |grad sum| / |grad mean|, likewise w_feat = 2 * ...

Prints one table of shares (each row adds up to 1) and the matching weights.
"""

from __future__ import annotations

import argparse
import os
import sys

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from gan_enhance._compat import patch  # noqa: E402

patch()

from gan_enhance.train.balancer import loss_gradients  # noqa: E402
from gan_enhance.train.builders import build_state, read_experiment  # noqa: E402
from gan_enhance.train.config import load_config, merge_config  # noqa: E402
from gan_enhance.train.data import build_loaders  # noqa: E402
from gan_enhance.train.distributed import DistInfo, unwrap  # noqa: E402
from gan_enhance.train.loop import BatchStream  # noqa: E402
from gan_enhance.train.step import discriminate, train_step  # noqa: E402

DAC_WEIGHTS = {"mel/loss": 15.0, "adv/gen": 1.0, "adv/feat": 2.0}


def dac_sums(real_out: list, fake_out: list) -> dict[str, torch.Tensor]:
    """DAC's generator-side GAN losses: LSGAN summed over sub-discriminators, L1 feature matching summed
    over sub-discriminators and layers (``dac/model/discriminator.py`` formulas)."""
    adversarial = sum((1 - fake.logits.float()).square().mean() for fake in fake_out)
    matching = 0.0
    for real, fake in zip(real_out, fake_out):
        for real_map, fake_map in zip(real.feature_maps, fake.feature_maps):
            matching = matching + (fake_map.float() - real_map.detach().float()).abs().mean()
    return {"adv/gen": adversarial, "adv/feat": matching}


def measure(state, batch) -> dict[str, dict[str, float]]:
    """Unweighted gradient norms at ``y_hat`` of mel, the averaged GAN losses and DAC's summed ones."""
    x, y = batch["x"].to(state.device), batch["y"].to(state.device)
    y_hat = state.generator(x)
    mel = state.losses.reconstruction["mel/loss"](y_hat, y)
    discriminator = unwrap(state.discriminator)
    real_out, fake_out = discriminate(discriminator, y, y_hat)
    ours = {
        "mel/loss": mel,
        "adv/gen": state.losses.adversarial.generator(fake_out),
        "adv/feat": state.losses.feature_matching(real_out, fake_out),
    }
    extra = {key: value for key, value in state.losses.reconstruction.items() if key != "mel/loss"}
    ours.update({key: loss(y_hat, y) for key, loss in extra.items() if state.lambdas.get(key, 0) > 0})
    dac = {"mel/loss": mel, **dac_sums(real_out, fake_out)}
    norms = {}
    for name, losses in (("ours", ours), ("dac", dac)):
        gradients = loss_gradients(losses, list(losses), y_hat)
        norms[name] = {key: float(gradient.norm()) for key, gradient in gradients.items()}
    return norms


def shares(norms: dict[str, float], weights: dict[str, float]) -> dict[str, float]:
    weighted = {key: weights.get(key, 0.0) * norm for key, norm in norms.items()}
    total = sum(weighted.values())
    return {key: value / total for key, value in weighted.items()}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data", default=os.environ.get("GAN_ENHANCE_DATA", os.path.join(ROOT, "..", "shared", "data"))
    )
    parser.add_argument("--config", default=os.path.join(ROOT, "conf", "stage1_16k.yml"))
    parser.add_argument("--batches", type=int, default=4, help="batches the norms are averaged over")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=1.0, help="segment length")
    parser.add_argument("--warmup-steps", type=int, default=0, help="regression steps before measuring")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    speech = os.path.join(args.data, "speech")
    real = os.path.isdir(speech)
    overrides = {
        "Trainer.device": "cpu",
        "Trainer.adversarial_start": args.warmup_steps,
        "Trainer.batch_size": args.batch_size,
        "Trainer.num_workers": 0,
        "Trainer.seed": args.seed,
        "Data.segment_samples": int(args.seconds * 16000),
        "Data.epoch_items": 1000,
        "Data.pin_memory": False,
        "Data.train_sources": [speech] if real else [os.path.join(ROOT, "runs", "loss_shares_data")],
        "Data.val_sources": [speech] if real else [os.path.join(ROOT, "runs", "loss_shares_data")],
        "Data.noise_dirs": [os.path.join(args.data, "noise")] if real else [],
        "FineTune.checkpoint": "",
        "lambdas.wavlm/loss": 0.0,
        "EMA.decay": 0.0,
    }
    config = merge_config(load_config(args.config), overrides)
    experiment = read_experiment(config)
    torch.manual_seed(args.seed)
    state = build_state(experiment, DistInfo())
    train, _ = build_loaders(experiment.data, args.batch_size, 0, DistInfo())
    batches = BatchStream(train)
    for _ in range(args.warmup_steps):
        train_step(state, next(batches))
    totals: dict[str, dict[str, float]] = {"ours": {}, "dac": {}}
    for _ in range(args.batches):
        for name, norms in measure(state, next(batches)).items():
            for key, value in norms.items():
                totals[name][key] = totals[name].get(key, 0.0) + value / args.batches
    ours, dac = totals["ours"], totals["dac"]
    matched = {
        "mel/loss": DAC_WEIGHTS["mel/loss"],
        "adv/gen": DAC_WEIGHTS["adv/gen"] * dac["adv/gen"] / ours["adv/gen"],
        "adv/feat": DAC_WEIGHTS["adv/feat"] * dac["adv/feat"] / ours["adv/feat"],
    }
    configured = {key: state.lambdas.get(key, 0.0) for key in ours}
    discriminator = unwrap(state.discriminator)
    print(
        f"{'real speech + noise' if real else 'synthetic speech'}, {args.batches} batches of {args.batch_size} x "
        f"{args.seconds} s, generator after {args.warmup_steps} regression steps, discriminators "
        f"{', '.join(experiment.discriminators)} ({len(discriminator(torch.zeros(1, 1, 16000)))} sub-discriminators)\n"
    )
    keys = ["mel/loss", "adv/gen", "adv/feat"] + [key for key in ours if key not in DAC_WEIGHTS]
    print("| weights | " + " | ".join(keys) + " |")
    print("|---" * (len(keys) + 1) + "|")
    rows = {
        "DAC (15 / 1 / 2, summed GAN terms)": shares(dac, DAC_WEIGHTS),
        "ours as configured (" + " / ".join(f"{configured.get(k, 0):g}" for k in keys) + ")": shares(
            ours, configured
        ),
        "ours, DAC-matched (mel, adv, feat only)": shares({k: ours[k] for k in DAC_WEIGHTS}, matched),
    }
    for name, row in rows.items():
        print(f"| {name} | " + " | ".join(f"{row.get(key, 0.0):.3f}" for key in keys) + " |")
    print("\nunweighted gradient norms at y_hat (mean over batches):")
    print("  ours: " + ", ".join(f"{k} {v:.3g}" for k, v in ours.items()))
    print("  DAC sums: " + ", ".join(f"{k} {v:.3g}" for k, v in dac.items()))
    print(
        "\nweights on our averaged losses that give DAC's shares: "
        + ", ".join(f"{k} {v:.3g}" for k, v in matched.items())
    )


if __name__ == "__main__":
    main()
