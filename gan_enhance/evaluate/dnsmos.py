"""DNSMOS: Microsoft's no-reference speech quality models, from the ONNX files inside ``speechmos``.

Two models score a 16 kHz waveform without a clean reference (Reddy et al., ICASSP 2021 / 2022):

- P.835 (``sig_bak_ovr.onnx``): speech signal quality ``sig``, background noise ``bak`` and overall
  quality ``ovrl``, each a MOS from 1 to 5 after Microsoft's calibration polynomials;
- P.808 (``model_v8.onnx``): one overall MOS ``p808`` from a log-mel spectrogram.

The ``speechmos`` wheel ships both models, so nothing is downloaded. The scoring follows Microsoft's
reference script (DNS-Challenge ``DNSMOS/dnsmos_local.py``, which ``speechmos.dnsmos.run`` copies): audio
shorter than 9.01 s is repeated until it is at least that long, then scored in 9.01 s windows starting
every second, ``floor(seconds) - 9`` windows in all (at least one), and each score is the mean over the
windows. One difference: the reference script computes a window's end as ``int((i + 9.01) * 16000)``,
which floating-point rounding makes one sample short for some windows (the 8th to the 24th, among
others), and then silently drops those windows; here every window is scored. The two agree exactly
whenever the (repeated) audio is shorter than 17 s, i.e. has at most 7 windows.

Long files are scored a few windows at a time (:data:`WINDOWS_PER_RUN`), so memory does not grow with
the file's length. Each process builds its ONNX sessions once (on first use, never at import), with as
many threads as torch uses.
"""

from __future__ import annotations

import functools
import importlib.resources
import math

import numpy as np

from gan_enhance.errors import ConfigError

SAMPLE_RATE = 16000
WINDOW_SECONDS = 9.01
HOP_SECONDS = 1
WINDOW = int(WINDOW_SECONDS * SAMPLE_RATE)
HOP = HOP_SECONDS * SAMPLE_RATE
# Windows per ONNX call: bounds the memory of long files (each window is 0.58 MB as float32).
WINDOWS_PER_RUN = 8
# P.835 calibration polynomials (np.poly1d, highest power first), from Microsoft's reference script.
P835_POLYNOMIALS = {
    "sig": (-0.08397278, 1.22083953, 0.0052439),
    "bak": (-0.13166888, 1.60915514, -0.39604546),
    "ovrl": (-0.06766283, 1.11546468, 0.04602535),
}
# P.808 features: log-mel spectrogram of the window minus its last hop, as in the reference script.
P808_MELS = 120
P808_FRAME = 320
P808_HOP = 160
SCORES = ("sig", "bak", "ovrl", "p808")
_MODELS = {"p835": "sig_bak_ovr.onnx", "p808": "model_v8.onnx"}


def model_path(model: str) -> str:
    """Path of a DNSMOS model file (``"p835"`` or ``"p808"``) inside the installed ``speechmos`` package."""
    try:
        folder = importlib.resources.files("speechmos") / "dnsmos_models"
    except ModuleNotFoundError:
        raise ConfigError(
            "DNSMOS needs the speechmos package, which ships Microsoft's models: pip install speechmos==0.0.1.1"
        ) from None
    path = folder / _MODELS[model]
    if not path.is_file():
        raise ConfigError(
            f"speechmos has no DNSMOS model '{path}'; reinstall it: pip install speechmos==0.0.1.1"
        )
    return str(path)


@functools.lru_cache(maxsize=8)
def _session(model: str, threads: int):
    """One ONNX Runtime session per model and thread count in this process (built on first use)."""
    try:
        import onnxruntime
    except ImportError:
        raise ConfigError("DNSMOS needs onnxruntime: pip install onnxruntime") from None
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return onnxruntime.InferenceSession(model_path(model), options, providers=["CPUExecutionProvider"])


def _sessions():
    import torch

    threads = max(1, torch.get_num_threads())
    return _session("p835", threads), _session("p808", threads)


def window_starts(length: int) -> range:
    """Start samples of the scored windows of a 16 kHz signal already at least one window long."""
    count = int(math.floor(length / SAMPLE_RATE) - WINDOW_SECONDS) + 1
    return range(0, max(count, 1) * HOP, HOP)


def p808_features(windows: np.ndarray) -> np.ndarray:
    """The P.808 model's input: ``(N, WINDOW)`` windows -> ``(N, frames, 120)`` scaled log-mel spectra."""
    import librosa

    mel = librosa.feature.melspectrogram(
        y=windows[:, :-P808_HOP],
        sr=SAMPLE_RATE,
        n_fft=P808_FRAME + 1,
        hop_length=P808_HOP,
        n_mels=P808_MELS,
    )
    # Each window in dB relative to its own loudest bin, then mapped to about [0, 1].
    scaled = [(librosa.power_to_db(spectrum, ref=np.max) + 40) / 40 for spectrum in mel]
    return np.stack(scaled).transpose(0, 2, 1).astype(np.float32)


def dnsmos(wav: np.ndarray) -> dict[str, float]:
    """DNSMOS scores of one mono 16 kHz waveform.

    Parameters
    ----------
    wav : ndarray (T,)
        Float samples at 16 kHz; values beyond [-1, 1] are clipped (what a 16-bit file of it would hold).

    Returns
    -------
    dict[str, float]
        ``sig``, ``bak``, ``ovrl`` (P.835) and ``p808``, each the mean over the windows; NaN for an
        empty waveform.
    """
    audio = np.clip(np.asarray(wav, dtype=np.float32).reshape(-1), -1.0, 1.0)
    if audio.size == 0:
        return {name: math.nan for name in SCORES}
    while len(audio) < WINDOW:
        audio = np.concatenate([audio, audio])
    p835, p808 = _sessions()
    p835_input, p808_input = p835.get_inputs()[0].name, p808.get_inputs()[0].name
    starts = window_starts(len(audio))
    raw, p808_scores = [], []
    for first in range(0, len(starts), WINDOWS_PER_RUN):
        windows = np.stack([audio[s : s + WINDOW] for s in starts[first : first + WINDOWS_PER_RUN]])
        raw.append(p835.run(None, {p835_input: windows})[0])
        p808_scores.append(p808.run(None, {p808_input: p808_features(windows)})[0][:, 0])
    raw_scores = np.concatenate(raw)
    scores = {
        name: float(np.mean(np.poly1d(P835_POLYNOMIALS[name])(raw_scores[:, column])))
        for column, name in enumerate(("sig", "bak", "ovrl"))
    }
    scores["p808"] = float(np.mean(np.concatenate(p808_scores)))
    return scores


def dnsmos_at(wav: np.ndarray, sample_rate: int) -> dict[str, float]:
    """:func:`dnsmos` of a mono waveform ``(T,)`` at any rate.

    It is resampled to 16 kHz as the reference script's ``librosa.load(path, sr=16000)`` does (soxr's
    high-quality mode, then cut or zero-padded to ``ceil(T * 16000 / rate)`` samples), so scores of files
    at other rates match the reference too.
    """
    import soxr

    audio = np.asarray(wav, dtype=np.float32).reshape(-1)
    if sample_rate != SAMPLE_RATE and audio.size:
        length = math.ceil(audio.size * SAMPLE_RATE / sample_rate)
        audio = soxr.resample(audio, sample_rate, SAMPLE_RATE, quality="soxr_hq")[:length]
        audio = np.pad(audio, (0, length - audio.size))
    return dnsmos(audio)
