"""Losses: zero for identical inputs, values against hand computations, normalisation, gradients."""

from __future__ import annotations

import math

import pytest
import torch

from gan_enhance._compat import patch

patch()  # before anything imports torchaudio (the mel filterbank, the tiny WavLM fixture)

from gan_enhance.losses import (  # noqa: E402
    AdversarialLoss,
    FeatureMatchingLoss,
    MultiResolutionSTFTLoss,
    MultiScaleMelLoss,
    SISDRLoss,
    WaveformL1Loss,
)
from gan_enhance.models.discriminators import (  # noqa: E402
    CombinedDiscriminator,
    DiscriminatorOutput,
    MultiPeriodDiscriminator,
    build_discriminator,
)
from gan_enhance.nn.spectral import mel_filterbank  # noqa: E402

SAMPLE_RATE = 16000


def noise(length: int = 8001, batch: int = 2, seed: int = 0, scale: float = 0.1) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return scale * torch.randn(batch, 1, length, generator=generator)


def outputs(*logits: float, features: tuple[float, ...] = ()) -> list[DiscriminatorOutput]:
    """One sub-discriminator output per value: constant logits and constant feature maps."""
    return [
        DiscriminatorOutput(torch.full((2, 1, 5, 3), v), [torch.full((2, 4, 7), f) for f in features])
        for v in logits
    ]


RECONSTRUCTION = {
    "mel": lambda: MultiScaleMelLoss(SAMPLE_RATE),
    "stft": lambda: MultiResolutionSTFTLoss(),
    "l1": lambda: WaveformL1Loss(),
}


@pytest.mark.parametrize("name", sorted(RECONSTRUCTION))
def test_reconstruction_loss_is_zero_for_identical_inputs(name):
    y = noise()
    assert RECONSTRUCTION[name]()(y, y.clone()).item() == 0.0


def test_waveform_l1_of_a_constant_offset():
    y = noise()
    assert WaveformL1Loss()(y + 0.25, y).item() == pytest.approx(0.25, rel=1e-5)


def test_mel_loss_of_a_doubled_signal_is_log10_2_per_scale():
    # The mel transform is linear in |STFT|, so doubling the signal adds log10(2) to every log-mel value
    # above the clamp; DAC sums the 7 scales.
    y = noise(scale=0.3)
    loss = MultiScaleMelLoss(SAMPLE_RATE)
    assert loss(2 * y, y).item() == pytest.approx(7 * math.log10(2), rel=1e-4)
    magnitude_only = MultiScaleMelLoss(
        SAMPLE_RATE, n_mels=[40], window_lengths=[512], log_weight=0.0, magnitude_weight=1.0
    )
    magnitude = torch.stft(
        y[:, 0], 512, 128, window=torch.hann_window(512), return_complex=True, center=True, pad_mode="reflect"
    ).abs()
    expected = (mel_filterbank(SAMPLE_RATE, 512, 40) @ magnitude).mean().item()  # |2m - m| = m
    assert magnitude_only(2 * y, y).item() == pytest.approx(expected, rel=1e-5)


def test_stft_loss_of_a_doubled_signal():
    # Spectral convergence: | |Y| - 2|Y| | / |Y| = 1; log-magnitude L1: ln 2 (the eps floor is negligible).
    y = noise(scale=0.3)
    assert MultiResolutionSTFTLoss()(2 * y, y).item() == pytest.approx(1 + math.log(2), rel=1e-3)


def test_sisdr_by_hand_and_scale_invariance():
    y = noise(length=4000)
    y = y - y.mean(dim=-1, keepdim=True)
    residual = noise(length=4000, seed=1)
    residual = residual - residual.mean(dim=-1, keepdim=True)
    # Remove the part of the residual along y, so y is exactly the projection of y + residual.
    residual = residual - (residual * y).sum(-1, keepdim=True) / y.square().sum(-1, keepdim=True) * y
    expected = -(10 * torch.log10(y.square().sum(-1) / residual.square().sum(-1))).mean()
    loss = SISDRLoss()
    assert loss(y + residual, y).item() == pytest.approx(expected.item(), abs=1e-3)
    assert loss(3 * (y + residual), y).item() == pytest.approx(expected.item(), abs=1e-3)
    assert loss(y, y).item() < expected.item() - 40  # identical signals: its minimum, not 0


@pytest.mark.parametrize("loss", [WaveformL1Loss(), SISDRLoss(), MultiResolutionSTFTLoss()])
def test_shape_mismatch_is_an_error(loss):
    with pytest.raises(ValueError, match="differ in shape"):
        loss(noise(length=4000), noise(length=4001))


def test_adversarial_losses_by_hand():
    lsgan, hinge = AdversarialLoss("lsgan"), AdversarialLoss("hinge")
    assert lsgan.discriminator(outputs(1.0), outputs(0.0)).item() == 0.0
    assert lsgan.discriminator(outputs(0.5), outputs(0.5)).item() == pytest.approx(0.5)
    assert lsgan.generator(outputs(0.5)).item() == pytest.approx(0.25)
    assert lsgan(outputs(0.0, 1.0)).item() == pytest.approx(0.5)  # mean over sub-discriminators
    assert hinge.discriminator(outputs(2.0), outputs(-2.0)).item() == 0.0
    assert hinge.discriminator(outputs(0.0), outputs(0.0)).item() == pytest.approx(2.0)
    assert hinge.generator(outputs(0.5, 1.5)).item() == pytest.approx(-1.0)
    with pytest.raises(ValueError, match="unknown adversarial loss"):
        AdversarialLoss("wgan")


def test_feature_matching_by_hand():
    real, fake = outputs(0.0, 0.0, features=(2.0, 4.0)), outputs(0.0, 0.0, features=(3.0, 4.0))
    assert FeatureMatchingLoss()(real, fake).item() == pytest.approx(0.5)  # mean of |3-2| and |4-4|
    assert FeatureMatchingLoss(relative=True)(real, fake).item() == pytest.approx(0.25)  # mean of 1/2, 0/4


def test_feature_matching_does_not_scale_with_the_number_of_sub_discriminators():
    torch.manual_seed(0)
    mpd = MultiPeriodDiscriminator(periods=[2, 3], channels=[4, 8], strides=[3, 1])
    doubled = MultiPeriodDiscriminator(periods=[2, 3, 2, 3], channels=[4, 8], strides=[3, 1])
    for copy, source in zip(doubled.discriminators, list(mpd.discriminators) * 2):
        copy.load_state_dict(source.state_dict())
    y, y_hat = noise(length=4001), noise(length=4001, seed=1)
    single, double = CombinedDiscriminator([mpd]), CombinedDiscriminator([doubled])
    assert len(double(y)) == 2 * len(single(y))
    for loss in (FeatureMatchingLoss(), FeatureMatchingLoss(relative=True)):
        torch.testing.assert_close(loss(double(y), double(y_hat)), loss(single(y), single(y_hat)))
    adversarial = AdversarialLoss()
    torch.testing.assert_close(adversarial.generator(double(y_hat)), adversarial.generator(single(y_hat)))


def tiny_generator() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Conv1d(1, 1, 5, padding=2)


def generator_losses():
    discriminator = build_discriminator(
        ["mpd", "mbd"],
        {"mpd": {"periods": [2, 3], "channels": [4, 8], "strides": [3, 1]}, "mbd": {"channels": 4}},
        SAMPLE_RATE,
        normalize_input=True,
    )
    adversarial, feature_matching = AdversarialLoss("hinge"), FeatureMatchingLoss(relative=True)
    return {
        "adv/gen": lambda y_hat, y: adversarial.generator(discriminator(y_hat)),
        "adv/feat": lambda y_hat, y: feature_matching(discriminator(y), discriminator(y_hat)),
        "mel/loss": MultiScaleMelLoss(SAMPLE_RATE),
        "stft/loss": MultiResolutionSTFTLoss(),
        "l1/loss": WaveformL1Loss(),
        "sisdr/loss": SISDRLoss(),
    }


@pytest.mark.parametrize("key", ["adv/gen", "adv/feat", "mel/loss", "stft/loss", "l1/loss", "sisdr/loss"])
def test_gradients_flow_from_every_loss_to_the_generator(key):
    generator, x, y = tiny_generator(), noise(seed=2), noise(seed=3)
    loss = generator_losses()[key](generator(x), y)
    assert loss.dim() == 0
    loss.backward()
    assert torch.isfinite(generator.weight.grad).all()
    assert generator.weight.grad.abs().sum() > 0


def test_discriminator_loss_trains_every_sub_discriminator():
    discriminator = build_discriminator(
        ["mpd", "msstft"],
        {"mpd": {"periods": [2, 3], "channels": [4, 8], "strides": [3, 1]}, "msstft": {"filters": 4}},
        SAMPLE_RATE,
        normalize_input=False,
    )
    y, y_hat = noise(), noise(seed=1)
    AdversarialLoss().discriminator(discriminator(y), discriminator(y_hat.detach())).backward()
    for name, parameter in discriminator.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name
