"""No-reference quality models (UTMOS, your own) as plug-ins that read a LOCAL model file.

Nothing here downloads anything: each plug-in is given the path of a model file the user fetched
themselves, and says clearly what is missing when the file or its runtime is absent. DNSMOS is not a
plug-in: its models ship with the ``speechmos`` package, and its columns (``dnsmos_sig``, ``dnsmos_bak``,
``dnsmos_ovrl``, ``dnsmos_p808``) are ordinary metrics (:mod:`gan_enhance.evaluate.dnsmos`).

Plug-in interface
-----------------
A plug-in is a :class:`QualityModel` subclass registered under a name::

    from gan_enhance.evaluate.quality import QualityModel, register_quality_model

    @register_quality_model("mymos")
    class MyMOS(QualityModel):
        sample_rate = 16000                      # the rate ``predict`` expects
        outputs = {"mymos": "higher"}            # column -> which way is better

        def __init__(self, path: str):
            self.model = load_my_model(path)     # raise ConfigError with a clear message if absent

        def predict(self, wav):                  # wav: float32 ndarray (T,), mono, at sample_rate
            return {"mymos": float(self.model(wav))}

On the command line ``--quality mymos:/path/to/model --quality-module mypackage.mymos`` imports the
module (so its registration runs) and adds the ``mymos`` column. ``score`` (inherited) mixes to mono
and resamples before calling ``predict``.

Built-in plug-in
----------------
- ``utmos:PATH`` -- a UTMOS (or any MOS) predictor that maps a 16 kHz waveform batch ``(B, T)`` to
  scores ``(B,)`` or ``(B, 1)``, exported with ``torch.export`` (``.pt2``, loaded with
  ``torch.export.load``; export it with a dynamic time dimension), as TorchScript (``.pt``/``.ts``, what
  most released UTMOS exports are) or as ONNX (``.onnx``, needs ``onnxruntime``). Column ``utmos``.
"""

from __future__ import annotations

import importlib
import os
import warnings

import numpy as np
import torch

from gan_enhance.errors import ConfigError
from gan_enhance.evaluate.metrics import register_metric
from gan_enhance.registry import Registry

QUALITY_MODELS = Registry("quality model")


def register_quality_model(name: str):
    """Class decorator registering a :class:`QualityModel` under ``name`` (and its output columns)."""

    def add(cls):
        for column, better in cls.outputs.items():
            register_metric(column, better, "", f"{name} no-reference quality")
        return QUALITY_MODELS.register(name)(cls)

    return add


class QualityModel:
    """Base class of no-reference quality plug-ins (see the module docstring)."""

    sample_rate: int = 16000
    outputs: dict[str, str] = {}

    def predict(self, wav: np.ndarray) -> dict[str, float]:
        """Scores of one mono float32 waveform ``(T,)`` at ``self.sample_rate``."""
        raise NotImplementedError

    def score(self, wav: torch.Tensor, sample_rate: int) -> dict[str, float]:
        """Scores of ``wav (C, T)`` at any rate: mixed to mono and resampled first."""
        from gan_enhance.audio import resample

        mono = torch.as_tensor(wav).float().mean(dim=0)
        mono = resample(mono, sample_rate, self.sample_rate)
        return self.predict(mono.numpy().astype(np.float32))


def _require_file(path: str, what: str, where: str) -> str:
    if not path or not os.path.isfile(path):
        raise ConfigError(f"{what} model file '{path}' does not exist; {where}")
    return path


def _onnx_session(path: str, what: str):
    try:
        import onnxruntime
    except ImportError:
        raise ConfigError(f"{what} needs onnxruntime to run '{path}': pip install onnxruntime") from None
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    try:
        return onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime raises its own untyped errors for a bad file
        raise ConfigError(f"{what}: '{path}' is not a loadable ONNX model ({error})") from None


@register_quality_model("utmos")
class UTMOS(QualityModel):
    """A MOS predictor exported as TorchScript or ONNX: ``(B, T)`` 16 kHz waveforms -> ``(B,)`` MOS."""

    sample_rate = 16000
    outputs = {"utmos": "higher"}

    def __init__(self, path: str):
        where = (
            "export a UTMOS predictor (e.g. SpeechMOS's utmos22_strong) to TorchScript or ONNX yourself and "
            "pass utmos:/path/to/model.pt"
        )
        _require_file(path, "UTMOS", where)
        self.onnx = path.lower().endswith(".onnx")
        if self.onnx:
            self.session = _onnx_session(path, "UTMOS")
            self.input_name = self.session.get_inputs()[0].name
        elif path.lower().endswith(".pt2"):
            try:
                self.module = torch.export.load(path).module()
            except (RuntimeError, ValueError) as error:
                raise ConfigError(f"UTMOS: '{path}' is not a torch.export file ({error}); {where}") from None
        else:
            try:
                with warnings.catch_warnings():
                    # TorchScript is deprecated in torch 2.13 but is the format released UTMOS exports use.
                    warnings.simplefilter("ignore", DeprecationWarning)
                    self.module = torch.jit.load(path, map_location="cpu").eval()
            except RuntimeError as error:
                raise ConfigError(f"UTMOS: '{path}' is not a TorchScript file ({error}); {where}") from None

    def predict(self, wav: np.ndarray) -> dict[str, float]:
        if self.onnx:
            value = self.session.run(None, {self.input_name: wav[None].astype(np.float32)})[0]
        else:
            with torch.inference_mode():
                value = self.module(torch.from_numpy(wav)[None]).numpy()
        return {"utmos": float(np.asarray(value).reshape(-1)[0])}


def build_quality_model(spec: str, modules: list[str] = ()) -> QualityModel:
    """Build a plug-in from ``NAME:PATH[,option[=value]...]`` (e.g. ``utmos:/m/utmos.pt``).

    ``modules`` are imported first so that plug-ins they register are found.
    """
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as error:
            raise ConfigError(f"cannot import quality plug-in module '{module}' ({error})") from None
    name, _, rest = spec.partition(":")
    if name == "dnsmos":
        raise ConfigError(
            f"DNSMOS needs no model file now: drop '--quality {spec}'; its columns dnsmos_sig, dnsmos_bak, "
            "dnsmos_ovrl, dnsmos_p808 are in the default --metrics"
        )
    if name not in QUALITY_MODELS:
        raise ConfigError(
            f"unknown quality model '{name}' in '{spec}'; known: {', '.join(QUALITY_MODELS.names())}"
        )
    path, *options = rest.split(",") if rest else [""]
    kwargs = {}
    for option in options:
        key, _, value = option.partition("=")
        kwargs[key] = True if not value else value
    try:
        return QUALITY_MODELS.get(name)(path, **kwargs)
    except TypeError as error:
        raise ConfigError(f"quality model '{spec}': {error}") from None
