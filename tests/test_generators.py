"""The generator contract, per backbone: lengths, gradients, weight norm, context, chunking, overfitting."""

from __future__ import annotations

import pytest
import torch

from gan_enhance.errors import ConfigError
from gan_enhance.models.generators import GENERATORS, Generator, build_generator
from gan_enhance.nn.layers import has_weight_norm

# Tiny sizes of every backbone: same code paths as the defaults, milliseconds per call.
TINY = {
    "unet1d": dict(
        patching=2,
        channels=[8, 16],
        blocks=[1, 1],
        factors=[4],
        scale_vs_channels=[2],
        kernel_size=7,
        expansion=2,
    ),
    "dac": dict(channels=4, strides=[2, 4], dilations=[1, 3], input_downsample=2),
    "spectral": dict(n_fft=64, hop=16, channels=16, blocks=2, kernel_size=3),
    "hifipp": dict(
        n_fft=64,
        n_mels=16,
        spectral_widths=[4, 8],
        upsample_rates=[4, 4],
        upsample_channels=16,
        resblock_kernels=[3],
        resblock_dilations=[1],
        waveunet_widths=[4, 8],
        waveunet_factors=[4],
        mask_n_fft=64,
        mask_hop=16,
        mask_widths=[4, 8],
        head_widths=[4, 8],
        head_factors=[2],
        init_std=0.2,  # HiFi-GAN's 0.01 gives a near-silent output at this size: comparisons would be vacuous
    ),
}
RATES = [(16000, 16000), (16000, 48000), (48000, 48000)]


def tiny(name: str, rates: tuple[int, int] = (16000, 16000), **overrides) -> Generator:
    torch.manual_seed(0)
    return build_generator(
        name, in_sample_rate=rates[0], out_sample_rate=rates[1], **{**TINY[name], **overrides}
    )


def test_every_registered_backbone_is_tested():
    assert set(GENERATORS.names()) == set(TINY)


@pytest.mark.parametrize("name", sorted(TINY))
@pytest.mark.parametrize("rates", RATES)
def test_output_length_for_any_input_length(name, rates):
    model = tiny(name, rates).eval()
    for length in (1, 333, 1001):
        with torch.no_grad():
            y = model(torch.randn(2, 1, length))
        assert y.shape == (2, 1, length * model.ratio)
        assert torch.isfinite(y).all()


@pytest.mark.parametrize("name", sorted(TINY))
@pytest.mark.parametrize("rates", [(16000, 16000), (16000, 48000)])
def test_gradients_reach_every_parameter(name, rates):
    model = tiny(name, rates)
    x = torch.randn(2, 1, 2 * model.alignment + 5)
    model(x).pow(2).mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing


@pytest.mark.parametrize("name", sorted(TINY))
@pytest.mark.parametrize("rates", [(16000, 16000), (16000, 48000)])
def test_remove_weight_norm_keeps_output(name, rates):
    model = tiny(name, rates).eval()
    x = torch.randn(1, 1, 3 * model.alignment + 7)
    with torch.no_grad():
        before = model(x)
        assert has_weight_norm(model)
        assert model.remove_weight_norm() is model
        after = model(x)
    assert not has_weight_norm(model)
    assert (before - after).abs().max() < 1e-5


def measured_radius(model: Generator, offsets: list[int]) -> int:
    """Largest distance (input samples) from a perturbed input sample to an output sample that moved at all
    (float64; unaffected outputs are computed from identical numbers, so they stay bit-identical)."""
    model = model.double().eval()
    length = 4 * model.context + 8 * model.alignment
    x = torch.randn(1, 1, length, dtype=torch.float64)
    radius = 0
    with torch.no_grad():
        reference = model(x)
        for offset in offsets:
            position = length // 2 + offset
            perturbed = x.clone()
            perturbed[..., position] += 1.0
            moved = (model(perturbed) != reference)[0, 0].nonzero()[:, 0]
            assert len(moved), "perturbing the input changed nothing"
            distances = (moved.double() / model.ratio - position).abs()
            radius = max(radius, int(distances.max().ceil()))
    return radius


@pytest.mark.parametrize("name", sorted(TINY))
@pytest.mark.parametrize("rates", [(16000, 16000), (16000, 48000)])
def test_declared_context_covers_measured_influence(name, rates):
    model = tiny(name, rates)
    assert model.context % model.alignment == 0
    # Several phases relative to the model's alignment (strided models reach further from some).
    offsets = sorted({0, 1, model.alignment // 3, model.alignment // 2, model.alignment - 1})
    radius = measured_radius(model, offsets)
    assert radius <= model.context
    # The declared context is a bound, but not a wild one.
    assert model.context <= 3 * radius + 2 * model.alignment


def chunked(model: Generator, x: torch.Tensor, chunk: int) -> torch.Tensor:
    """What chunked inference does: aligned chunks with ``context`` each side (clipped at the file edges)."""
    context, length, outputs = model.context, x.shape[-1], []
    for start in range(0, length, chunk):
        end = min(start + chunk, length)
        left, right = max(0, start - context), min(length, end + context)
        y = model(x[..., left:right])
        outputs.append(y[..., (start - left) * model.ratio : (end - left) * model.ratio])
    return torch.cat(outputs, dim=-1)


@pytest.mark.parametrize("name", sorted(TINY))
@pytest.mark.parametrize("rates", [(16000, 16000), (16000, 48000)])
def test_chunked_output_equals_whole_file(name, rates):
    model = tiny(name, rates).eval()
    chunk = 2 * model.alignment
    x = torch.randn(1, 1, 3 * chunk + 2 * model.context + 123)
    with torch.no_grad():
        whole, pieces = model(x), chunked(model, x, chunk)
    assert pieces.shape == whole.shape
    assert whole.std() > 0.1  # a non-trivial output
    assert (pieces - whole).abs().max() < 1e-4


def test_defaults_build_with_their_documented_sizes():
    sizes = {name: sum(p.numel() for p in build_generator(name).parameters()) for name in TINY}
    assert 1.6e6 < sizes["hifipp"] < 1.8e6  # HiFi++'s published 1.71 M


@pytest.mark.parametrize("name", ["unet1d", "dac", "spectral"])
def test_residual_backbones_start_close_to_passing_the_input_through(name):
    model = build_generator(name).eval()
    x = 0.1 * torch.randn(1, 1, 4 * model.alignment)
    with torch.no_grad():
        correction = model(x) - x
    assert correction.std() < 0.3 * x.std()


def test_no_conv_bias_right_before_a_norm():
    from gan_enhance.nn.convnext import ConvNeXtBlock1d

    blocks = [m for name in TINY for m in tiny(name).modules() if isinstance(m, ConvNeXtBlock1d)]
    assert blocks and all(block.depthwise.bias is None for block in blocks)


@pytest.mark.parametrize("name", sorted(TINY))
def test_sample_rates_must_have_an_integer_ratio(name):
    with pytest.raises(ConfigError, match="integer multiple"):
        build_generator(name, in_sample_rate=16000, out_sample_rate=44100)


def test_unknown_setting_is_named_and_build_config_is_recorded():
    with pytest.raises(TypeError, match="'chanels'"):
        build_generator("unet1d", chanels=[8])
    model = tiny("unet1d")
    assert model.build_config["name"] == "unet1d"
    assert model.build_config["kwargs"]["channels"] == [8, 16]
    rebuilt = build_generator(model.build_config["name"], **model.build_config["kwargs"])
    rebuilt.load_state_dict(model.state_dict())


def test_unet1d_checks_scale_vs_channels():
    with pytest.raises(ConfigError, match=r"channels\[1\] must be"):
        build_generator("unet1d", channels=[8, 24], blocks=[1, 1], factors=[4], scale_vs_channels=[2])
    build_generator("unet1d", channels=[8, 24], blocks=[1, 1], factors=[4], scale_vs_channels=[0])


def noisy_tones(length: int, sample_rate: int, ratio: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(noisy input at sample_rate, clean target at ratio * sample_rate): three tones in white noise."""
    t = torch.arange(length * ratio) / (sample_rate * ratio)
    clean = sum(a * torch.sin(2 * torch.pi * f * t) for f, a in [(220, 0.3), (440, 0.2), (1250, 0.1)])[
        None, None
    ]
    noise = 0.1 * torch.randn(1, 1, length, generator=torch.Generator().manual_seed(0))
    return clean[..., ::ratio] + noise, clean


# Adam learning rate and steps per backbone (a few CPU seconds each).
OVERFIT = {"unet1d": (3e-3, 150), "dac": (1e-2, 200), "spectral": (5e-3, 100), "hifipp": (5e-3, 100)}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(TINY))
def test_tiny_model_overfits_one_clip(name):
    model = tiny(name)
    x, y = noisy_tones(1024, 16000, model.ratio)
    learning_rate, steps = OVERFIT[name]
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    losses = []
    for _ in range(steps):
        loss = (model(x) - y).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] / 10


@pytest.mark.slow
def test_tiny_model_overfits_one_clip_at_three_times_the_rate():
    model = tiny("unet1d", (16000, 48000))
    x, y = noisy_tones(1024, 16000, model.ratio)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(150):
        loss = (model(x) - y).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] / 10


def test_the_spectral_gain_floor_bounds_how_far_a_bin_is_turned_down():
    torch.manual_seed(0)
    settings = dict(TINY["spectral"])
    generator = build_generator(
        "spectral", in_sample_rate=16000, out_sample_rate=16000, min_gain=0.1, **settings
    )
    with torch.no_grad():
        for name, parameter in generator.output.named_parameters():
            if "original1" not in name:  # weight norm's magnitude (0: a zero weight) and the bias
                parameter.zero_()
        generator.output.bias.fill_(-30.0)  # every gain logit far below 0: the gain sits at its floor
        x = 0.1 * torch.randn(1, 1, 16000)
        y = generator(x)
    # The rotation logits are -30 too: every bin turns by one fixed angle, which keeps its level.
    ratio = y[..., 2000:-2000].norm() / x[..., 2000:-2000].norm()
    assert ratio == pytest.approx(0.1, rel=0.05)
    with pytest.raises(ValueError, match="min_gain"):
        build_generator("spectral", min_gain=2.0, **settings)
