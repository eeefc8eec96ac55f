"""The discriminator the trainer uses: several families built by name, run on one (optionally
normalised) input, their sub-discriminator outputs concatenated into one list."""

from __future__ import annotations

import inspect
from typing import Any

import torch
from torch import nn

from gan_enhance.errors import ConfigError
from gan_enhance.models.discriminators.base import DISCRIMINATORS, DiscriminatorFamily, DiscriminatorOutput


class CombinedDiscriminator(nn.Module):
    """Families of sub-discriminators behind one ``forward``.

    Parameters
    ----------
    families : list[DiscriminatorFamily]
        Built families (see :func:`build_discriminator`).
    normalize_input : bool
        Remove the DC offset and scale each example to a peak of ``input_peak`` before judging it (DAC):
        the adversary then cannot tell real from fake by level alone, which leaves loudness to the
        reconstruction losses.
    input_peak : float
        Target peak of the normalised input.
    eps : float
        Added to the peak so silence stays finite.
    """

    def __init__(
        self,
        families: list[DiscriminatorFamily],
        normalize_input: bool = False,
        input_peak: float = 0.8,
        eps: float = 1e-9,
    ):
        super().__init__()
        if not families:
            raise ConfigError("the discriminator needs at least one family (e.g. names: [mpd, mbd])")
        self.families = nn.ModuleList(families)
        self.normalize_input = normalize_input
        self.input_peak = input_peak
        self.eps = eps

    @property
    def names(self) -> list[str]:
        """Labels of the sub-discriminators, in the order ``forward`` returns them."""
        return [name for family in self.families for name in family.names]

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 1, T) -> (B, 1, T)``: zero mean, peak ``input_peak`` per example."""
        x = x - x.mean(dim=-1, keepdim=True)
        peak = x.abs().amax(dim=-1, keepdim=True)
        return self.input_peak * x / (peak + self.eps)

    def forward(self, x: torch.Tensor) -> list[DiscriminatorOutput]:
        """``(B, 1, T) -> [DiscriminatorOutput, ...]``, one per sub-discriminator (see :attr:`names`)."""
        if x.dim() != 3 or x.shape[1] != 1:
            raise ValueError(f"discriminator input must be (B, 1, T), got {tuple(x.shape)}")
        if self.normalize_input:
            x = self.normalize(x)
        return [output for family in self.families for output in family(x)]


def build_discriminator(
    names: list[str],
    settings: dict[str, dict[str, Any]] | None = None,
    sample_rate: int = 0,
    normalize_input: bool = False,
    input_peak: float = 0.8,
) -> CombinedDiscriminator:
    """Build a :class:`CombinedDiscriminator` from family names and their settings.

    Parameters
    ----------
    names : list[str]
        Families in order, e.g. ``["mpd", "msstft", "mbd"]`` (see ``DISCRIMINATORS.names()``).
    settings : dict, optional
        ``{name: {argument: value}}``; missing names use the family's defaults. Settings for a family
        not in ``names`` or an argument the family lacks are a :class:`ConfigError`.
    sample_rate : int
        Audio rate; passed to the families whose constructor takes ``sample_rate``.
    normalize_input : bool
        Remove the DC offset and peak-normalise what the discriminators see (DAC).
    input_peak : float
        Peak of the normalised input.

    Returns
    -------
    CombinedDiscriminator
        With ``build_config = {"names", "settings" (every argument resolved), "sample_rate",
        "normalize_input", "input_peak"}``, plain data that rebuilds it.
    """
    settings = dict(settings or {})
    unused = sorted(set(settings) - set(names))
    if unused:
        raise ConfigError(f"discriminator settings given for {unused}, which are not in names {list(names)}")
    if len(set(names)) != len(names):
        raise ConfigError(f"discriminator names repeat a family: {list(names)}")
    families, resolved = [], {}
    for name in names:
        if name not in DISCRIMINATORS:
            raise ConfigError(f"unknown discriminator {name!r}; known: {', '.join(DISCRIMINATORS.names())}")
        kwargs = dict(settings.get(name) or {})
        if "sample_rate" in inspect.signature(DISCRIMINATORS.get(name)).parameters:
            kwargs.setdefault("sample_rate", sample_rate)
        try:
            family = DISCRIMINATORS.build(name, **kwargs)
        except TypeError as error:
            raise ConfigError(f"discriminator settings for {name!r}: {error}") from None
        families.append(family)
        resolved[name] = family.build_config["kwargs"]
    combined = CombinedDiscriminator(families, normalize_input, input_peak)
    combined.build_config = {
        "names": list(names),
        "settings": resolved,
        "sample_rate": sample_rate,
        "normalize_input": normalize_input,
        "input_peak": input_peak,
    }
    return combined
