"""The one place that patches third-party gaps.

Call :func:`patch` before importing torchaudio or audiotools. Each patch checks that the library really
lacks the thing and does nothing where it is present, so on a machine with a working native torchaudio
(a CUDA build next to a matching CUDA torch) and an older torchaudio with ``info``/``sox_effects``, the
libraries run untouched.

What is patched, and why:

- ``torchaudio`` native extension: the torchaudio 2.11 wheel is a CUDA build, and on a CPU-only torch its
  ``_torchaudio`` library fails to load (``libc10_cuda.so``), which makes ``import torchaudio`` raise.
  Its pure-Python paths (resample, mel filterbanks, lfilter, fftconvolve, ...) work without it, so when
  (and only when) the native load fails we register a stand-in ``torchaudio._extension`` that reports the
  extension as absent, and import again.
- ``audiotools.core.util.info`` calls ``torchaudio.info``/``torchaudio.backend``, both gone since 2.9;
  this breaks ``AudioSignal`` excerpts and audiotools' loaders. soundfile gives the same facts.
- ``audiotools.core.loudness.Meter.apply_filter_cpu`` runs the K-weighting IIR through torchaudio's
  ``lfilter``, which without the native extension is a per-sample Python loop (seconds per call);
  ``scipy.signal.lfilter`` gives the same values in milliseconds. Loudness is a measurement, not a
  training loss, so no gradient is needed (the pure-Python lfilter's backward fails anyway).
- ``AudioSignal.apply_codec`` needs ``torchaudio.functional.apply_codec`` (gone since 2.9): replaced by the
  in-memory encode/decode of :mod:`gan_enhance.codecs` (MP3, Ogg/Vorbis, Opus, mu-law and A-law WAV).
- ``AudioSignal.pitch_shift``/``time_stretch`` need ``torchaudio.sox_effects`` (gone since 2.9): replaced
  by librosa's phase-vocoder effects, which audiotools already depends on.

Not a library gap but a default of torch's own: :func:`allow_retained_compiled_graphs`.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import types

_applied: list[str] = []
_patched = False


def patch() -> list[str]:
    """Apply every patch the installed libraries need; idempotent.

    Returns
    -------
    list[str]
        Names of the patches in effect (empty where the libraries need none).
    """
    global _patched
    if not _patched:
        _patched = True
        _patch_torchaudio_import()
        _patch_audiotools()
    return list(_applied)


# --------------------------------------------------------------------------------------------- torchaudio
def _native_extension_stand_in() -> types.ModuleType:
    """A ``torchaudio._extension`` that reports the native library as unavailable."""

    def fail_if_no_align(func):
        def unavailable(*args, **kwargs):
            raise RuntimeError(f"{func.__module__}.{func.__name__} needs torchaudio's native extension.")

        return unavailable

    module = types.ModuleType("torchaudio._extension")
    module.__doc__ = "Stand-in installed by gan_enhance._compat: torchaudio's native library did not load."
    module._IS_TORCHAUDIO_EXT_AVAILABLE = False
    module._IS_ALIGN_AVAILABLE = False
    module._load_lib = lambda lib: False
    module._check_cuda_version = lambda: None
    module.fail_if_no_align = fail_if_no_align
    return module


def _patch_torchaudio_import() -> None:
    if "torchaudio" in sys.modules:
        return
    try:
        importlib.import_module("torchaudio")
        return
    except OSError:
        # The native library exists but cannot load against this torch (CUDA wheel, CPU torch).
        pass
    for name in [n for n in sys.modules if n == "torchaudio" or n.startswith("torchaudio.")]:
        del sys.modules[name]
    sys.modules["torchaudio._extension"] = _native_extension_stand_in()
    importlib.import_module("torchaudio")
    _applied.append("torchaudio-native-extension")


class _TorchaudioImport(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Runs :func:`_patch_torchaudio_import` the first time anything imports torchaudio, so a user's
    ``import gan_enhance`` followed by ``import torchaudio`` (or ``import audiotools``) works on CPU torch
    without ``import gan_enhance`` importing torch itself."""

    def find_spec(self, name: str, path=None, target=None):
        if name != "torchaudio":
            return None
        if self in sys.meta_path:
            sys.meta_path.remove(self)
        _patch_torchaudio_import()  # imports torchaudio, with the stand-in if its native library fails
        return importlib.util.spec_from_loader(name, self)

    def create_module(self, spec):
        return sys.modules["torchaudio"]

    def exec_module(self, module) -> None:
        """Already executed by the import in :meth:`find_spec`."""


def install_import_hook() -> None:
    """Make the first ``import torchaudio`` of the process go through the stand-in logic (cheap: imports
    nothing); a no-op once torchaudio is imported."""
    if "torchaudio" not in sys.modules and not any(isinstance(f, _TorchaudioImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _TorchaudioImport())


def torchaudio_native_available() -> bool:
    """True when torchaudio's compiled extension loaded (fast lfilter, sox, ...)."""
    patch()
    return bool(sys.modules["torchaudio._extension"]._IS_TORCHAUDIO_EXT_AVAILABLE)


# --------------------------------------------------------------------------------------------- audiotools
def _patch_audiotools() -> None:
    try:
        from audiotools.core import util
    except ImportError:
        return
    import torchaudio
    from audiotools import AudioSignal
    from audiotools.core import loudness

    if not hasattr(torchaudio, "info"):
        util.info = _soundfile_info
        _applied.append("audiotools-info")
    if not torchaudio_native_available():
        loudness.Meter.apply_filter_cpu = _scipy_apply_filter_cpu
        _applied.append("audiotools-loudness-filter")
    if not hasattr(torchaudio.functional, "apply_codec"):
        AudioSignal.apply_codec = _apply_codec
        _applied.append("audiotools-apply-codec")
    if not hasattr(torchaudio, "sox_effects"):
        AudioSignal.pitch_shift = _pitch_shift
        AudioSignal.time_stretch = _time_stretch
        _applied.append("audiotools-sox-effects")


def _soundfile_info(audio_path):
    """``audiotools.core.util.info`` through soundfile: same ``Info(sample_rate, num_frames)``."""
    import soundfile
    from audiotools.core.util import Info

    info = soundfile.info(str(audio_path))
    return Info(sample_rate=info.samplerate, num_frames=info.frames)


def _scipy_apply_filter_cpu(self, data):
    """K-weighting IIR stages with ``scipy.signal.lfilter``; ``data`` is ``(nb, nt, nch)``."""
    import scipy.signal
    import torch

    array = data.detach().cpu().double().numpy()
    for filter_stage in self._filters.values():
        array = filter_stage.passband_gain * scipy.signal.lfilter(
            filter_stage.b, filter_stage.a, array, axis=1
        )
    return torch.from_numpy(array).to(device=data.device, dtype=data.dtype)


# gan_enhance.codecs name for each audiotools codec format (and mu-law/A-law WAV encodings).
CODEC_NAMES = {
    "mp3": "mp3",
    "vorbis": "vorbis",
    "ogg": "vorbis",
    "opus": "opus",
    "ULAW": "ulaw",
    "ALAW": "alaw",
}
# soundfile's compression level when audiotools passes none (or a sox-style value outside [0, 1]).
DEFAULT_COMPRESSION_LEVEL = 0.5


def _apply_codec(self, preset=None, format="wav", encoding=None, bits_per_sample=None, compression=None):
    """``AudioSignal.apply_codec`` through soundfile (same arguments as audiotools 0.7.2).

    ``compression`` in [0, 1] is soundfile's compression level; sox-style values outside that range
    (audiotools' presets use -9 and -1) mean the codec's default.
    """
    import torch

    settings = {"format": format, "encoding": encoding, "bits_per_sample": bits_per_sample}
    settings["compression"] = compression
    if preset is not None:
        if preset not in self.CODEC_PRESETS:
            raise ValueError(f"Unknown preset: {preset}. Known presets: {list(self.CODEC_PRESETS.keys())}")
        settings = {
            "encoding": None,
            "bits_per_sample": None,
            "compression": None,
            **self.CODEC_PRESETS[preset],
        }
    name = settings["format"]
    if name == "wav":
        if settings["encoding"] not in ("ULAW", "ALAW"):
            return self  # uncompressed PCM: the round trip changes nothing beyond bit depth
        name = settings["encoding"]
    if name not in CODEC_NAMES:
        raise ValueError(
            f"codec format {name!r} is not available through soundfile; use one of {sorted(CODEC_NAMES)}"
        )
    import numpy as np

    from gan_enhance.codecs import codec_round_trip

    level = settings["compression"]
    level = level if level is not None and 0.0 <= level <= 1.0 else DEFAULT_COMPRESSION_LEVEL
    rows = self._to_2d().detach().cpu().numpy()
    coded = np.stack([codec_round_trip(row, self.sample_rate, CODEC_NAMES[name], level) for row in rows])
    self.audio_data = self._to_3d(torch.from_numpy(coded)).to(self.device)
    return self


def _librosa_effect(self, effect) -> None:
    """Apply ``effect(y (T,)) -> (T',)`` to every channel of every item; lengths may change."""
    import numpy as np
    import torch

    waveform = self._to_2d().detach().cpu().numpy()
    outputs = [effect(row) for row in waveform]
    length = min(len(row) for row in outputs)
    stacked = np.stack([row[:length] for row in outputs]).astype(np.float32)
    self.audio_data = self._to_3d(torch.from_numpy(stacked)).to(self.device)


def _pitch_shift(self, n_semitones, quick=True):
    """``AudioSignal.pitch_shift`` with librosa (sample rate and length kept)."""
    import librosa

    rate = self.sample_rate
    _librosa_effect(self, lambda y: librosa.effects.pitch_shift(y, sr=rate, n_steps=float(n_semitones)))
    return self


def _time_stretch(self, factor, quick=True):
    """``AudioSignal.time_stretch`` with librosa (``factor`` > 1 is faster, as in sox's tempo)."""
    import librosa

    _librosa_effect(self, lambda y: librosa.effects.time_stretch(y, rate=float(factor)))
    return self


def allow_retained_compiled_graphs() -> None:
    """Let a backward through a ``torch.compile``-d module keep its graph (``retain_graph=True``).

    By default the compiled backward reuses ("donates") the buffers it saved, which makes any second
    backward through the same graph fail ("compiled with non-empty donated buffers"). The trainer does
    exactly that: each loss's gradient at the generator output (logged shares, the balancer) is taken
    before the update's own backward. Costs some memory; call before compiling.
    """
    import torch._functorch.config

    if hasattr(torch._functorch.config, "donated_buffer"):
        torch._functorch.config.donated_buffer = False
