"""gan_enhance: train GAN audio-enhancement models and run them on files.

Importing the package is cheap (no torch, no numpy): the names in ``__all__`` load their module on first
use, and the inference path (``load_generator`` of an exported model, ``enhance``) never imports the
training code, transformers or matplotlib.

>>> import gan_enhance
>>> model = gan_enhance.load_generator("exports/denoise")  # or "runs/<name>"   # doctest: +SKIP
>>> enhanced, rate = model.enhance(waveform, sample_rate)  # tensor (C, T), numpy (T, C)  # doctest: +SKIP
"""

import importlib

from gan_enhance._compat import install_import_hook
from gan_enhance.version import __version__

# torchaudio's CUDA wheel fails to import on CPU torch; a user's own `import torchaudio` (or audiotools)
# after `import gan_enhance` gets the stand-in that makes it work. Installing the hook imports nothing.
install_import_hook()

# Public name -> the module defining it (imported on first use).
_EXPORTS = {
    "load_generator": "gan_enhance.bundle",
    "save_bundle": "gan_enhance.bundle",
    "Enhancer": "gan_enhance.enhance",
    "export_checkpoint": "gan_enhance.export",
    "build_generator": "gan_enhance.models.generators",
    "GanEnhanceError": "gan_enhance.errors",
    "ConfigError": "gan_enhance.errors",
    "AudioFileError": "gan_enhance.errors",
    "DataError": "gan_enhance.errors",
    "CheckpointError": "gan_enhance.errors",
    "OutOfSpaceError": "gan_enhance.errors",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'gan_enhance' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
