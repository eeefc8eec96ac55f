"""The band-limited (sinc) upsampler of the generators' residual paths: images, flatness, alignment, state."""

from __future__ import annotations

import math

import pytest
import torch
from test_generators import tiny

from gan_enhance.audio import resample
from gan_enhance.nn.sampling import SincUpsample1d, sinc_phases

RATE = 16000


def tones(frequencies: list[float], length: int, rate: float, phase: float = 0.3) -> torch.Tensor:
    """Unit cosines at ``frequencies`` (Hz) sampled at ``rate``: (len(frequencies), 1, length), float64."""
    t = torch.arange(length, dtype=torch.float64) / rate
    f = torch.tensor(frequencies, dtype=torch.float64)[:, None, None]
    return torch.cos(2 * math.pi * f * t + phase)


def spectrum_db(y: torch.Tensor) -> torch.Tensor:
    """Power spectrum (dB) of (..., N) through a Kaiser window with sidelobes far below 100 dB."""
    window = torch.kaiser_window(y.shape[-1], periodic=False, beta=20.0, dtype=torch.float64)
    return 20 * torch.log10(torch.fft.rfft(y * window).abs() + 1e-300)


@pytest.mark.parametrize("factor", [2, 3])
def test_images_of_tones_up_to_045_of_the_input_rate_are_70_db_down(factor):
    """A sweep of tones over (0, 0.45 fs_in]: at every image frequency k fs_in +- f below the output's
    Nyquist, the output's spectrum is >= 70 dB below the tone (linear interpolation: 3 dB near 0.45 fs_in)."""
    up = SincUpsample1d(factor).double()
    frequencies = torch.linspace(100, 0.45 * RATE, 16).tolist()
    length, margin = 4096, 2 * up.half_width
    with torch.no_grad():
        y = up(tones(frequencies, length, RATE))[:, 0, factor * margin : -factor * margin]
    level = spectrum_db(y)
    hz_per_bin = factor * RATE / y.shape[-1]
    worst = math.inf
    for row, f in enumerate(frequencies):
        tone = level[row, round(f / hz_per_bin) - 8 : round(f / hz_per_bin) + 9].max()
        images = [k * RATE + s * f for k in range(1, factor + 1) for s in (-1, 1)]
        for image in images:
            if image < factor * RATE / 2:
                centre = round(image / hz_per_bin)
                worst = min(worst, float(tone - level[row, centre - 8 : centre + 9].max()))
    assert worst >= 70, f"images only {worst:.1f} dB down"


def test_a_chirp_leaves_no_energy_above_the_input_band():
    """A 0 -> 0.45 fs_in chirp: output energy above fs_in / 2 is >= 70 dB below the total."""
    up = SincUpsample1d(3).double()
    length, fade = 3 * RATE, RATE // 10
    t = torch.arange(length, dtype=torch.float64) / RATE
    chirp = torch.cos(math.pi * 0.45 * RATE / t[-1] * t**2)  # instantaneous frequency 0.45 fs_in t / T
    ramp = torch.hann_window(2 * fade, periodic=False, dtype=torch.float64)  # 0.1 s fades, not a click
    chirp[:fade] *= ramp[:fade]
    chirp[-fade:] *= ramp[fade:]
    with torch.no_grad():
        y = up(chirp[None, None])[0, 0]
    power = torch.fft.rfft(y).abs() ** 2
    above = power[round(len(power) / 3) :].sum()  # bins above fs_in / 2 of the output's 0..1.5 fs_in
    assert 10 * torch.log10(above / power.sum()) <= -70


def test_passband_is_flat_and_the_output_lands_on_the_input_times():
    """Tones up to 0.45 fs_in come out as the same tones sampled at 3 fs_in: gain within 0.01 dB, and
    output sample 3n + j equals the tone at input time n + j / 3 (zero delay, every phase)."""
    up = SincUpsample1d(3).double()
    frequencies = torch.linspace(50, 0.45 * RATE, 12).tolist()
    length, margin = 2048, 3 * 2 * up.half_width
    with torch.no_grad():
        y = up(tones(frequencies, length, RATE))[:, 0, margin:-margin]
    expected = tones(frequencies, 3 * length, 3 * RATE)[:, 0, margin:-margin]
    # Gain: least-squares amplitude of the output along the expected tone and its quadrature.
    quadrature = tones(frequencies, 3 * length, 3 * RATE, phase=0.3 + math.pi / 2)[:, 0, margin:-margin]
    a = (y * expected).sum(-1) / (expected * expected).sum(-1)
    b = (y * quadrature).sum(-1) / (quadrature * quadrature).sum(-1)
    gain_db = 20 * torch.log10(torch.sqrt(a**2 + b**2))
    assert gain_db.abs().max() < 0.01
    assert (y - expected).abs().max() < 1e-3  # one output sample late would be 0.9 off at 7.2 kHz


def test_every_third_sample_is_the_input_and_the_rest_is_its_band_limited_interpolation():
    torch.manual_seed(0)
    up = SincUpsample1d(3)
    x = torch.randn(2, 3, 500)
    with torch.no_grad():
        y = up(x)
    assert y.shape == (2, 3, 1500)
    assert torch.equal(y[..., ::3], x)  # exactly, for any signal
    # A band-limited signal at 48 kHz, decimated to 16 kHz, comes back: all phases in place.
    high = (
        tones([440.0, 2500.0, 6100.0], 3 * 4000, 3 * RATE) * torch.tensor([0.5, 0.3, 0.2])[:, None, None]
    ).sum(0)
    with torch.no_grad():
        back = up(high[None, :, ::3].float())[0, 0].double()
    middle = slice(300, -300)
    assert (back - high[0])[middle].abs().max() < 1e-3


def test_inverts_the_data_pipelines_downsampling_without_a_shift():
    """Training pairs are made with ``audio.resample`` (48 -> 16 kHz); upsampling its output gives back the
    band-limited 48 kHz signal sample for sample (linear interpolation put it one output sample late)."""
    high = tones([300.0, 1700.0, 5300.0], 3 * 6000, 3 * RATE).sum(0)[0].float() / 3
    low = resample(high, 3 * RATE, RATE)
    with torch.no_grad():
        back = SincUpsample1d(3)(low[None, None])[0, 0]
    middle = slice(600, -600)
    assert (back - high)[middle].abs().max() < 2e-3
    assert (back[1:] - high[:-1])[middle].abs().max() > 0.1


def test_is_shift_equivariant_so_chunks_match_the_whole():
    up = SincUpsample1d(3)
    x = torch.randn(1, 1, 400)
    k = up.half_width
    with torch.no_grad():
        whole, piece = up(x), up(x[..., 100 - k : 250 + k])
    assert torch.equal(piece[..., 3 * k : -3 * k], whole[..., 300:750])


def test_taps_are_a_windowed_sinc_and_factor_one_is_the_identity():
    phases = sinc_phases(3, 4, 5.0)[:, 0]
    assert phases.shape == (3, 9)
    assert torch.allclose(phases.sum(1), torch.ones(3, dtype=torch.float64))
    # Phase 1 (output offset +1/3 of an input sample): tap i weights input n - 4 + i, distance i - 4 - 1/3.
    distance = torch.arange(9, dtype=torch.float64) - 4 - 1 / 3
    window = torch.special.i0(5.0 * torch.sqrt((1 - (distance / 4) ** 2).clamp_min(0))) / torch.special.i0(
        torch.tensor(5.0, dtype=torch.float64)
    )
    expected = torch.sinc(distance) * window * (distance.abs() <= 4)
    assert torch.allclose(phases[1], expected / expected.sum(), atol=1e-12)
    # +2/3 mirrors +1/3 about the centre; tap 0 is past the filter's end for both.
    assert torch.allclose(phases[2, 1:], phases[1, 1:].flip(0)) and phases[1:, 0].abs().max() == 0
    x = torch.randn(1, 1, 10)
    assert SincUpsample1d(1)(x) is x and SincUpsample1d(1).radius == 0


@pytest.mark.parametrize("name", ["hifipp", "dac", "unet1d"])
def test_upsampler_adds_no_state_so_existing_checkpoints_load_strictly(name):
    model = tiny(name, (16000, 48000))
    assert isinstance(model.upsample_input, SincUpsample1d)
    assert model.upsample_input.state_dict() == {}
    assert not any("upsample_input" in key for key in model.state_dict())
    fresh = tiny(name, (16000, 48000))
    fresh.load_state_dict(model.state_dict(), strict=True)
    # The buffer follows the model's dtype and device like its weights.
    assert model.double().upsample_input.kernel.dtype == torch.float64


def test_a_residual_generator_starts_from_the_band_limited_input():
    """unet1d with a zero output conv is exactly its residual path: the sinc-upsampled input."""
    model = tiny("unet1d", (16000, 48000), output_scale=0.0).eval()
    x = torch.randn(1, 1, 1000)
    with torch.no_grad():
        assert torch.allclose(model(x), SincUpsample1d(3)(x), atol=1e-6)
