"""Discriminators: families registered by name in ``DISCRIMINATORS`` and the combined discriminator.

Every sub-discriminator returns a :class:`DiscriminatorOutput` ``(logits, feature_maps)``; a family returns
a list of them and :class:`CombinedDiscriminator` concatenates the lists of its families.
"""

from gan_enhance.models.discriminators import cqt, mbd, mpd, msd, msstft  # noqa: F401  (register the families)
from gan_enhance.models.discriminators.base import (
    DISCRIMINATORS,
    ConvStack,
    DiscriminatorFamily,
    DiscriminatorOutput,
    STFTFrontEnd,
    SubDiscriminator,
)
from gan_enhance.models.discriminators.combined import CombinedDiscriminator, build_discriminator
from gan_enhance.models.discriminators.cqt import MultiScaleSubbandCQTDiscriminator
from gan_enhance.models.discriminators.mbd import MultiBandDiscriminator
from gan_enhance.models.discriminators.mpd import MultiPeriodDiscriminator
from gan_enhance.models.discriminators.msd import MultiScaleDiscriminator
from gan_enhance.models.discriminators.msstft import MultiScaleSTFTDiscriminator

__all__ = [
    "DISCRIMINATORS",
    "CombinedDiscriminator",
    "ConvStack",
    "DiscriminatorFamily",
    "DiscriminatorOutput",
    "MultiBandDiscriminator",
    "MultiPeriodDiscriminator",
    "MultiScaleDiscriminator",
    "MultiScaleSTFTDiscriminator",
    "MultiScaleSubbandCQTDiscriminator",
    "STFTFrontEnd",
    "SubDiscriminator",
    "build_discriminator",
]
