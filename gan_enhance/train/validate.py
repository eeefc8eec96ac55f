"""Validation (eval mode, no grad, fixed set) and logged audio/spectrogram samples."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from gan_enhance.losses.waveform import SISDRLoss
from gan_enhance.train.state import LossSet
from gan_enhance.train.step import TOTAL_KEY, discriminate, weighted_total
from gan_enhance.train.writers import RunWriters


@torch.no_grad()
def validate(
    generator: nn.Module,
    discriminator: nn.Module | None,
    losses: LossSet,
    lambdas: dict[str, float],
    batches: Iterable[dict[str, Tensor]],
    device: torch.device,
    sample_rate: int,
    adversarial: bool,
    max_batches: int = 0,
    speech_quality: bool = True,
    metric_names: Sequence[str] = (),
) -> dict[str, float]:
    """Average every training loss and the quality metrics over a fixed validation set.

    Parameters
    ----------
    generator, discriminator : nn.Module
        Bare modules (the EMA generator when EMA is on); put in eval mode here and restored after.
    losses, lambdas : LossSet, dict
        As in training; every reconstruction loss is computed, whatever its weight.
    batches : iterable of dict
        ``"x"`` ``(B, 1, T_in)`` and ``"y"`` ``(B, 1, T_out)``.
    sample_rate : int
        Output rate.
    adversarial : bool
        Whether the total includes the adversarial terms (as training does at this step).
    max_batches : int
        Stop after this many batches (0: all).
    speech_quality : bool
        Add wide-band PESQ and STOI (CPU-bound, about 0.1 s per item).
    metric_names : sequence of str
        More metrics of :mod:`gan_enhance.evaluate.metrics` (e.g. ``dnsmos_ovrl``), as ``metric/<name>``.

    Returns
    -------
    dict[str, float]
        Loss keys, ``total/loss``, ``metric/sisdr`` (dB), and ``metric/pesq`` / ``metric/stoi``.
    """
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    negative_sisdr = SISDRLoss()
    with _eval_mode(generator, discriminator):
        for index, batch in enumerate(batches):
            if max_batches and index >= max_batches:
                break
            x, y = batch["x"].to(device), batch["y"].to(device)
            y_hat = generator(x).float()
            values = {key: loss_fn(y_hat, y) for key, loss_fn in losses.reconstruction.items()}
            if discriminator is not None and losses.adversarial is not None:
                real_out, fake_out = discriminate(discriminator, y, y_hat)
                values["adv/disc"] = losses.adversarial.discriminator(real_out, fake_out)
                values["adv/gen"] = losses.adversarial.generator(fake_out)
                values["adv/feat"] = losses.feature_matching(real_out, fake_out)
            counted = values if adversarial else {k: v for k, v in values.items() if not k.startswith("adv/")}
            values[TOTAL_KEY] = weighted_total(counted, lambdas)
            values["metric/sisdr"] = -negative_sisdr(y_hat, y)
            scores = {key: float(value) for key, value in values.items()}
            if speech_quality:
                scores.update(speech_metrics(y_hat, y, sample_rate))
            if metric_names:
                from gan_enhance.evaluate.metrics import mean_scores

                means = mean_scores(y_hat, y, sample_rate, list(metric_names))
                scores.update({f"metric/{name}": value for name, value in means.items()})
            for key, value in scores.items():
                # A batch PESQ could not score at all is left out of that metric's mean only.
                if np.isfinite(value) or not key.startswith("metric/"):
                    sums[key] = sums.get(key, 0.0) + value * x.shape[0]
                    counts[key] = counts.get(key, 0) + x.shape[0]
    if not counts:
        raise ValueError("the validation set produced no batches")
    return {key: total / counts[key] for key, total in sums.items()}


def speech_metrics(y_hat: Tensor, y: Tensor, sample_rate: int) -> dict[str, float]:
    """Mean wide-band PESQ and STOI of a batch ``(B, 1, T)`` (``gan_enhance.evaluate.metrics``).

    Items a metric cannot score (PESQ: no speech found; STOI: too short) are left out of its mean; NaN
    when none could be scored.
    """
    from gan_enhance.evaluate.metrics import pesq_score, stoi_score

    pesq_scores, stoi_scores = [], []
    for estimate, reference in zip(y_hat.squeeze(1).cpu().numpy(), y.squeeze(1).cpu().numpy()):
        pesq_scores.append(pesq_score(estimate, reference, sample_rate))
        stoi_scores.append(stoi_score(estimate, reference, sample_rate))
    return {"metric/pesq": _finite_mean(pesq_scores), "metric/stoi": _finite_mean(stoi_scores)}


def _finite_mean(values: list[float]) -> float:
    scored = [value for value in values if np.isfinite(value)]
    return float(np.mean(scored)) if scored else float("nan")


@torch.no_grad()
def save_samples(
    writers: RunWriters,
    generator: nn.Module,
    batch: dict[str, Tensor],
    device: torch.device,
    in_sample_rate: int,
    out_sample_rate: int,
    step: int,
    samples_dir: str | Path | None = None,
) -> None:
    """Log each example's input/output/target audio and one spectrogram figure to ``logs/val``.

    The figure (tag ``sample_<i>/spectrogram``, see :func:`gan_enhance.train.figures.comparison_figure`)
    shows input, output and target on one frequency axis in Hz up to the output's Nyquist frequency, and
    output minus target. With ``samples_dir`` the clips and the figure are also written under
    ``samples_dir/step_<N>/`` (``<i>_input.wav``, ..., ``<i>_spectrogram.png``).
    """
    from gan_enhance.train.figures import comparison_figure, figure_rgb

    with _eval_mode(generator, None):
        y_hat = generator(batch["x"].to(device)).float().cpu()
    for index in range(batch["x"].shape[0]):
        clips = {"input": batch["x"][index], "output": y_hat[index], "target": batch["y"][index]}
        rates = {"input": in_sample_rate, "output": out_sample_rate, "target": out_sample_rate}
        for name, clip in clips.items():
            writers.audio("val", f"sample_{index}/{name}", clip, rates[name], step)
        figure = comparison_figure(
            *clips.values(), in_sample_rate, out_sample_rate, title=f"sample {index} at step {step}"
        )
        rgb = figure_rgb(figure)
        writers.image("val", f"sample_{index}/spectrogram", rgb, step)
        if samples_dir is not None:
            _write_files(Path(samples_dir) / f"step_{step}", index, clips, rates, rgb)


def _write_files(
    folder: Path, index: int, clips: dict[str, Tensor], rates: dict[str, int], rgb: np.ndarray
) -> None:
    import soundfile

    from gan_enhance.atomic import write_bytes
    from gan_enhance.train.figures import png_bytes

    folder.mkdir(parents=True, exist_ok=True)
    for name, clip in clips.items():
        soundfile.write(
            str(folder / f"{index}_{name}.wav"), clip.reshape(-1).clamp(-1, 1).numpy(), rates[name]
        )
    write_bytes(folder / f"{index}_spectrogram.png", png_bytes(rgb))


@contextlib.contextmanager
def _eval_mode(*modules: nn.Module | None) -> Iterator[None]:
    """Eval mode for the duration (dropout off, norms frozen), then each module's previous mode."""
    present = [m for m in modules if m is not None]
    previous = [m.training for m in present]
    for module in present:
        module.eval()
    try:
        yield
    finally:
        for module, mode in zip(present, previous):
            module.train(mode)
