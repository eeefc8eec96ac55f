"""One training step: discriminator update(s), then the generator update.

Metrics leave the step as detached 0-dim tensors; turning them into Python floats (``.item()``) is a
device sync, so the loop does it only every ``log_every`` steps.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from gan_enhance.train.balancer import gradient_shares, loss_gradients
from gan_enhance.train.distributed import all_ranks_true, unwrap
from gan_enhance.train.precision import frozen
from gan_enhance.train.state import NonFiniteLossError, State

Batch = dict[str, Tensor]
DISC_KEY = "adv/disc"
GEN_KEYS = ("adv/gen", "adv/feat")
TOTAL_KEY = "total/loss"
# Under fp16, the gradient scale below which an overflow counts as a non-finite step (see _apply_update).
MIN_HEALTHY_SCALE = 1.0


def train_step(state: State, batch: Batch) -> dict[str, Tensor]:
    """Update the discriminator, then the generator, on one batch; advance schedules and ``state.step``.

    Parameters
    ----------
    state : State
        Models, optimizers, losses and counters; changed in place.
    batch : dict
        ``"x"`` degraded input ``(B, 1, T_in)`` and ``"y"`` clean target ``(B, 1, T_out)``.

    Returns
    -------
    dict[str, Tensor]
        Detached 0-dim tensors keyed by log key: each loss, ``total/loss``, ``grad_norm/gen``,
        ``grad_norm/disc`` (adversarial steps) and ``nonfinite/skipped`` (skipped steps so far).
    """
    chunks = micro_batches(batch, state.settings.grad_accum, state.device)
    adversarial = state.adversarial
    # With one micro-batch the generator output feeds both updates; with several, keeping every graph
    # until the generator update would defeat accumulation, so the discriminator sees a no-grad rerun.
    outputs = None
    if len(chunks) == 1:
        with phase(state, "gen_forward"), state.precision.autocast():
            outputs = [state.generator(chunks[0][0])]
    metrics: dict[str, Tensor] = {}
    healthy = True
    if adversarial:
        fakes = [output.detach() for output in outputs] if outputs is not None else None
        for _ in range(state.settings.disc_updates):
            disc_metrics, disc_ok = discriminator_update(state, chunks, fakes)
            metrics.update(disc_metrics)
            healthy = healthy and disc_ok
    gen_metrics, gen_ok = generator_update(state, chunks, outputs, adversarial)
    metrics.update(gen_metrics)
    healthy = healthy and gen_ok
    with warnings.catch_warnings():
        # A skipped (non-finite) step still advances the schedule, which follows the step count.
        warnings.filterwarnings("ignore", message="Detected call of", category=UserWarning)
        for scheduler in state.schedulers_g + (state.schedulers_d if adversarial else []):
            scheduler.step()
    _count_nonfinite(state, healthy, metrics)
    state.step += 1
    return metrics


def micro_batches(batch: Batch, parts: int, device: torch.device) -> list[tuple[Tensor, Tensor]]:
    """Split ``(x, y)`` into ``parts`` equal micro-batches along the batch axis, on ``device``."""
    x, y = batch["x"].to(device, non_blocking=True), batch["y"].to(device, non_blocking=True)
    if x.shape[0] % parts:
        raise ValueError(f"batch of {x.shape[0]} cannot be split into Trainer.grad_accum={parts} equal parts")
    return list(zip(x.chunk(parts), y.chunk(parts)))


def discriminator_update(
    state: State, chunks: Sequence[tuple[Tensor, Tensor]], fakes: Sequence[Tensor] | None
) -> tuple[dict[str, Tensor], bool]:
    """One discriminator update on real ``y`` against generated (detached) outputs."""
    weight = state.lambdas.get(DISC_KEY, 1.0)
    total = torch.zeros((), device=state.device)
    _zero_grad(state.optimizers_d)
    for index, (x, y) in enumerate(chunks):
        last = index == len(chunks) - 1
        if fakes is None:
            with phase(state, "gen_forward"), torch.no_grad(), state.precision.autocast():
                fake = state.generator(x)
        else:
            fake = fakes[index]
        with phase(state, "disc_forward_backward"), _sync(state.discriminator, last):
            with state.precision.autocast():
                real_out, fake_out = discriminate(state.discriminator, y, fake)
                loss = state.losses.adversarial.discriminator(real_out, fake_out).float()
            state.precision.scalers["discriminator"].scale(loss * weight / len(chunks)).backward()
        total += loss.detach() / len(chunks)
    with phase(state, "optimizer"):
        norm, _, healthy = _apply_update(state, "discriminator", total)
    return {DISC_KEY: total, "grad_norm/disc": norm}, healthy


def generator_update(
    state: State, chunks: Sequence[tuple[Tensor, Tensor]], outputs: Sequence[Tensor] | None, adversarial: bool
) -> tuple[dict[str, Tensor], bool]:
    """One generator update on the weighted sum of its losses (``outputs``: forward already done), or on
    the balanced gradient when ``Trainer.balancer`` is on.

    On the steps that are logged, each loss's share of the gradient at the generator output is measured
    on the first micro-batch (``grad/<key>``, ``grad_norm/<key>``; see :mod:`gan_enhance.train.balancer`).
    """
    sums: dict[str, Tensor] = {}
    shares: dict[str, Tensor] = {}
    measure = state.settings.logs_at(state.step + 1)  # the loop logs after the step, at the new count
    scaler = state.precision.scalers["generator"]
    _zero_grad(state.optimizers_g)
    for index, (x, y) in enumerate(chunks):
        last = index == len(chunks) - 1
        with _sync(state.generator, last):
            if outputs is None:
                with phase(state, "gen_forward"), state.precision.autocast():
                    y_hat = state.generator(x)
            else:
                y_hat = outputs[index]
            with phase(state, "losses"):
                losses = generator_losses(state, y_hat, y, adversarial)
                total = weighted_total(losses, state.lambdas)
            if state.balancer is not None:
                with phase(state, "gen_backward"):
                    gradients = loss_gradients(losses, state.balancer.keys(losses), y_hat)
                    balanced, scales = state.balancer(gradients, state.dist)
                    y_hat.backward(scaler.scale(balanced / len(chunks)).to(y_hat.dtype))
                if measure and index == 0:
                    shares = gradient_shares(gradients, scales)
            else:
                if measure and index == 0:
                    with phase(state, "gradient_shares"):
                        weighted = [key for key in losses if state.lambdas.get(key, 0.0) != 0.0]
                        shares = gradient_shares(loss_gradients(losses, weighted, y_hat), state.lambdas)
                with phase(state, "gen_backward"):
                    scaler.scale(total / len(chunks)).backward()
        for key, value in {**losses, TOTAL_KEY: total}.items():
            sums[key] = sums.get(key, 0.0) + value.detach().float() / len(chunks)
    sums.update(shares)
    with phase(state, "optimizer"):
        norm, applied, healthy = _apply_update(state, "generator", sums[TOTAL_KEY])
        if applied and state.ema is not None:
            state.ema.update(unwrap(state.generator), state.step)
    return {**sums, "grad_norm/gen": norm}, healthy


def generator_losses(state: State, y_hat: Tensor, y: Tensor, adversarial: bool) -> dict[str, Tensor]:
    """Every generator loss by log key; adversarial terms only once the warm-up is over.

    Reconstruction losses run in float32 outside autocast: spectral losses lose too much in half precision.
    """
    losses: dict[str, Tensor] = {}
    y_hat_32 = y_hat.float()
    with torch.autocast(state.device.type, enabled=False):
        for key, loss_fn in state.losses.reconstruction.items():
            if state.lambdas.get(key, 0.0) != 0.0:
                losses[key] = loss_fn(y_hat_32, y)
            elif state.settings.log_zero_weight_losses:
                with torch.no_grad():
                    losses[key] = loss_fn(y_hat_32.detach(), y)
    if adversarial:
        discriminator = unwrap(state.discriminator)
        # Gradients flow through the discriminator to the generator, not into its weights; the bare module
        # (not the DDP wrapper) keeps DDP's gradient hooks out of a backward that has no D update. The real
        # half only gives feature-matching targets (no gradient), so it runs without a graph: the backward
        # through the discriminator then covers the generated half alone.
        with frozen(discriminator), state.precision.autocast():
            with torch.no_grad():
                real_out = discriminator(y)
            fake_out = discriminator(y_hat.to(y.dtype))
            losses["adv/gen"] = state.losses.adversarial.generator(fake_out).float()
            losses["adv/feat"] = state.losses.feature_matching(real_out, fake_out).float()
    return losses


def weighted_total(losses: dict[str, Tensor], lambdas: dict[str, float]) -> Tensor:
    """``sum(lambdas[k] * losses[k])`` over the losses with a non-zero weight."""
    terms = [lambdas[key] * value for key, value in losses.items() if lambdas.get(key, 0.0) != 0.0]
    if not terms:
        raise ValueError(f"no loss has a non-zero weight in lambdas {lambdas}")
    return torch.stack(terms).sum()


def discriminate(discriminator: nn.Module, real: Tensor, fake: Tensor) -> tuple[list, list]:
    """Run real and fake through the discriminator as one batch and split each output back in two."""
    outputs = discriminator(torch.cat([real, fake.to(real.dtype)]))
    real_out, fake_out = [], []
    for logits, feature_maps in outputs:
        real_logits, fake_logits = logits.chunk(2)
        halves = [feature_map.chunk(2) for feature_map in feature_maps]
        real_out.append(_like(outputs[0], real_logits, [half[0] for half in halves]))
        fake_out.append(_like(outputs[0], fake_logits, [half[1] for half in halves]))
    return real_out, fake_out


def _like(template: tuple, logits: Tensor, feature_maps: list[Tensor]) -> tuple:
    """A ``(logits, feature_maps)`` pair of the same (named) tuple type as ``template``."""
    if hasattr(template, "_make"):
        return template._make((logits, feature_maps))
    return (logits, feature_maps)


def _apply_update(state: State, side: str, loss: Tensor) -> tuple[Tensor, bool, bool]:
    """Unscale, clip and step one side (``"generator"`` or ``"discriminator"``) with its own scaler; skip
    the step when the loss or the gradient norm is not finite.

    Returns the gradient norm before clipping, whether the update was applied, and whether the step was
    healthy. Under fp16 a non-finite gradient with a finite loss is the gradient scaler's overflow: the
    scaler skips the step and lowers its scale, which is how it finds its scale (several times at the start
    of a run and of adversarial training), so it counts as healthy while the scale stays at least
    ``MIN_HEALTHY_SCALE``; below that the gradients overflow even unscaled, and the step counts as
    non-finite.
    """
    if side == "generator":
        optimizers, model, clip = state.optimizers_g, state.generator, state.settings.grad_clip_gen
    else:
        optimizers, model, clip = state.optimizers_d, state.discriminator, state.settings.grad_clip_disc
    scaler = state.precision.scalers[side]
    for optimizer in optimizers:
        scaler.unscale_(optimizer)
    parameters = [p for p in model.parameters() if p.grad is not None]
    norm = torch.nn.utils.clip_grad_norm_(parameters, clip if clip > 0 else math.inf).detach()
    finite = all_ranks_true(torch.stack([torch.isfinite(norm), torch.isfinite(loss)]), state.dist)
    # The one host sync of an update: whether to skip must be known on the host. Ranks agree because the
    # flags are reduced across them (and gradients are already all-reduced).
    gradient_finite, loss_finite = finite.tolist()
    applied = gradient_finite and loss_finite
    if applied:
        for optimizer in optimizers:
            scaler.step(optimizer)
    scaler.update()
    healthy = applied
    if loss_finite and not gradient_finite and scaler.is_enabled():  # an overflow: a second sync, rare
        healthy = scaler.get_scale() >= MIN_HEALTHY_SCALE
    return norm, applied, healthy


def _count_nonfinite(state: State, healthy: bool, metrics: dict[str, Tensor]) -> None:
    if healthy:
        state.nonfinite_in_a_row = 0
    else:
        state.nonfinite_in_a_row += 1
        state.nonfinite_total += 1
    # torch.full fills on the device; torch.tensor of a number would copy it from the host and wait for
    # the device to finish the step's queued work (a sync every step).
    metrics["nonfinite/skipped"] = torch.full((), float(state.nonfinite_total), device=state.device)
    if state.nonfinite_in_a_row >= state.settings.max_nonfinite:
        values = ", ".join(f"{key}={value.item():.4g}" for key, value in sorted(metrics.items()))
        raise NonFiniteLossError(
            f"{state.nonfinite_in_a_row} steps in a row had a non-finite loss or gradient (last at step "
            f"{state.step}): {values}. Lower the learning rate, clip gradients harder "
            "(Trainer.grad_clip_gen / grad_clip_disc), use bf16 instead of fp16, or check the data."
        )


def phase(state: State, name: str) -> contextlib.AbstractContextManager:
    """Time a part of the step when ``state.phase_timer`` is set (benchmarks); otherwise nothing."""
    if state.phase_timer is None:
        return contextlib.nullcontext()
    return state.phase_timer(name)


def _zero_grad(optimizers: list[torch.optim.Optimizer]) -> None:
    for optimizer in optimizers:
        optimizer.zero_grad(set_to_none=True)


def _sync(model: nn.Module, last: bool) -> contextlib.AbstractContextManager:
    """DDP's ``no_sync`` for all but the last micro-batch (gradients are all-reduced once per update)."""
    if last or not hasattr(model, "no_sync"):
        return contextlib.nullcontext()
    return model.no_sync()
