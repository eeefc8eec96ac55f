"""The trainer's core rules: the EMA is used only once it holds an update; one gradient scaler per side;
checkpoints clean up after killed writes and refuse optimizer states grouped otherwise; a zero-weight WavLM
loss loads nothing."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from test_train_step import clip_batch, tiny_config, tiny_state

from gan_enhance.checkpoint_io import generator_from_checkpoint
from gan_enhance.errors import CheckpointError
from gan_enhance.train.builders import build_losses, read_experiment
from gan_enhance.train.checkpoint import checkpoint_path, restore_state, save_checkpoint, state_payload
from gan_enhance.train.distributed import DistInfo, unwrap
from gan_enhance.train.finetune import FineTuneSettings, initialise_from
from gan_enhance.train.step import generator_losses, train_step


def ema_state(start_step: int):
    return tiny_state(**{"EMA.decay": 0.999, "EMA.start_step": start_step, "Trainer.adversarial_start": 100})


def test_eval_generator_is_the_trained_one_until_the_ema_holds_an_update():
    state = ema_state(start_step=3)
    train_step(state, clip_batch())
    assert state.eval_generator() is unwrap(state.generator)
    for _ in range(3):
        train_step(state, clip_batch())
    assert state.eval_generator() is state.ema.module


def test_export_and_fine_tuning_skip_an_ema_without_updates(tmp_path):
    state = ema_state(start_step=1000)
    train_step(state, clip_batch())
    trained = {key: value.clone() for key, value in unwrap(state.generator).state_dict().items()}
    save_checkpoint(state_payload(state, {}, {}, {}, {}), tmp_path, ["latest"])
    generator, source = generator_from_checkpoint(str(checkpoint_path(tmp_path, "latest")))
    assert source["weights"] == "generator"
    for key, value in generator.state_dict().items():
        assert torch.equal(value, trained[key]), key

    student = ema_state(start_step=1000)
    initialise_from(student, FineTuneSettings(checkpoint=str(checkpoint_path(tmp_path, "latest"))))
    for key, value in unwrap(student.generator).state_dict().items():
        assert torch.equal(value, trained[key]), key


def test_a_discriminator_overflow_leaves_the_generator_scale_alone():
    """PyTorch's rule for several optimizers: a skipped discriminator step must not shrink the scale the
    generator's loss is multiplied by."""
    state = tiny_state(**{"Trainer.adversarial_start": 0})
    init_scale = 2.0**10
    state.precision.scalers = {
        side: torch.amp.GradScaler("cpu", init_scale=init_scale) for side in ("generator", "discriminator")
    }
    parameter = next(unwrap(state.discriminator).parameters())
    parameter.register_hook(lambda grad: torch.full_like(grad, math.inf))
    metrics = train_step(state, clip_batch())
    assert metrics["grad_norm/disc"].isinf()
    assert state.precision.scalers["discriminator"].get_scale() == init_scale / 2
    assert state.precision.scalers["generator"].get_scale() == init_scale


def test_a_wavlm_loss_with_weight_zero_never_loads_its_model():
    config = tiny_config(**{"lambdas.wavlm/loss": 0.0, "WavLMFeatureLoss.model": "/nonexistent/wavlm"})
    losses = build_losses(read_experiment(config))
    assert "wavlm/loss" not in losses and "mel/loss" in losses


def test_a_checkpoint_write_removes_what_a_killed_write_left_beside_it(tmp_path):
    """SIGKILL during a checkpoint write leaves its hidden temporary file; the next write of that
    checkpoint removes it (and nothing else)."""
    state = tiny_state()
    latest = checkpoint_path(tmp_path, "latest")
    latest.parent.mkdir(parents=True)
    leftover = latest.parent / f".{latest.name}.k1ll3d_x.pt"
    unrelated = latest.parent / ".notes.txt"
    leftover.write_bytes(b"half a checkpoint")
    unrelated.write_text("mine")
    save_checkpoint(state_payload(state, {}, {}, {}, {}), tmp_path, ["latest"])
    assert latest.is_file() and not leftover.exists() and unrelated.exists()


def _regrouped(payload: dict) -> dict:
    """The payload with the generator's last optimizer's parameters moved between its groups (as a
    checkpoint of a version that sorted parameters differently)."""
    payload = copy.deepcopy(payload)
    groups = payload["optimizers"]["generator"][-1]["param_groups"]
    if len(groups) == 1:
        groups.append({**groups[0], "params": []})
    moved = groups[0]["params"].pop()
    groups[1]["params"].append(moved)
    return payload


def test_resuming_optimizer_states_grouped_otherwise_is_a_clear_error():
    state = tiny_state()
    train_step(state, clip_batch())
    payload = _regrouped(state_payload(state, {}, {}, {}, {}))
    with pytest.raises(CheckpointError, match="FineTune.checkpoint"):
        restore_state(tiny_state(), payload)


def test_fine_tuning_starts_optimizers_fresh_when_their_groups_differ(tmp_path):
    state = tiny_state()
    train_step(state, clip_batch())
    save_checkpoint(_regrouped(state_payload(state, {}, {}, {}, {})), tmp_path, ["latest"])
    student = tiny_state()
    settings = FineTuneSettings(checkpoint=str(checkpoint_path(tmp_path, "latest")), reuse_optimizers=True)
    report = initialise_from(student, settings)
    assert "generator optimizer fresh" in "\n".join(report.lines())


def test_logged_steps_carry_each_losses_share_of_the_gradient_at_the_output():
    """``grad/<key>`` is ||lambda_k * d loss_k / d y_hat|| over the sum of those norms, by hand."""
    state = tiny_state(**{"Trainer.adversarial_start": 100, "Trainer.log_every": 2})
    batch = clip_batch()
    assert not any(key.startswith("grad/") for key in train_step(state, batch))
    y_hat = state.generator(batch["x"])
    losses = generator_losses(state, y_hat, batch["y"], adversarial=False)
    norms = {}
    for key in ("mel/loss", "l1/loss"):
        (gradient,) = torch.autograd.grad(state.lambdas[key] * losses[key], y_hat, retain_graph=True)
        norms[key] = float(gradient.norm())
    metrics = train_step(state, batch)
    total = sum(norms.values())
    for key, norm in norms.items():
        assert metrics[f"grad/{key}"].item() == pytest.approx(norm / total, rel=1e-5), key
        assert metrics[f"grad_norm/{key}"].item() == pytest.approx(norm, rel=1e-5), key


def test_adversarial_terms_get_their_shares_too_and_the_shares_add_up_to_one():
    state = tiny_state(**{"Trainer.adversarial_start": 0, "Trainer.log_every": 1})
    metrics = train_step(state, clip_batch())
    keys = ("mel/loss", "l1/loss", "adv/gen", "adv/feat")
    assert all(metrics[f"grad/{key}"] > 0 for key in keys)
    assert sum(metrics[f"grad/{key}"].item() for key in keys) == pytest.approx(1.0)


def test_the_balancer_gives_each_loss_its_weight_as_share_of_the_gradient():
    """EnCodec's formula by hand: total_norm * w_k / sum(w) * g_k / avg|g_k|, averages bias-corrected."""
    from gan_enhance.train.balancer import GradientBalancer

    balancer = GradientBalancer(
        {"a": 3.0, "b": 1.0, "off": 0.0}, total_norm=2.0, decay=0.5, device=torch.device("cpu")
    )
    assert balancer.keys({"a": 0, "off": 0, "b": 0}) == ["a", "b"]
    first = {"a": torch.full((2, 1, 4), 5.0), "b": torch.full((2, 1, 4), 0.05)}  # per-example norms 10, 0.1
    second = {"a": torch.full((2, 1, 4), 10.0), "b": torch.full((2, 1, 4), 0.05)}  # norms 20, 0.1
    balancer(first, DistInfo())
    balanced, scales = balancer(second, DistInfo())
    average_a = (0.5 * 10 + 20) / (0.5 + 1)  # bias-corrected EMA of the norms
    assert scales["a"].item() == pytest.approx(2.0 * 0.75 / average_a)
    assert scales["b"].item() == pytest.approx(2.0 * 0.25 / 0.1)
    torch.testing.assert_close(balanced, second["a"] * scales["a"] + second["b"] * scales["b"])
    restored = GradientBalancer({"a": 3.0, "b": 1.0}, 2.0, 0.5, torch.device("cpu"))
    restored.load_state_dict(balancer.state_dict())
    assert restored.sums["a"].item() == balancer.sums["a"].item()


def test_a_balanced_step_gives_the_losses_their_weights_as_shares():
    """One example, no averaging (decay 0): each loss's share of the gradient is its weight's share."""
    state = tiny_state(
        **{"Trainer.adversarial_start": 0, "Trainer.log_every": 1, "Trainer.balancer": True},
        **{"Trainer.balancer_decay": 0.0, "Trainer.batch_size": 1},
    )
    before = {key: value.clone() for key, value in state.generator.state_dict().items()}
    metrics = train_step(state, clip_batch(batch_size=1))
    weights = {key: state.lambdas[key] for key in ("mel/loss", "l1/loss", "adv/gen", "adv/feat")}
    for key, weight in weights.items():
        assert metrics[f"grad/{key}"].item() == pytest.approx(weight / sum(weights.values()), rel=1e-4), key
    assert any(not torch.equal(before[key], value) for key, value in state.generator.state_dict().items())


def test_a_non_finite_gradient_leaves_the_balancer_averages_alone():
    from gan_enhance.train.balancer import GradientBalancer

    balancer = GradientBalancer({"a": 1.0, "b": 1.0}, total_norm=1.0, decay=0.9, device=torch.device("cpu"))
    finite = {"a": torch.full((1, 1, 4), 1.0), "b": torch.full((1, 1, 4), 1.0)}
    balancer(finite, DistInfo())
    before = balancer.state_dict()
    balancer({"a": torch.full((1, 1, 4), math.inf), "b": torch.full((1, 1, 4), 1.0)}, DistInfo())
    assert balancer.sums["a"].item() == before["sums"]["a"].item()
    _, scales = balancer(finite, DistInfo())
    assert math.isfinite(scales["a"].item()) and scales["a"].item() > 0


def test_under_ddp_the_bare_discriminator_of_the_generator_step_is_the_compiled_one():
    """The generator step calls the discriminator bare (unwrapped from DDP); compiling only the DDP
    wrapper left that pass, the costliest of an adversarial step, eager on every multi-GPU run."""
    import torch.distributed as dist

    from gan_enhance.train.builders import build_state

    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        experiment = read_experiment(tiny_config(**{"Trainer.compile": True}))
        state = build_state(experiment, DistInfo(launched=True))  # one rank under torchrun: DDP-wrapped
        assert isinstance(state.discriminator, torch.nn.parallel.DistributedDataParallel)
        assert unwrap(state.discriminator)._compiled_call_impl is not None
    finally:
        dist.destroy_process_group()


def test_a_compiled_discriminator_lets_the_step_take_each_losses_gradient(monkeypatch):
    """torch.compile's backward reuses its saved buffers by default, so the gradient shares (taken with
    retain_graph before the update's backward) failed on every logged step after the first backward."""
    compile_module = torch.nn.Module.compile
    monkeypatch.setattr(
        torch.nn.Module, "compile", lambda self, **_: compile_module(self, backend="aot_eager")
    )
    state = tiny_state(**{"Trainer.compile": True, "Trainer.adversarial_start": 0, "Trainer.log_every": 1})
    for _ in range(2):
        metrics = train_step(state, clip_batch())
    assert metrics["grad/adv/feat"] > 0
