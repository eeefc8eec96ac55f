"""The peers' generators, built from their own code for speed rows beside ours (``benchmarks/generators.py``).

Nothing here is part of the toolkit and nothing of theirs is committed: each peer's repository is fetched
into a git-ignored folder (default ``exp/peers/<folder>``) by whoever runs the benchmark, e.g.::

    git clone --depth 1 https://github.com/facebookresearch/denoiser exp/peers/denoiser

A peer whose folder is missing, or whose code does not import here, is reported in one line and left out.
Weights are random (speed does not depend on them) and weight norm is removed, as for our backbones.
Vocoders (HiFi-GAN, BigVGAN) are fed a mel spectrogram of the right frame count; their time covers the
generator, not the mel analysis. Extra requirements: HiFi++ imports ``omegaconf`` and ``librosa``, DAC
imports ``descript-audiotools`` (installed with the toolkit).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class Peer:
    """A peer generator at its own rates: ``make_input(seconds)`` gives what its forward takes."""

    label: str
    model: nn.Module
    in_rate: int
    out_rate: int
    make_input: Callable[[float], torch.Tensor]
    call: Callable[[nn.Module, torch.Tensor], object]


@dataclass(frozen=True)
class PeerSource:
    folder: str  # under the peers directory
    repository: str  # where to clone it from
    build: Callable[[str], Peer]


@contextlib.contextmanager
def importable(folder: str) -> Iterator[None]:
    """``folder`` first on ``sys.path``; the modules imported from it are forgotten afterwards, so peers with
    same-named modules (``env``, ``utils``, ``models``) do not see each other's."""
    before = set(sys.modules)
    sys.path.insert(0, folder)
    try:
        yield
    finally:
        sys.path.remove(folder)
        root = os.path.realpath(folder)
        for name in set(sys.modules) - before:
            path = getattr(sys.modules[name], "__file__", None) or ""
            if os.path.realpath(path).startswith(root):
                del sys.modules[name]


def strip_weight_norm(model: nn.Module) -> nn.Module:
    """Fold weight norm (hook-style or parametrized) into plain weights, wherever a module has it."""
    for module in model.modules():
        parametrizations = getattr(module, "parametrizations", None)
        if parametrizations is not None and "weight" in parametrizations:
            torch.nn.utils.parametrize.remove_parametrizations(module, "weight")
        elif hasattr(module, "weight_g"):
            with contextlib.suppress(ValueError):
                torch.nn.utils.remove_weight_norm(module)
    return model


def waveform(rate: int) -> Callable[[float], torch.Tensor]:
    return lambda seconds: torch.randn(1, 1, int(seconds * rate))


def mel(bands: int, rate: int, hop: int) -> Callable[[float], torch.Tensor]:
    return lambda seconds: torch.randn(1, bands, int(seconds * rate / hop))


def plain(model: nn.Module, x: torch.Tensor) -> object:
    return model(x)


def build_demucs(folder: str) -> Peer:
    with importable(folder):
        from denoiser.demucs import Demucs

        model = Demucs(hidden=48, sample_rate=16000)  # dns48, as denoiser.pretrained builds it
    return Peer("DEMUCS dns48 (facebookresearch/denoiser)", model, 16000, 16000, waveform(16000), plain)


def build_hifipp(folder: str) -> Peer:
    with importable(folder):
        import utils as their_utils

        # Their registry turns every registered class's arguments into config dataclasses, which Python
        # 3.11 refuses for mutable defaults; the model does not need them.
        their_utils.ClassRegistry.make_dataclass_from_init = lambda self, func, name, arg_keys: None
        from models.hifi import A2AHiFiPlusGeneratorV2

        model = A2AHiFiPlusGeneratorV2()  # the denoising config's generator (its defaults)
    return Peer("HiFi++ (SamsungLabs/hifi_plusplus)", model, 16000, 16000, waveform(16000), plain)


def attr_config(folder: str, path: str):
    with importable(folder):
        from env import AttrDict

        with open(os.path.join(folder, path)) as handle:
            return AttrDict(json.load(handle))


def build_hifigan(folder: str) -> Peer:
    config = attr_config(folder, "config_v1.json")
    with importable(folder):
        from models import Generator

        model = Generator(config)
    rate, hop = config.sampling_rate, config.hop_size
    return Peer("HiFi-GAN V1 (jik876/hifi-gan), mel in", model, rate, rate, mel(80, rate, hop), plain)


def build_bigvgan(folder: str) -> Peer:
    config = attr_config(folder, "configs/bigvgan_v2_44khz_128band_256x.json")
    with importable(folder):
        from bigvgan import BigVGAN

        model = BigVGAN(config, use_cuda_kernel=False)
    rate, hop = config.sampling_rate, config.hop_size
    label = "BigVGAN v2 44 kHz 128-band 256x (NVIDIA/BigVGAN), mel in"
    return Peer(label, model, rate, rate, mel(config.num_mels, rate, hop), plain)


def build_dac(folder: str) -> Peer:
    from gan_enhance._compat import patch

    patch()  # audiotools imports torchaudio, whose native library needs our patch with this torch
    with importable(folder):
        from dac.model import DAC

        model = DAC()  # the 44.1 kHz model's architecture
    return Peer(
        "DAC 44 kHz encode + decode (descriptinc/descript-audio-codec)",
        model,
        44100,
        44100,
        waveform(44100),
        lambda model, x: model(x, 44100),
    )


PEERS = {
    "demucs": PeerSource("denoiser", "https://github.com/facebookresearch/denoiser", build_demucs),
    "hifipp": PeerSource("hifi_plusplus", "https://github.com/SamsungLabs/hifi_plusplus", build_hifipp),
    "hifigan": PeerSource("hifi-gan", "https://github.com/jik876/hifi-gan", build_hifigan),
    "bigvgan": PeerSource("BigVGAN", "https://github.com/NVIDIA/BigVGAN", build_bigvgan),
    "dac": PeerSource(
        "descript-audio-codec", "https://github.com/descriptinc/descript-audio-codec", build_dac
    ),
}


def load_peers(directory: str, device: str) -> list[Peer]:
    """Every peer found under ``directory``, ready to time; one line on stderr for each one left out."""
    peers = []
    for name, source in PEERS.items():
        folder = os.path.join(directory, source.folder)
        if not os.path.isdir(folder):
            print(f"peer {name}: no {folder} (git clone {source.repository} {folder})", file=sys.stderr)
            continue
        try:
            peer = source.build(folder)
        except Exception as error:  # their code, their dependencies: report and go on
            print(
                f"peer {name}: cannot build from {folder}: {type(error).__name__}: {error}", file=sys.stderr
            )
            continue
        peer.model = strip_weight_norm(peer.model).eval().to(device)
        peers.append(peer)
    return peers
