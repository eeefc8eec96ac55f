"""Model inspection: MAC counting against hand computations, receptive field, the command line."""

from __future__ import annotations

import json

import pytest
import torch
from test_generators import TINY, tiny
from torch import nn

from gan_enhance.cli import inspect as inspect_cli
from gan_enhance.errors import ConfigError
from gan_enhance.models.generators import Generator
from gan_enhance.models.inspect import count_macs, inspect_model


class TwoConvs(Generator):
    """Conv(1 -> 4, k 5) then conv(4 -> 1, k 3): receptive field 2 + 1 samples each side."""

    def __init__(self):
        super().__init__(16000, 16000)
        self.first = nn.Conv1d(1, 4, 5, padding=2)
        self.second = nn.Conv1d(4, 1, 3, padding=1)

    def receptive_radius(self) -> int:
        return 3

    def generate(self, x):
        return self.second(torch.tanh(self.first(x)))


def test_macs_parameters_and_receptive_field_of_a_hand_computed_model():
    report = inspect_model(TwoConvs(), input_length=1000)
    # Per output sample: 4 channels * 5 taps, then 4 channels * 3 taps.
    assert report.macs == 1000 * (4 * 5 + 4 * 3)
    assert report.macs_per_second == 16000 * (4 * 5 + 4 * 3)
    blocks = {block.name: block for block in report.blocks}
    assert blocks["first"].parameters == 4 * 5 + 4 and blocks["first"].macs == 1000 * 20
    assert blocks["second"].output_shape == [1, 1, 1000]
    assert report.total_parameters == 24 + 13
    assert (report.receptive_field_left, report.receptive_field_right, report.receptive_field) == (3, 3, 7)
    assert report.receptive_field_ms == pytest.approx(1000 * 7 / 16000)
    assert "7 samples" in report.format()


def test_count_macs_of_transposed_grouped_and_linear_layers():
    transposed = nn.ConvTranspose1d(2, 3, 4, stride=2)
    x = torch.randn(1, 2, 10)
    # Every input value meets out_channels * kernel weights.
    assert count_macs(transposed, (x,), transposed(x)) == 2 * 10 * 3 * 4
    grouped = nn.Conv1d(4, 8, 3, groups=2, padding=1)
    x = torch.randn(1, 4, 10)
    assert count_macs(grouped, (x,), grouped(x)) == 8 * 10 * 2 * 3
    linear = nn.Linear(5, 7)
    x = torch.randn(2, 5)
    assert count_macs(linear, (x,), linear(x)) == 2 * 7 * 5
    conv2d = nn.Conv2d(2, 3, (3, 5), padding=(1, 2))
    x = torch.randn(1, 2, 4, 6)
    assert count_macs(conv2d, (x,), conv2d(x)) == 3 * 4 * 6 * 2 * 15


@pytest.mark.parametrize("name", sorted(TINY))
def test_backbone_report_is_consistent(name):
    model = tiny(name, (16000, 48000))
    report = inspect_model(model, input_length=3000, depth=1)
    assert report.output_shape == [1, 1, 9000]
    assert report.trainable_parameters == sum(p.numel() for p in model.parameters())
    # Depth 1 lists the direct children, which hold every parameter and every counted MAC.
    assert sum(block.parameters for block in report.blocks) == report.trainable_parameters
    assert sum(block.macs for block in report.blocks) == report.macs > 0
    assert report.receptive_field_left <= model.context and report.receptive_field_right <= model.context
    assert model.training  # inspection leaves the mode as it was


def run_cli(capsys, *argv: str) -> dict:
    assert inspect_cli.main([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_command_line_builds_from_name_and_settings(capsys):
    report = run_cli(
        capsys,
        *("--generator", "spectral", "--in-sr", "16000", "--out-sr", "48000", "--length", "800"),
        *("--set", "n_fft=64", "--set", "hop=16", "--set", "channels=8", "--set", "blocks=1"),
    )
    assert report["generator"] == "spectral"
    assert report["output_shape"] == [1, 1, 2400]
    assert report["alignment"] == 16
    assert report["receptive_field"] > 0


def test_command_line_reads_a_training_config(capsys, tmp_path):
    config = tmp_path / "stage.yml"
    config.write_text(
        "generator: unet1d\nin_sample_rate: 16000\nout_sample_rate: 48000\n"
        "ConvNeXtUNet.channels: [8, 16]\nConvNeXtUNet.blocks: [1, 1]\nConvNeXtUNet.factors: [2]\n"
        "ConvNeXtUNet.scale_vs_channels: [1]\nConvNeXtUNet.patching: 2\nOther.key: 1\n"
    )
    report = run_cli(capsys, "--config", str(config), "--length", "400")
    assert report["out_sample_rate"] == 48000
    assert report["alignment"] == 4
    assert report["blocks"][0]["output_shape"] == [1, 8, 200]


def test_command_line_errors_name_the_setting():
    with pytest.raises(ConfigError, match="'chanels'"):
        inspect_cli.main(["--generator", "unet1d", "--set", "chanels=[8]"])
    with pytest.raises(ConfigError, match="key=value"):
        inspect_cli.main(["--generator", "unet1d", "--set", "channels"])
    with pytest.raises(ConfigError, match="unknown generator"):
        inspect_cli.main(["--generator", "nope"])


def test_command_line_inspects_an_exported_model(capsys, tmp_path):
    bundle = pytest.importorskip("gan_enhance.bundle")
    model = tiny("dac")
    bundle.save_bundle(model, tmp_path / "model")
    report = run_cli(capsys, "--model", str(tmp_path / "model"), "--length", "500")
    assert report["generator"] == "dac"
    assert report["context"] == model.context
    # Weight norm is folded on export: one weight per conv instead of a magnitude and a direction.
    assert report["trainable_parameters"] < sum(p.numel() for p in model.parameters())
