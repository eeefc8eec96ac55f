"""Spectrogram figures a person can read: input, output and target of one example on one frequency axis.

Matplotlib is imported inside the functions (``import gan_enhance`` and inference never load it), and
figures are drawn on the Agg canvas directly, without pyplot, so no global backend is chosen or changed.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

WINDOW_SECONDS = 0.032  # Hann window: 512 samples at 16 kHz, 1536 at 48 kHz (one resolution)
HOP_FRACTION = 4  # hop = window / 4 (8 ms)
RANGE_DB = 80.0  # colour range below the loudest bin of the figure (rounded up to 10 dB)
DIFFERENCE_RANGE_DB = 20.0  # output - target is coloured between -20 and +20 dB
SHORT_CLIP_SECONDS = 2.0  # below this a clip says too little about speech: the title says so
FIGURE_INCHES = (10.0, 9.0)
FIGURE_DPI = 72  # 720 x 648 pixels


def level_dbfs(wav: Tensor, sample_rate: int) -> tuple[np.ndarray, float]:
    """Level spectrogram of a clip in dB relative to full scale, and its frame hop in seconds.

    Parameters
    ----------
    wav : Tensor
        ``(1, T)`` or ``(T,)`` at ``sample_rate``.
    sample_rate : int
        The clip's rate; the window is ``WINDOW_SECONDS`` long whatever the rate.

    Returns
    -------
    decibels : np.ndarray
        ``(F, frames)``, ``F = n_fft // 2 + 1`` bins from 0 Hz to ``sample_rate / 2``; a full-scale sine
        reads about 0 dB. Floored at -200 dB (digital silence).
    hop_seconds : float
        Time between frames.
    """
    signal = wav.detach().float().reshape(-1).cpu()
    n_fft = max(2 * round(sample_rate * WINDOW_SECONDS / 2), 16)
    hop = n_fft // HOP_FRACTION
    window = torch.hann_window(n_fft, device=signal.device)  # the CPU copy: the figure is drawn there
    if signal.numel() < n_fft:
        signal = torch.nn.functional.pad(signal, (0, n_fft - signal.numel()))
    spectrum = torch.stft(signal, n_fft, hop, window=window, center=True, return_complex=True).abs()
    amplitude = spectrum * (2.0 / window.sum())  # a sine of amplitude 1 peaks at 1 (0 dB)
    return (20 * torch.log10(amplitude.clamp_min(1e-10))).numpy(), hop / sample_rate


def comparison_figure(
    x: Tensor,
    y_hat: Tensor,
    y: Tensor,
    in_sample_rate: int,
    out_sample_rate: int,
    title: str = "",
):
    """A four-panel figure: input, output, target (dB FS, one colour scale) and output minus target (dB).

    Every panel shares the time axis (seconds) and the frequency axis (Hz, 0 to the output's Nyquist), so
    a 16 kHz input fills 0-8 kHz of a 48 kHz output's axis; the band the input cannot hold is hatched.

    Parameters
    ----------
    x : Tensor
        Input ``(1, T_in)`` at ``in_sample_rate``.
    y_hat, y : Tensor
        Output and target ``(1, T_out)`` at ``out_sample_rate``.
    in_sample_rate, out_sample_rate : int
        Rates of the input and of the output/target.
    title : str
        Heading; the clip length is appended, with a note when it is under ``SHORT_CLIP_SECONDS``.

    Returns
    -------
    matplotlib.figure.Figure
        Not registered with pyplot: it is freed with its last reference.
    """
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter

    rates = {"input": in_sample_rate, "output": out_sample_rate, "target": out_sample_rate}
    clips = {"input": x, "output": y_hat, "target": y}
    levels = {name: level_dbfs(clip, rates[name]) for name, clip in clips.items()}
    top = math.ceil(max(float(db.max()) for db, _ in levels.values()) / 10) * 10
    nyquist = out_sample_rate / 2
    seconds = y.reshape(-1).shape[0] / out_sample_rate

    # Fixed margins instead of a layout engine: constrained layout measures every label and tripled the cost.
    figure = Figure(figsize=FIGURE_INCHES, dpi=FIGURE_DPI)
    grid = figure.add_gridspec(
        4, 2, width_ratios=(48, 1), left=0.08, right=0.9, bottom=0.07, top=0.94, hspace=0.1, wspace=0.03
    )
    axes = grid[:, 0].subgridspec(4, 1, hspace=0.1).subplots(sharex=True, sharey=True)
    for ax, name in zip(axes, clips):
        decibels, hop_seconds = levels[name]
        level_image = ax.imshow(
            decibels,
            origin="lower",
            aspect="auto",
            interpolation="nearest",
            cmap="magma",
            vmin=top - RANGE_DB,
            vmax=top,
            extent=_extent(decibels.shape[1], hop_seconds, rates[name] / 2),
        )
        if rates[name] / 2 < nyquist:
            ax.axhspan(rates[name] / 2, nyquist, facecolor="0.85", edgecolor="0.6", hatch="//")
            ax.text(
                0.5,
                (rates[name] / 2 + nyquist) / 2,
                f"above the input's Nyquist frequency ({rates[name] / 2:g} Hz)",
                transform=ax.get_yaxis_transform(),
                ha="center",
                va="center",
                fontsize=9,
                color="0.3",
            )
        _label(ax, f"{name} ({rates[name]} Hz)")
    # Both floored at the colour scale's bottom: below it (e.g. digital silence) counts as equal.
    output_db, hop_seconds = levels["output"]
    target_db = levels["target"][0]
    frames = min(output_db.shape[1], target_db.shape[1])
    floor = top - RANGE_DB
    difference = np.maximum(output_db[:, :frames], floor) - np.maximum(target_db[:, :frames], floor)
    difference_image = axes[3].imshow(
        difference,
        origin="lower",
        aspect="auto",
        interpolation="nearest",
        cmap="coolwarm",
        vmin=-DIFFERENCE_RANGE_DB,
        vmax=DIFFERENCE_RANGE_DB,
        extent=_extent(frames, hop_seconds, nyquist),
    )
    _label(axes[3], "output - target (red: output louder, blue: quieter)")
    axes[3].set_xlim(0, seconds)
    axes[3].set_ylim(0, nyquist)
    axes[3].set_xlabel("time (s)")
    axes[3].yaxis.set_major_formatter(FuncFormatter(_hertz))
    for ax in axes:
        ax.set_ylabel("frequency (Hz)")
    figure.colorbar(level_image, cax=figure.add_subplot(grid[:3, 1]), label="level (dB FS)")
    figure.colorbar(difference_image, cax=figure.add_subplot(grid[3, 1]), label="difference (dB)")
    length = f"{seconds:.2f} s clip"
    if seconds < SHORT_CLIP_SECONDS:
        length += f" - shorter than {SHORT_CLIP_SECONDS:g} s: raise Data.val_segment_samples"
    figure.suptitle(f"{title}: {length}" if title else length, fontsize=11)
    return figure


def figure_rgb(figure) -> np.ndarray:
    """Draw ``figure`` on an Agg canvas; returns an ``(H, W, 3)`` uint8 image."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def png_bytes(rgb: np.ndarray) -> bytes:
    """An ``(H, W, 3)`` uint8 image as PNG file contents."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG")
    return buffer.getvalue()


def _extent(frames: int, hop_seconds: float, top_hz: float) -> tuple[float, float, float, float]:
    """Image extent with frame ``i`` centred on ``i * hop`` (the STFT is centred) and bins up to ``top_hz``."""
    return (-hop_seconds / 2, (frames - 0.5) * hop_seconds, 0.0, top_hz)


def _label(ax, text: str) -> None:
    """A panel's name in its top-left corner (an axes title would cost a layout pass per panel)."""
    ax.text(0.005, 0.96, text, transform=ax.transAxes, ha="left", va="top", fontsize=9, bbox=_LABEL_BOX)


_LABEL_BOX = {"facecolor": "white", "alpha": 0.8, "edgecolor": "none", "pad": 1.5}


def _hertz(value: float, position: int) -> str:
    """Tick label in Hz: 0, 500, 4k, 22.05k."""
    return f"{value / 1000:g}k" if value >= 1000 else f"{value:g}"
