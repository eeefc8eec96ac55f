"""gan_enhance: train GAN audio-enhancement models and run them on files.

Importing the package is cheap: heavy submodules load on first use.
"""

from gan_enhance.version import __version__

__all__ = ["__version__"]
