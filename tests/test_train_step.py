"""The training step on real (tiny) generators, discriminators and losses built from conf/debug.yml."""

from __future__ import annotations

import os

import pytest
import torch
from tiny_settings import TINY_HIFIPP

from gan_enhance.train.builders import build_state, read_experiment
from gan_enhance.train.config import load_config, merge_config
from gan_enhance.train.distributed import DistInfo
from gan_enhance.train.state import NonFiniteLossError
from gan_enhance.train.step import train_step
from gan_enhance.train.validate import validate

CONF = os.path.join(os.path.dirname(__file__), "..", "conf")
SEGMENT = 4096


def tiny_config(**overrides) -> dict:
    """The debug config (tiny U-Net, tiny MPD + MBD, mel + L1) without EMA; ``overrides`` merge into it."""
    base = {
        **load_config(os.path.join(CONF, "debug.yml")),
        "Data.train_sources": ["unused"],
        "Data.val_sources": ["unused"],
        "EMA.decay": 0.0,
    }
    return merge_config(base, overrides)


def tiny_state(**overrides):
    """A State from :func:`tiny_config`, fp32 on CPU."""
    torch.manual_seed(0)
    return build_state(read_experiment(tiny_config(**overrides)), DistInfo())


def clip_batch(batch_size: int = 2, seed: int = 0) -> dict:
    generator = torch.Generator().manual_seed(seed)
    time = torch.arange(SEGMENT) / 16000
    clean = 0.5 * torch.sin(2 * torch.pi * 220 * time).expand(batch_size, 1, SEGMENT).clone()
    noisy = clean + 0.05 * torch.randn(batch_size, 1, SEGMENT, generator=generator)
    return {"x": noisy, "y": clean}


def weights(module: torch.nn.Module) -> dict:
    return {key: value.clone() for key, value in module.state_dict().items()}


def changed(before: dict, module: torch.nn.Module) -> bool:
    return any(not torch.equal(before[key], value) for key, value in module.state_dict().items())


def test_regression_warmup_leaves_the_discriminator_alone_then_trains_it():
    state = tiny_state(**{"Trainer.adversarial_start": 1})
    disc_before = weights(state.discriminator)
    metrics = train_step(state, clip_batch())
    assert "adv/gen" not in metrics and "adv/disc" not in metrics
    assert not changed(disc_before, state.discriminator)
    metrics = train_step(state, clip_batch())
    assert {"adv/disc", "adv/gen", "adv/feat", "grad_norm/disc", "grad_norm/gen"} <= set(metrics)
    assert changed(disc_before, state.discriminator)
    assert state.step == 2


def test_total_is_the_lambda_weighted_sum_of_the_logged_losses():
    state = tiny_state(**{"Trainer.adversarial_start": 0})
    metrics = train_step(state, clip_batch())
    expected = sum(
        state.lambdas[key] * metrics[key] for key in ("mel/loss", "l1/loss", "adv/gen", "adv/feat")
    )
    torch.testing.assert_close(metrics["total/loss"], expected)


def test_discriminator_updates_per_generator_update():
    state = tiny_state(**{"Trainer.adversarial_start": 0, "Trainer.disc_updates": 3})
    train_step(state, clip_batch())
    (adamw,) = state.optimizers_d
    steps = {int(adamw.state[p]["step"]) for p in state.discriminator.parameters()}
    assert steps == {3}


def test_gradient_accumulation_matches_the_full_batch_update():
    full = tiny_state(**{"Optimizer.kind": "adamw", "Trainer.adversarial_start": 100})
    split = tiny_state(
        **{"Optimizer.kind": "adamw", "Trainer.adversarial_start": 100, "Trainer.grad_accum": 2}
    )
    batch = clip_batch()
    full_metrics, split_metrics = train_step(full, batch), train_step(split, batch)
    torch.testing.assert_close(full_metrics["total/loss"], split_metrics["total/loss"], rtol=1e-5, atol=1e-6)
    for (name, a), (_, b) in zip(full.generator.named_parameters(), split.generator.named_parameters()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6, msg=name)


def test_a_nan_batch_is_skipped_and_counted_and_k_in_a_row_stops():
    state = tiny_state(**{"Trainer.adversarial_start": 0, "Trainer.max_nonfinite": 2})
    before_g, before_d = weights(state.generator), weights(state.discriminator)
    bad = clip_batch()
    bad["x"][0, 0, 100] = float("nan")
    metrics = train_step(state, bad)
    assert metrics["nonfinite/skipped"].item() == 1 and state.nonfinite_in_a_row == 1
    assert not changed(before_g, state.generator)
    assert state.step == 1
    train_step(state, clip_batch())  # a good step resets the run of failures
    assert state.nonfinite_in_a_row == 0 and state.nonfinite_total == 1
    train_step(state, bad)
    with pytest.raises(NonFiniteLossError, match=r"2 steps in a row.*step 3.*mel/loss=nan"):
        train_step(state, bad)
    assert before_d is not None


def test_overfitting_one_clip_makes_the_total_loss_fall():
    state = tiny_state(**{"Trainer.adversarial_start": 1000, "Scheduler.warmup_steps": 0})
    batch = clip_batch(batch_size=1)
    losses = [train_step(state, batch)["total/loss"].item() for _ in range(40)]
    # Measured: about 71 -> 58 over 40 steps; noise in a single step is well under 1.
    assert sum(losses[-5:]) / 5 < 0.9 * sum(losses[:5]) / 5, losses
    assert min(losses) in losses[-10:], losses


def test_validation_runs_in_eval_mode_without_gradients_and_restores_train_mode():
    state = tiny_state(**{"Trainer.adversarial_start": 0})
    seen = []

    def record(module, inputs, output):
        seen.append((type(module).__name__, module.training, torch.is_grad_enabled()))

    hooks = [state.generator.register_forward_hook(record), state.discriminator.register_forward_hook(record)]
    metrics = validate(
        state.generator,
        state.discriminator,
        state.losses,
        state.lambdas,
        [clip_batch()],
        state.device,
        16000,
        adversarial=True,
        speech_quality=False,
    )
    for hook in hooks:
        hook.remove()
    assert {name for name, _, _ in seen} == {"ConvNeXtUNet", "CombinedDiscriminator"}
    assert all(not training and not grad for _, training, grad in seen)
    assert state.generator.training and state.discriminator.training
    assert {"mel/loss", "l1/loss", "adv/disc", "adv/gen", "adv/feat", "total/loss", "metric/sisdr"} <= set(
        metrics
    )


def test_fine_tuning_from_an_exported_generator_restores_its_output(tmp_path):
    from gan_enhance.bundle import save_bundle
    from gan_enhance.train.finetune import FineTuneSettings, initialise_from

    trained = tiny_state()
    train_step(trained, clip_batch())
    save_bundle(trained.generator, tmp_path / "export")  # weight norm removed in the export
    torch.manual_seed(1)
    fresh = tiny_state(**{"Trainer.seed": 1})
    x = clip_batch()["x"]
    report = initialise_from(fresh, FineTuneSettings(checkpoint=str(tmp_path / "export")))
    assert not report.missing and not report.mismatched
    with torch.no_grad():
        torch.testing.assert_close(fresh.generator(x), trained.generator(x), rtol=1e-4, atol=1e-5)


TINY_BACKBONES = {
    "hifipp": TINY_HIFIPP,
    "unet1d": {
        "ConvNeXtUNet.channels": [8, 16],
        "ConvNeXtUNet.blocks": [1, 1],
        "ConvNeXtUNet.factors": [4],
        "ConvNeXtUNet.scale_vs_channels": [2],
        "ConvNeXtUNet.kernel_size": 7,
    },
    "dac": {"DACGenerator.channels": 4, "DACGenerator.strides": [2, 4], "DACGenerator.dilations": [1, 3]},
    "spectral": {"SpectralMaskGenerator.channels": 16, "SpectralMaskGenerator.blocks": 1},
}


@pytest.mark.parametrize("backbone", sorted(TINY_BACKBONES))
def test_every_generator_overlay_trains_one_step_at_16_and_48_khz(backbone):
    overlay = load_config(os.path.join(CONF, "generator", f"{backbone}.yml"))
    for rates in ((16000, 16000), (16000, 48000)):
        config = {
            **overlay,
            **TINY_BACKBONES[backbone],
            "in_sample_rate": rates[0],
            "out_sample_rate": rates[1],
        }
        state = tiny_state(**config)  # debug.yml's ConvNeXtUNet keys are ignored for other backbones
        assert state.generator.build_config["name"] == backbone
        batch = clip_batch()
        batch["y"] = batch["y"].repeat_interleave(rates[1] // rates[0], dim=-1)
        metrics = train_step(state, batch)
        assert torch.isfinite(metrics["total/loss"]) and state.nonfinite_total == 0


def test_bf16_autocast_step_trains_both_sides_and_fp16_needs_a_gpu():
    from gan_enhance.errors import ConfigError
    from gan_enhance.train.precision import Precision

    state = tiny_state(**{"Trainer.adversarial_start": 0, "Trainer.precision": "bf16"})
    before_g, before_d = weights(state.generator), weights(state.discriminator)
    metrics = train_step(state, clip_batch())
    assert metrics["total/loss"].dtype == torch.float32 and torch.isfinite(metrics["total/loss"])
    assert changed(before_g, state.generator) and changed(before_d, state.discriminator)
    assert not any(scaler.is_enabled() for scaler in state.precision.scalers.values())
    with pytest.raises(ConfigError, match="fp16.*CUDA"):
        Precision("fp16", torch.device("cpu"))


@pytest.mark.slow
def test_validation_adds_the_quality_metrics_asked_for():
    state = tiny_state()
    metrics = validate(
        state.generator,
        None,
        state.losses,
        state.lambdas,
        [clip_batch()],
        state.device,
        16000,
        adversarial=False,
        speech_quality=False,
        metric_names=["dnsmos_ovrl", "si_sdr"],
    )
    assert 1.0 <= metrics["metric/dnsmos_ovrl"] <= 5.0
    assert metrics["metric/si_sdr"] == pytest.approx(metrics["metric/sisdr"], abs=0.05)


def one_side(scale: float | None):
    """A linear model, its optimizer and a state holding them as the generator side; a gradient scaler
    at ``scale`` (fp16's dynamic scaler, here on the CPU) or none (fp32, bf16)."""
    from types import SimpleNamespace

    model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scaler = torch.amp.GradScaler("cpu", init_scale=scale or 1.0, enabled=scale is not None)
    state = SimpleNamespace(
        optimizers_g=[optimizer],
        generator=model,
        settings=SimpleNamespace(grad_clip_gen=0.0),
        precision=SimpleNamespace(scalers={"generator": scaler}),
        dist=DistInfo(),
    )
    loss = model(torch.ones(1, 2)).sum()
    scaler.scale(loss).backward()
    return state, model, scaler, loss.detach()


def test_an_fp16_overflow_is_skipped_by_the_scaler_but_is_not_a_non_finite_step():
    """Every overflow used to count towards Trainer.max_nonfinite and the logged nonfinite/skipped: the
    scaler overflows several times at the start of a run while it finds its scale."""
    from gan_enhance.train.step import _apply_update

    state, model, scaler, loss = one_side(scale=2.0**16)
    model.weight.grad[0, 0] = float("inf")  # the scaled gradient overflowed
    before = model.weight.detach().clone()
    _, applied, healthy = _apply_update(state, "generator", loss)
    assert (applied, healthy) == (False, True)
    assert torch.equal(model.weight.detach(), before) and scaler.get_scale() == 2.0**15
    # a scale pushed below 1 means the gradients overflow unscaled too: that is a non-finite step
    state, model, scaler, loss = one_side(scale=1.0)
    model.weight.grad[0, 0] = float("inf")
    assert _apply_update(state, "generator", loss)[1:] == (False, False) and scaler.get_scale() == 0.5
    # a non-finite loss is never healthy; without a scaler neither is a non-finite gradient
    state, model, scaler, loss = one_side(scale=2.0**16)
    assert _apply_update(state, "generator", torch.tensor(float("nan")))[1:] == (False, False)
    state, model, scaler, loss = one_side(scale=None)
    model.weight.grad[0, 0] = float("inf")
    assert _apply_update(state, "generator", loss)[1:] == (False, False)
    # and a finite step is applied
    state, model, scaler, loss = one_side(scale=2.0**16)
    before = model.weight.detach().clone()
    assert _apply_update(state, "generator", loss)[1:] == (True, True)
    assert not torch.equal(model.weight.detach(), before)
