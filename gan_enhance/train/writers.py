"""TensorBoard logging: ``logs/train`` and ``logs/val`` writers with the same tags, so curves overlay.

Only rank 0 writes; on other ranks every method is a no-op.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

SPLITS = ("train", "val")
SPECTROGRAM_FFT = 1024
SPECTROGRAM_HOP = 256
SPECTROGRAM_FLOOR_DB = -80.0
DIFFERENCE_RANGE_DB = 20.0


class RunWriters:
    """The two ``SummaryWriter``s of a run folder.

    Parameters
    ----------
    run_dir : str or Path
        The run folder; writers go to ``run_dir/logs/train`` and ``run_dir/logs/val``.
    enabled : bool
        False on ranks other than 0.
    purge_step : int
        On resume, the resumed step: TensorBoard hides what an interrupted run logged at this step and
        after (steps that are trained again), so curves do not fold back. 0: nothing hidden.
    """

    def __init__(self, run_dir: str | Path, enabled: bool = True, purge_step: int = 0):
        self.writers = {}
        if enabled:
            from torch.utils.tensorboard import SummaryWriter

            self.writers = {
                split: SummaryWriter(str(Path(run_dir) / "logs" / split), purge_step=purge_step or None)
                for split in SPLITS
            }

    def scalars(self, split: str, values: dict[str, float], step: int) -> None:
        writer = self.writers.get(split)
        if writer is None:
            return
        for tag, value in sorted(values.items()):
            writer.add_scalar(tag, value, step)

    def audio(self, split: str, tag: str, wav: Tensor, sample_rate: int, step: int) -> None:
        """One clip ``(1, T)`` or ``(T,)``, clipped to [-1, 1] as TensorBoard expects."""
        writer = self.writers.get(split)
        if writer is not None:
            writer.add_audio(tag, wav.detach().float().reshape(-1).clamp(-1, 1).cpu(), step, sample_rate)

    def image(self, split: str, tag: str, rgb: np.ndarray, step: int) -> None:
        """An ``(H, W, 3)`` image with values in [0, 1]."""
        writer = self.writers.get(split)
        if writer is not None:
            writer.add_image(tag, rgb, step, dataformats="HWC")

    def flush(self) -> None:
        for writer in self.writers.values():
            writer.flush()

    def close(self) -> None:
        for writer in self.writers.values():
            writer.close()


def log_magnitude_db(wav: Tensor) -> Tensor:
    """Log-magnitude spectrogram ``(F, frames)`` in dB of a clip ``(1, T)``, floored at -80 dB of peak."""
    signal = wav.detach().float().reshape(-1).cpu()
    window = torch.hann_window(SPECTROGRAM_FFT, device=signal.device)
    spectrum = torch.stft(signal, SPECTROGRAM_FFT, SPECTROGRAM_HOP, window=window, return_complex=True).abs()
    decibels = 20 * torch.log10(spectrum.clamp_min(1e-8))
    return decibels.clamp_min(decibels.max() + SPECTROGRAM_FLOOR_DB)


def spectrogram_image(decibels: Tensor, low: float, high: float, colormap: str = "magma") -> np.ndarray:
    """Colour an ``(F, frames)`` array between ``low`` and ``high`` into an ``(F, frames, 3)`` image, low
    frequencies at the bottom."""
    from matplotlib import colormaps

    scaled = ((decibels - low) / max(high - low, 1e-6)).clamp(0, 1).flip(0).numpy()
    return colormaps[colormap](scaled)[..., :3].astype(np.float32)


def comparison_images(x: Tensor, y_hat: Tensor, y: Tensor) -> dict[str, np.ndarray]:
    """Spectrogram images of input, output, target and output-minus-target (dB), on shared scales.

    The input may be at a lower rate than the output; its image is shorter in frequency, which shows
    the missing band at a glance.
    """
    spectra = {"input": log_magnitude_db(x), "output": log_magnitude_db(y_hat), "target": log_magnitude_db(y)}
    high = max(float(s.max()) for s in spectra.values())
    low = high + SPECTROGRAM_FLOOR_DB
    images = {name: spectrogram_image(s, low, high) for name, s in spectra.items()}
    frames = min(spectra["output"].shape[1], spectra["target"].shape[1])
    difference = spectra["output"][:, :frames] - spectra["target"][:, :frames]
    images["difference"] = spectrogram_image(
        difference, -DIFFERENCE_RANGE_DB, DIFFERENCE_RANGE_DB, "coolwarm"
    )
    return images
