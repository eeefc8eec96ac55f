"""The generator contract shared by every backbone."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from gan_enhance.errors import ConfigError
from gan_enhance.nn.layers import remove_weight_norm


def round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


class Generator(nn.Module):
    """Maps degraded audio ``(B, 1, T)`` at ``in_sample_rate`` to ``(B, 1, T * ratio)`` at ``out_sample_rate``.

    Subclasses implement :meth:`generate` for lengths that are multiples of :attr:`alignment` and
    :meth:`receptive_radius`; :meth:`forward` pads any length with zeros on the right and crops back.

    Chunked inference contract (what makes chunked output equal whole-file output):

    - the output at input sample ``t`` depends only on input samples within ``context`` of ``t``;
    - the model is equivariant to input shifts that are multiples of ``alignment``: a chunk must start at
      a multiple of ``alignment`` in file coordinates (``context`` is one, so chunk starts ``k * alignment
      - context`` are fine);
    - at the file edges a chunk takes what exists and is not padded (the model pads internally exactly
      as in a whole-file run).

    Parameters
    ----------
    in_sample_rate, out_sample_rate : int
        ``out_sample_rate`` must be an integer multiple of ``in_sample_rate``.
    """

    #: False when part of the model sees the whole input (e.g. WavLM transformer layers): ``context`` is
    #: then a practical amount of context, not a bound, and chunked output only approximates whole-file.
    exact_context: bool = True

    def __init__(self, in_sample_rate: int = 16000, out_sample_rate: int = 16000):
        super().__init__()
        if in_sample_rate <= 0 or out_sample_rate <= 0 or out_sample_rate % in_sample_rate:
            raise ConfigError(
                f"out_sample_rate ({out_sample_rate}) must be a positive integer multiple of in_sample_rate "
                f"({in_sample_rate}), e.g. 16000 -> 16000, 16000 -> 48000 or 48000 -> 48000"
            )
        self.in_sample_rate = in_sample_rate
        self.out_sample_rate = out_sample_rate
        self.ratio = out_sample_rate // in_sample_rate
        self._build_config: dict | None = None

    # -- what subclasses provide ------------------------------------------------------------------------
    @property
    def alignment(self) -> int:
        """Input samples the model's internal lengths are multiples of (its total downsampling or hop)."""
        return 1

    def receptive_radius(self) -> int:
        """Input samples on each side that one output sample can depend on (an upper bound)."""
        raise NotImplementedError

    def generate(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 1, T)`` with ``T`` a multiple of :attr:`alignment` -> ``(B, 1, T * ratio)``."""
        raise NotImplementedError

    # -- the contract -------------------------------------------------------------------------------------
    @property
    def context(self) -> int:
        """Input samples chunked inference must add on each side: the radius rounded up to ``alignment``."""
        return round_up(self.receptive_radius(), self.alignment)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 1, T)`` at ``in_sample_rate``, any ``T >= 1`` -> ``(B, 1, T * ratio)``."""
        if x.dim() != 3 or x.shape[1] != 1:
            raise ValueError(f"expected audio of shape (B, 1, T), got {tuple(x.shape)}")
        length = x.shape[-1]
        padded = F.pad(x, (0, round_up(length, self.alignment) - length))
        y = self.generate(padded)
        return y[..., : length * self.ratio]

    def remove_weight_norm(self) -> Generator:
        """Fold weight norm into plain weights for inference (output unchanged); returns ``self``."""
        remove_weight_norm(self)
        return self

    # -- recorded configuration ---------------------------------------------------------------------------
    @property
    def build_config(self) -> dict | None:
        """``{"name", "kwargs"}`` set by the registry; enough to rebuild this generator offline."""
        return self._build_config

    @build_config.setter
    def build_config(self, config: dict) -> None:
        self._build_config = self.complete_build_config(config)

    def complete_build_config(self, config: dict) -> dict:
        """Hook: add what a rebuild needs beyond the given arguments (e.g. a pretrained model's config)."""
        return config
