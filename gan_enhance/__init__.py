"""gan_enhance: train GAN audio-enhancement models and run them on files.

Importing the package is cheap: heavy submodules load on first use.

>>> import gan_enhance
>>> model = gan_enhance.load_generator("exports/denoise")   # doctest: +SKIP
>>> enhanced, rate = model.enhance(waveform, sample_rate)      # doctest: +SKIP
"""

from gan_enhance._compat import install_import_hook
from gan_enhance.version import __version__

# torchaudio's CUDA wheel fails to import on CPU torch; a user's own `import torchaudio` (or audiotools)
# after `import gan_enhance` gets the stand-in that makes it work. Installing the hook imports nothing.
install_import_hook()

__all__ = ["__version__", "load_generator"]


def __getattr__(name: str):
    # Lazy so that `import gan_enhance` does not import torch; only the inference path is loaded.
    if name == "load_generator":
        from gan_enhance.bundle import load_generator

        return load_generator
    raise AttributeError(f"module 'gan_enhance' has no attribute {name!r}")
