"""Discriminators: output shapes by hand formula, padding, input normalisation, building from config."""

from __future__ import annotations

import math

import pytest
import torch

from gan_enhance.errors import ConfigError
from gan_enhance.models.discriminators import (
    DISCRIMINATORS,
    CombinedDiscriminator,
    DiscriminatorOutput,
    MultiPeriodDiscriminator,
    build_discriminator,
)
from gan_enhance.models.discriminators.cqt import ConstantQTransform
from gan_enhance.nn.layers import count_parameters

# Small widths keep the tests fast; the layer structure (kernels, strides, padding) is the default one.
TINY = {
    "mpd": {"periods": [2, 3, 5], "channels": [4, 8, 16], "strides": [3, 3, 1]},
    "msstft": {"n_ffts": [512, 128], "filters": 4},
    "mbd": {"window_lengths": [512, 256], "channels": 4},
    "cqt": {"hop_lengths": [256], "bins_per_octaves": [12], "filters": 4},
    "msd": {"channels": [4, 8, 8], "kernel_sizes": [15, 41, 5], "strides": [1, 4, 1], "groups": [1, 4, 1]},
}
BATCH = 2


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def strided(length: int, strides: list[int]) -> int:
    """Length after 'same'-padded convs with these strides: each one gives ceil(length / stride)."""
    for stride in strides:
        length = ceil_div(length, stride)
    return length


def expected_shapes(name: str, s: dict, length: int, sample_rate: int) -> list[tuple[tuple, list[tuple]]]:
    """(logits shape, feature-map shapes) of each sub-discriminator, worked out by hand from settings ``s``."""
    out = []
    if name == "mpd":
        for p in s["periods"]:
            heights, h = [], ceil_div(length, p)
            for stride in s["strides"]:
                h = ceil_div(h, stride)
                heights.append(h)
            features = [(BATCH, c, hh, p) for c, hh in zip(s["channels"], heights)]
            out.append(((BATCH, 1, heights[-1], p), features))
    elif name == "msstft":
        depth = len(s["dilations"])
        for n_fft in s["n_ffts"]:
            frames, bins = length // (n_fft // 4) + 1, n_fft // 2 + 1
            widths = [strided(bins, [2] * i) for i in range(depth + 1)] + [strided(bins, [2] * depth)]
            features = [(BATCH, s["filters"], frames, w) for w in widths]
            out.append(((BATCH, 1, frames, widths[-1]), features))
    elif name == "mbd":
        for window in s["window_lengths"]:
            frames, bins = length // (window // 4) + 1, window // 2 + 1
            cuts = [int(e * bins) for e in s["band_edges"]]
            features, total = [], 0
            for lo, hi in zip(cuts[:-1], cuts[1:]):
                depth = s["layers"] - 2
                widths = [strided(hi - lo, [2] * i) for i in range(depth + 1)] + [
                    strided(hi - lo, [2] * depth)
                ]
                features += [(BATCH, s["channels"], frames, w) for w in widths]
                total += widths[-1]
            out.append(((BATCH, 1, frames, total), features))
    elif name == "cqt":
        for hop, bins in zip(s["hop_lengths"], s["bins_per_octaves"]):
            upsampled_rate = sample_rate * s["resample_factor"]
            octaves = s["n_octaves"]
            while s["fmin"] * 2 ** (octaves - 1 / bins) >= upsampled_rate / 2:  # top bin below Nyquist
                octaves -= 1
            frames, width = (length * s["resample_factor"]) // hop + 1, octaves * bins
            widths = [strided(width, [2] * i) for i in range(4)] + [strided(width, [2] * 3)]
            features = [(BATCH, s["filters"], frames, w) for w in widths]
            out.append(((BATCH, 1, frames, widths[-1]), features))
    elif name == "msd":
        for scale in range(s["scales"]):
            t = length
            for _ in range(scale):
                t = t // 2 + 1  # AvgPool1d(4, 2, padding=2)
            lengths = []
            for stride in s["strides"]:
                t = ceil_div(t, stride)
                lengths.append(t)
            features = [(BATCH, c, n) for c, n in zip(s["channels"], lengths)]
            out.append(((BATCH, 1, lengths[-1]), features))
    return out


def check_shapes(name: str, settings: dict, sample_rate: int) -> None:
    length = sample_rate // 8 + 1  # odd, and not a multiple of any period, hop or stride
    torch.manual_seed(0)
    discriminator = build_discriminator([name], {name: settings}, sample_rate, normalize_input=True)
    with torch.no_grad():
        outputs = discriminator(torch.randn(BATCH, 1, length))
    expected = expected_shapes(name, discriminator.build_config["settings"][name], length, sample_rate)
    assert len(outputs) == len(expected) == len(discriminator.names)
    for output, (logits_shape, feature_shapes) in zip(outputs, expected):
        assert isinstance(output, DiscriminatorOutput)
        assert tuple(output.logits.shape) == logits_shape
        assert [tuple(f.shape) for f in output.feature_maps] == feature_shapes
        assert torch.isfinite(output.logits).all()


@pytest.mark.parametrize("sample_rate", [16000, 48000])
@pytest.mark.parametrize("name", sorted(TINY))
def test_shapes_of_logits_and_feature_maps_at_odd_lengths(name, sample_rate):
    check_shapes(name, TINY[name], sample_rate)


@pytest.mark.parametrize("sample_rate", [16000, 48000])
@pytest.mark.parametrize("name", sorted(TINY))
def test_shapes_with_default_settings(name, sample_rate):
    check_shapes(name, {}, sample_rate)


@pytest.mark.parametrize("sample_rate", [24000, 44100])
def test_combined_discriminator_runs_at_other_rates(sample_rate):
    names = sorted(TINY)
    discriminator = build_discriminator(names, TINY, sample_rate, normalize_input=True)
    x = torch.randn(BATCH, 1, sample_rate // 10 + 3, requires_grad=True)
    outputs = discriminator(x)
    assert (
        len(outputs) == len(discriminator.names) == sum(len(f.discriminators) for f in discriminator.families)
    )
    sum(o.logits.mean() for o in outputs).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_mpd_padding_follows_kernel_size():
    # With padding hard-coded for kernel 5 (the HiFi-GAN/BigVGAN bug), kernel 7 would shorten each layer.
    mpd = MultiPeriodDiscriminator(periods=[3], channels=[2, 2], strides=[3, 1], kernel_size=7)
    output = mpd(torch.randn(1, 1, 301))[0]
    assert [f.shape[2] for f in output.feature_maps] == [34, 34]  # ceil(ceil(301 / 3) / 3) = 34
    assert output.feature_maps[0].shape[3] == 3


def test_default_parameter_counts_follow_the_architecture():
    def conv(c_in: int, c_out: int, k: int) -> int:  # weight-normed conv: v, g and bias
        return c_in * c_out * k + 2 * c_out

    channels = [1, 32, 128, 512, 1024, 1024]
    per_period = sum(conv(a, b, 5) for a, b in zip(channels[:-1], channels[1:])) + conv(1024, 1, 3)
    assert count_parameters(MultiPeriodDiscriminator()) == 5 * per_period
    assert 41_000_000 < 5 * per_period < 41_200_000  # HiFi-GAN's MPD: 41.1 M


def test_normalized_input_ignores_level_and_dc_offset():
    torch.manual_seed(0)
    names = ["mpd", "mbd"]
    x = 0.1 * torch.randn(BATCH, 1, 4001)
    louder = 3.0 * x + 0.05
    normalized = build_discriminator(names, {n: TINY[n] for n in names}, 16000, normalize_input=True)
    for a, b in zip(normalized(x), normalized(louder)):
        torch.testing.assert_close(a.logits, b.logits, rtol=1e-4, atol=1e-5)
    raw = CombinedDiscriminator(list(normalized.families), normalize_input=False)
    assert not torch.allclose(raw(x)[0].logits, raw(louder)[0].logits, atol=1e-4)


def test_build_config_rebuilds_the_same_discriminator():
    names = ["mpd", "msstft"]
    first = build_discriminator(names, {n: TINY[n] for n in names}, 16000, normalize_input=True)
    config = first.build_config
    assert config["settings"]["mpd"]["periods"] == [2, 3, 5]
    assert config["settings"]["msstft"]["hop_fraction"] == 0.25  # defaults are resolved too
    second = build_discriminator(**config)
    second.load_state_dict(first.state_dict(), strict=True)
    x = torch.randn(1, 1, 3001)
    for a, b in zip(first(x), second(x)):
        torch.testing.assert_close(a.logits, b.logits)
    assert first.names == ["mpd/p2", "mpd/p3", "mpd/p5", "msstft/n512", "msstft/n128"]


@pytest.mark.parametrize(
    ("names", "settings", "message"),
    [
        (["nope"], None, "unknown discriminator 'nope'"),
        (["mpd"], {"mpd": {"period": [2]}}, "'period'"),
        (["mpd"], {"mbd": {}}, "not in names"),
        (["mpd", "mpd"], None, "repeat"),
        ([], None, "at least one"),
    ],
)
def test_bad_configuration_is_a_config_error(names, settings, message):
    with pytest.raises(ConfigError, match=message):
        build_discriminator(names, settings, 16000, normalize_input=False)


def test_input_must_be_batch_channel_time():
    discriminator = build_discriminator(["mpd"], {"mpd": TINY["mpd"]}, 16000, normalize_input=False)
    with pytest.raises(ValueError, match=r"\(B, 1, T\)"):
        discriminator(torch.randn(2, 4000))


def test_band_edges_cover_every_frequency_bin_once():
    mbd = DISCRIMINATORS.build("mbd", **TINY["mbd"])
    for sub in mbd.discriminators:
        bands = sub.body.band_bins
        assert bands[0][0] == 0 and bands[-1][1] == sub.front_end.n_bins
        assert all(a[1] == b[0] for a, b in zip(bands[:-1], bands[1:]))
        assert math.prod(hi - lo for lo, hi in bands) > 0


@pytest.mark.parametrize("bin_index", [3, 40, 100])
def test_cqt_of_a_sine_peaks_in_its_bin_in_every_octave(bin_index):
    sample_rate, bins_per_octave, fmin = 32000, 24, 32.7
    transform = ConstantQTransform(sample_rate, 256, 8, bins_per_octave, fmin, lowpass_taps=127)
    frequency = fmin * 2 ** (bin_index / bins_per_octave)
    x = torch.sin(2 * math.pi * frequency * torch.arange(sample_rate) / sample_rate).reshape(1, 1, -1)
    spec = transform(x)  # (1, 2, frames, 8 * 24)
    magnitude = spec.square().sum(1).sqrt()[0, 20:-20].mean(0)  # away from the zero-padded edges
    assert magnitude.argmax().item() == bin_index
    assert magnitude.max().item() == pytest.approx(0.5, abs=0.03)  # unit-L1 kernels: half the amplitude


def test_cqt_settings_that_cannot_work_are_config_errors():
    with pytest.raises(ConfigError, match="divisible"):
        ConstantQTransform(32000, 100, 8, 24, 32.7, lowpass_taps=127)
    with pytest.raises(ConfigError, match="Nyquist"):
        ConstantQTransform(32000, 256, 9, 24, 32.7, lowpass_taps=127)
    with pytest.raises(ConfigError, match="sample rate"):
        DISCRIMINATORS.build("cqt")
