"""STFT and mel helpers shared by generators, discriminators and losses.

Windows are cached per (kind, length, device, dtype) and mel filterbanks per (settings, device, dtype),
so a loss evaluated every step builds them once. Every transform runs in float32 whatever the input
dtype: ``torch.stft`` has no bfloat16 kernel, and log-magnitudes in half precision lose the quiet bins
the losses care about.

The mel filterbank is torchaudio's ``melscale_fbanks`` with Slaney scale and Slaney normalisation, which
matches ``librosa.filters.mel`` (what DAC and HiFi-GAN use), so their loss weights carry over.
"""

from __future__ import annotations

import warnings

import torch
from einops import pack, unpack

from gan_enhance.devices import cached_constant

WINDOWS = {
    "hann": torch.hann_window,
    "hamming": torch.hamming_window,
    "blackman": torch.blackman_window,
}


@cached_constant(128)
def _cached_window(kind: str, length: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    return WINDOWS[kind](length, periodic=True, device=device, dtype=dtype)


def window(
    length: int, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32, kind: str = "hann"
):
    """A periodic analysis window, built once per (kind, length, device, dtype).

    Parameters
    ----------
    length : int
        Window length in samples.
    device, dtype
        Where the window lives; ``device`` is normalised so ``"cuda"`` and ``"cuda:0"`` share an entry.
    kind : str
        ``"hann"``, ``"hamming"`` or ``"blackman"``.

    Returns
    -------
    Tensor
        ``(length,)``. Shared between callers: do not modify it in place.
    """
    if kind not in WINDOWS:
        raise ValueError(f"unknown window {kind!r}; known: {', '.join(sorted(WINDOWS))}")
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    return _cached_window(kind, int(length), device, dtype)


def stft(
    x: torch.Tensor,
    n_fft: int,
    hop_length: int,
    win_length: int = 0,
    window_kind: str = "hann",
    center: bool = True,
    normalized: bool = False,
) -> torch.Tensor:
    """Complex STFT of a batch of signals, in float32.

    Parameters
    ----------
    x : Tensor
        ``(..., T)``, e.g. ``(B, 1, T)``. With ``center`` the signal is reflect-padded by ``n_fft // 2``
        on each side, so ``T`` must exceed ``n_fft // 2``.
    n_fft, hop_length : int
        FFT size and hop in samples.
    win_length : int
        Window length; 0 means ``n_fft``.
    window_kind : str
        See :func:`window`.
    center : bool
        Frame ``t`` centred on sample ``t * hop_length`` (frames = ``T // hop_length + 1``).
    normalized : bool
        Divide by the window's L2 norm (``torchaudio.transforms.Spectrogram(normalized=True)``), as
        EnCodec's discriminator does: the scale then does not depend on the window length.

    Returns
    -------
    Tensor
        Complex ``(..., n_fft // 2 + 1, frames)``.
    """
    win_length = win_length or n_fft
    if center and x.shape[-1] <= n_fft // 2:
        raise ValueError(
            f"signal of {x.shape[-1]} samples is too short for a centred STFT with n_fft={n_fft}"
        )
    flat, packed_shape = pack([x.float()], "* t")
    analysis_window = window(win_length, flat.device, torch.float32, window_kind)
    spec = torch.stft(
        flat,
        n_fft=n_fft,
        hop_length=hop_length,
        win_length=win_length,
        window=analysis_window,
        center=center,
        pad_mode="reflect",
        return_complex=True,
    )
    if normalized:
        spec = spec / torch.linalg.vector_norm(analysis_window)
    (spec,) = unpack(spec, packed_shape, "* f frames")
    return spec


def magnitude(spec: torch.Tensor, power: float = 1.0, eps: float = 0.0) -> torch.Tensor:
    """``|spec| ** power`` of a complex spectrogram.

    ``eps`` is added under the square root (``sqrt(re^2 + im^2 + eps)``) when given: the gradient of
    ``|z|`` at ``z = 0`` is undefined, and silent frames (padding, digital silence) hit it.
    """
    if eps > 0:
        mag = torch.sqrt(spec.real.square() + spec.imag.square() + eps)
    else:
        mag = spec.abs()
    return mag if power == 1.0 else mag.pow(power)


@cached_constant(128)
def _cached_mel_filterbank(
    sample_rate: int,
    n_fft: int,
    n_mels: int,
    f_min: float,
    f_max: float,
    norm: str,
    mel_scale: str,
    device: torch.device,
    dtype: torch.dtype,
) -> torch.Tensor:
    from gan_enhance._compat import patch

    patch()
    import torchaudio.functional

    with warnings.catch_warnings():
        # Few bins and many bands leave the lowest filter empty (DAC's 32-sample scale at 44.1/48 kHz,
        # librosa warns the same). An empty band is zero for output and target alike, so it adds nothing
        # to a loss; the warning would fire on every default 48 kHz run.
        warnings.filterwarnings("ignore", message="At least one mel filterbank has all zero values")
        fbank = torchaudio.functional.melscale_fbanks(
            n_freqs=n_fft // 2 + 1,
            f_min=f_min,
            f_max=f_max,
            n_mels=n_mels,
            sample_rate=sample_rate,
            norm=norm or None,
            mel_scale=mel_scale,
        )
    return fbank.T.contiguous().to(device=device, dtype=dtype)


def mel_filterbank(
    sample_rate: int,
    n_fft: int,
    n_mels: int,
    f_min: float = 0.0,
    f_max: float = 0.0,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    norm: str = "slaney",
    mel_scale: str = "slaney",
) -> torch.Tensor:
    """Triangular mel filters, built once per settings, device and dtype.

    Parameters
    ----------
    sample_rate, n_fft, n_mels : int
        The filters cover the ``n_fft // 2 + 1`` bins of an ``n_fft``-point FFT at ``sample_rate``.
    f_min, f_max : float
        Band edges in Hz; ``f_max = 0`` means the Nyquist frequency.
    norm : str
        ``"slaney"`` (area normalisation, librosa's default) or ``""`` for none.
    mel_scale : str
        ``"slaney"`` (librosa's default) or ``"htk"``.

    Returns
    -------
    Tensor
        ``(n_mels, n_fft // 2 + 1)``. Shared between callers: do not modify it in place.
    """
    f_max = f_max or sample_rate / 2
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    return _cached_mel_filterbank(
        int(sample_rate), int(n_fft), int(n_mels), float(f_min), float(f_max), norm, mel_scale, device, dtype
    )


def mel_spectrogram(
    x: torch.Tensor,
    sample_rate: int,
    n_fft: int,
    hop_length: int,
    n_mels: int,
    win_length: int = 0,
    f_min: float = 0.0,
    f_max: float = 0.0,
    power: float = 1.0,
    window_kind: str = "hann",
    center: bool = True,
) -> torch.Tensor:
    """Mel spectrogram of ``|STFT| ** power`` (``power=1``: magnitude, as DAC's mel loss uses).

    Parameters
    ----------
    x : Tensor
        ``(..., T)``.

    Returns
    -------
    Tensor
        ``(..., n_mels, frames)`` in float32.
    """
    spec = magnitude(stft(x, n_fft, hop_length, win_length, window_kind, center), power)
    fbank = mel_filterbank(sample_rate, n_fft, n_mels, f_min, f_max, spec.device, spec.dtype)
    return torch.matmul(fbank, spec)
