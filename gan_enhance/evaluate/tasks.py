"""Degrade clean files on the fly with a seeded task preset (:mod:`gan_enhance.data.tasks`).

Item ``i`` under seed ``s`` is degraded exactly as the training/validation datasets degrade their item
``i`` (same random state, :func:`gan_enhance.data.datasets.item_state`): the clean signal at the task's
output rate goes through the preset's degradation chain, then is resampled to the task's input rate.
Every channel of a file gets the same drawn parameters; the result is clipped to [-1, 1] as a
file would be.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from gan_enhance.audio import resample


def task_degrader(
    task: str,
    seed: int,
    noise_dirs: list[str] = (),
    rir_dirs: list[str] = (),
    in_sample_rate: int = 0,
    out_sample_rate: int = 0,
    settings: dict[str, dict] | None = None,
) -> Callable[[torch.Tensor, int, int], tuple[torch.Tensor, int]]:
    """``degrade(wav (C, T), sample_rate, index) -> (degraded (C, T'), input_rate)`` for preset ``task``.

    Parameters
    ----------
    task : str
        A preset name (``gan_enhance.data.tasks.TASK_NAMES``).
    seed : int
        With the item index, fixes every random choice.
    noise_dirs, rir_dirs : list[str]
        Noise and impulse-response folders (synthetic noise and rooms when empty).
    in_sample_rate, out_sample_rate : int
        Override the preset's rates (0 keeps them), e.g. a 16 kHz input for a 48 kHz target.
    settings : dict[str, dict], optional
        Per-degradation overrides of the preset (``{"AddNoise": {"snr_db": [0, 10]}}``), as in training.
    """
    # The data layer pulls in every degradation; only this mode of evaluation needs it.
    from gan_enhance.data.datasets import item_state
    from gan_enhance.data.tasks import build_task

    built = build_task(
        task,
        list(noise_dirs),
        list(rir_dirs),
        settings,
        in_sample_rate=in_sample_rate,
        out_sample_rate=out_sample_rate,
    )

    def degrade(wav: torch.Tensor, sample_rate: int, index: int) -> tuple[torch.Tensor, int]:
        clean = resample(wav, sample_rate, built.out_sample_rate).numpy()
        params = built.degradation.instantiate(item_state(seed, index), built.out_sample_rate)
        channels = [built.degradation.apply(channel, built.out_sample_rate, params) for channel in clean]
        degraded = torch.stack([torch.from_numpy(channel) for channel in channels])
        degraded = resample(degraded, built.out_sample_rate, built.in_sample_rate)
        # A degraded recording is a file like any other: its samples lie in [-1, 1].
        return degraded.clamp(-1.0, 1.0), built.in_sample_rate

    return degrade
