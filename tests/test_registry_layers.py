"""The registry records build settings and rejects unknown ones; shared layer helpers."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gan_enhance.nn.layers import WNConv1d, has_weight_norm, init_conv_weights, remove_weight_norm
from gan_enhance.registry import Registry


def make_registry() -> Registry:
    registry = Registry("widget")

    @registry.register("box")
    class Box:
        def __init__(self, width: int = 3, labels: list[str] | None = None):
            self.width = width

    return registry


def test_build_records_all_resolved_arguments():
    box = make_registry().build("box", width=5)
    assert box.width == 5
    assert box.build_config == {"name": "box", "kwargs": {"width": 5, "labels": None}}


def test_unknown_name_and_unknown_setting_are_named():
    registry = make_registry()
    with pytest.raises(KeyError, match="unknown widget 'bag'; known: box"):
        registry.build("bag")
    with pytest.raises(TypeError, match="widget 'box' has no setting 'height'"):
        registry.build("box", height=2)


def test_double_registration_is_an_error():
    registry = make_registry()
    with pytest.raises(ValueError, match="registered twice"):
        registry.register("box")(object)


def test_remove_weight_norm_keeps_output():
    torch.manual_seed(0)
    net = nn.Sequential(WNConv1d(1, 4, 5, padding=2), nn.LeakyReLU(0.1), WNConv1d(4, 1, 3, padding=1))
    x = torch.randn(2, 1, 100)
    before = net(x)
    assert has_weight_norm(net)
    remove_weight_norm(net)
    assert not has_weight_norm(net)
    torch.testing.assert_close(net(x), before, atol=1e-6, rtol=0)


def test_init_conv_weights_sets_the_effective_weight_of_weight_normed_layers():
    torch.manual_seed(0)
    conv = WNConv1d(8, 256, 7)
    init_conv_weights(conv, std=0.01)
    assert conv.weight.std().item() == pytest.approx(0.01, rel=0.05)
    assert torch.all(conv.bias == 0)
