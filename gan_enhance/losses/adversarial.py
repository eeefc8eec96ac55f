"""Adversarial and feature-matching losses over lists of :class:`DiscriminatorOutput`.

Both average over sub-discriminators (and feature matching over layers too), so their ``lambdas`` do not
have to be re-tuned when discriminators are added or removed. Peers that sum instead (DAC, HiFi-GAN) need
their weights multiplied by the number of sub-discriminators (and layers) to give the same gradient.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from gan_enhance.models.discriminators.base import DiscriminatorOutput

ADVERSARIAL_KINDS = ("lsgan", "hinge")


def _check_pairs(real: Sequence[DiscriminatorOutput], fake: Sequence[DiscriminatorOutput]) -> None:
    if len(real) != len(fake):
        raise ValueError(f"{len(real)} real but {len(fake)} fake discriminator outputs")
    if not real:
        raise ValueError("no discriminator outputs")


class AdversarialLoss(nn.Module):
    """Generator and discriminator sides of a GAN loss, averaged over sub-discriminators.

    Parameters
    ----------
    kind : str
        ``"lsgan"`` (least squares: real -> 1, fake -> 0; HiFi-GAN, DAC) or ``"hinge"`` (EnCodec).

    Notes
    -----
    Logits of any shape ``(B, ...)`` are averaged over all positions of a sub-discriminator first.
    Computed in float32 so bf16 logits do not lose the small differences near the targets.
    """

    def __init__(self, kind: str = "lsgan"):
        super().__init__()
        if kind not in ADVERSARIAL_KINDS:
            raise ValueError(f"unknown adversarial loss {kind!r}; use one of {', '.join(ADVERSARIAL_KINDS)}")
        self.kind = kind

    def discriminator(
        self, real: Sequence[DiscriminatorOutput], fake: Sequence[DiscriminatorOutput]
    ) -> torch.Tensor:
        """Loss of the discriminator on real audio and (detached) generated audio. Logged as ``adv/disc``."""
        _check_pairs(real, fake)
        total = 0.0
        for real_output, fake_output in zip(real, fake):
            real_logits, fake_logits = real_output.logits.float(), fake_output.logits.float()
            if self.kind == "lsgan":
                total = total + (1 - real_logits).square().mean() + fake_logits.square().mean()
            else:
                total = total + torch.relu(1 - real_logits).mean() + torch.relu(1 + fake_logits).mean()
        return total / len(real)

    def generator(self, fake: Sequence[DiscriminatorOutput]) -> torch.Tensor:
        """Loss of the generator: how far the discriminator is from calling its audio real (``adv/gen``)."""
        if not fake:
            raise ValueError("no discriminator outputs")
        total = 0.0
        for output in fake:
            logits = output.logits.float()
            total = total + ((1 - logits).square().mean() if self.kind == "lsgan" else -logits.mean())
        return total / len(fake)

    def forward(self, fake: Sequence[DiscriminatorOutput]) -> torch.Tensor:
        """Same as :meth:`generator`."""
        return self.generator(fake)


class FeatureMatchingLoss(nn.Module):
    """L1 distance between the discriminator's feature maps of real and generated audio (``adv/feat``).

    The mean over layers of each sub-discriminator, then the mean over sub-discriminators; real features
    are detached (the loss trains the generator only).

    Parameters
    ----------
    relative : bool
        Divide each layer's L1 distance by the mean magnitude of its real features, so layers with large
        activations do not dominate (as in FINALLY's reimplementations).
    eps : float
        Added to the real features' magnitude in the relative form.
    """

    def __init__(self, relative: bool = False, eps: float = 1e-8):
        super().__init__()
        self.relative = relative
        self.eps = eps

    def forward(
        self, real: Sequence[DiscriminatorOutput], fake: Sequence[DiscriminatorOutput]
    ) -> torch.Tensor:
        _check_pairs(real, fake)
        total = 0.0
        for real_output, fake_output in zip(real, fake):
            if len(real_output.feature_maps) != len(fake_output.feature_maps):
                raise ValueError("real and fake outputs have different numbers of feature maps")
            layers = 0.0
            for real_map, fake_map in zip(real_output.feature_maps, fake_output.feature_maps):
                real_map = real_map.detach().float()
                distance = (fake_map.float() - real_map).abs().mean()
                if self.relative:
                    distance = distance / (real_map.abs().mean() + self.eps)
                layers = layers + distance
            total = total + layers / len(real_output.feature_maps)
        return total / len(real)
