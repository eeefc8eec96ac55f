"""Generator backbones, chosen by name: ``hifipp``, ``unet1d``, ``dac``, ``spectral``.

Each is a :class:`Generator`; build one with ``build_generator(name, **settings)``, which records the
resolved settings on ``generator.build_config`` for checkpoints and exports.
"""

from __future__ import annotations

# Importing the backbone modules registers them.
from gan_enhance.models.generators import dac, hifipp, spectral, unet1d  # noqa: F401
from gan_enhance.models.generators.base import Generator
from gan_enhance.models.generators.registry import GENERATORS


def build_generator(name: str, **kwargs) -> Generator:
    """Construct the backbone ``name`` with ``kwargs``; unknown settings raise ``TypeError`` naming them."""
    return GENERATORS.build(name, **kwargs)


__all__ = ["GENERATORS", "Generator", "build_generator"]
