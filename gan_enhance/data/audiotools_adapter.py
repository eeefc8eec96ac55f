"""Any audiotools transform as a degradation step (e.g. ``MuLawQuantization``, ``FrequencyNoise``).

audiotools' transforms follow the same two-step design as ours (``instantiate(state)`` then apply), so one
adapter makes all of its self-contained ones usable in a chain. Transforms that load files of their own
(``BackgroundNoise``, ``RoomImpulseResponse``) are better served by :class:`AddNoise` and :class:`Reverb`,
which cache decoded files per worker.
"""

from __future__ import annotations

import json

import numpy as np

from gan_enhance.data.transforms import DEGRADATIONS, Degradation, Params
from gan_enhance.errors import ConfigError

# Transforms that need file lists or act on several signals at once: not usable on one item alone.
UNSUPPORTED = (
    "AudioLoader",
    "BackgroundNoise",
    "RoomImpulseResponse",
    "CrossTalk",
    "Compose",
    "Choose",
    "Repeat",
)


def _audiotools():
    from gan_enhance._compat import patch

    patch()
    from audiotools import AudioSignal, transforms

    return AudioSignal, transforms


@DEGRADATIONS.register("Audiotools")
class Audiotools(Degradation):
    """One audiotools transform, applied per item with our seeded state.

    Parameters
    ----------
    name : str
        The transform's class name in ``audiotools.transforms`` (e.g. ``"MuLawQuantization"``).
    options : str
        Its keyword arguments as a JSON object, e.g. ``'{"channels": ["choice", [8, 16, 32]]}'``;
        distributions are audiotools' ``[kind, *args]`` lists.
    prob : float
        Probability of applying it (audiotools' own ``prob`` is left at 1).
    """

    def __init__(self, name: str = "MuLawQuantization", options: str = "{}", prob: float = 1.0):
        super().__init__(prob)
        self.audio_signal, transforms = _audiotools()
        cls = getattr(transforms, name, None)
        if name in UNSUPPORTED or not isinstance(cls, type) or not issubclass(cls, transforms.BaseTransform):
            raise ConfigError(f"Audiotools.name {name!r} is not a self-contained audiotools transform")
        try:
            kwargs = json.loads(options or "{}")
        except json.JSONDecodeError as error:
            raise ConfigError(f"Audiotools.options is not valid JSON: {error}") from None
        try:
            self.transform_ = cls(
                **{key: tuple(v) if isinstance(v, list) else v for key, v in kwargs.items()}
            )
        except TypeError as error:
            raise ConfigError(f"Audiotools.options for {name}: {error}") from None
        self.name = name

    def sample(self, state: np.random.RandomState, sample_rate: int) -> Params:
        import torch

        # A stand-in signal: the item is not known yet; transforms whose parameters depend on its content
        # draw from the distributions alone.
        stand_in = self.audio_signal(torch.zeros(1, 1, sample_rate), sample_rate)
        # Some transforms draw from torch's global generator when applied; a seed drawn here makes them
        # reproducible too.
        return {
            "kwargs": self.transform_.instantiate(state, signal=stand_in),
            "seed": int(state.randint(2**31 - 1)),
        }

    def transform(self, wav: np.ndarray, sample_rate: int, params: Params) -> np.ndarray:
        import torch

        signal = self.audio_signal(torch.from_numpy(np.ascontiguousarray(wav))[None, None], sample_rate)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(params["seed"])
            output = self.transform_(signal, **params["kwargs"])
        return output.audio_data[0, 0].numpy()
