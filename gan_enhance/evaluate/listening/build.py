"""Build a self-contained listening-test folder: ``index.html`` plus the audio it plays.

The page needs no server: open ``index.html`` from disk (or copy the folder anywhere); the audio is
referenced by relative paths under ``audio/``. Two tests share the same stimuli:

- MUSHRA (ITU-R BS.1534 style): per trial, an open reference and, in a random order drawn from the
  seed, the systems, the hidden reference and a low anchor (the reference low-passed at 3.5 kHz),
  each rated on a 0-100 slider;
- A/B preference: two systems on the same item, sides drawn from the seed; answer A, B or no preference.

All stimuli of a trial are at the reference's sample rate, cut to a common length and, by default,
normalised to the same integrated loudness (a louder version of a sound is often preferred for that
alone). Condition files are named ``c1 .. cK`` in presentation order, so their names do not reveal the
system.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import random
from dataclasses import dataclass

import numpy as np

from gan_enhance.errors import ConfigError, DataError

FORMAT = "gan_enhance.listening_test"
VERSION = 1
REFERENCE = "reference"
ANCHOR = "anchor"
ANCHOR_ORDER = 8
# Peak ceiling after loudness normalisation; a trial whose loudest stimulus would exceed it is scaled
# down as a whole, keeping the stimuli's loudness equal.
PEAK_CEILING = 0.99
PAGE_FILE = "index.html"
AUDIO_SUBTYPE = "PCM_16"


@dataclass
class ListeningSettings:
    """How the test is built.

    Attributes
    ----------
    trials : int
        Number of items (drawn with the seed); 0 uses every item the reference and all systems share.
    seed : int
        Seeds the item choice, the condition order of each trial and the A/B sides.
    anchor_hz : float
        Cutoff of the low anchor (0 leaves the anchor out).
    loudness_lufs : float
        Target integrated loudness of every stimulus; NaN keeps the levels as they are.
    max_seconds : float
        Cut stimuli to this length (0 keeps the whole file).
    ab_pairs : list[str]
        ``"A:B"`` system pairs for the A/B test; empty means every pair of systems; ``["none"]`` skips it.
    title : str
        Shown at the top of the page.
    """

    trials: int = 0
    seed: int = 0
    anchor_hz: float = 3500.0
    loudness_lufs: float = -23.0
    max_seconds: float = 0.0
    ab_pairs: tuple[str, ...] = ()
    title: str = "Listening test"


def low_pass(wav: np.ndarray, sample_rate: int, cutoff_hz: float) -> np.ndarray:
    """Zero-phase Butterworth low-pass (the MUSHRA low anchor), ``wav`` shaped ``(C, T)``."""
    import scipy.signal

    if cutoff_hz >= sample_rate / 2:
        raise ConfigError(
            f"anchor cutoff {cutoff_hz} Hz is not below the Nyquist frequency of {sample_rate} Hz"
        )
    sos = scipy.signal.butter(ANCHOR_ORDER, cutoff_hz, fs=sample_rate, output="sos")
    return scipy.signal.sosfiltfilt(sos, wav, axis=-1).astype(np.float32)


def _normalise(stimuli: dict[str, np.ndarray], sample_rate: int, target_lufs: float) -> dict[str, np.ndarray]:
    from gan_enhance.evaluate.metrics import integrated_loudness

    if not math.isnan(target_lufs):
        for name, wav in stimuli.items():
            level = integrated_loudness(wav.mean(axis=0), sample_rate)
            if math.isfinite(level):
                stimuli[name] = wav * 10 ** ((target_lufs - level) / 20)
    peak = max(float(np.abs(wav).max()) for wav in stimuli.values())
    if peak > PEAK_CEILING:
        stimuli = {name: wav * (PEAK_CEILING / peak) for name, wav in stimuli.items()}
    return stimuli


def _load(path: str, rate: int, channels: int) -> np.ndarray:
    """A file as ``(channels, T)`` float32 at ``rate`` (a channel-count mismatch is mixed and spread)."""
    from gan_enhance.audio import read_audio

    wav, _ = read_audio(path, sample_rate=rate)
    if wav.shape[0] != channels:
        wav = wav.mean(dim=0, keepdim=True).expand(channels, -1)
    return wav.numpy()


def _ab_pairs(systems: list[str], requested: tuple[str, ...]) -> list[tuple[str, str]]:
    if list(requested) == ["none"]:
        return []
    if not requested:
        return list(itertools.combinations(systems, 2))
    pairs = []
    for text in requested:
        a, sep, b = text.partition(":")
        if not sep or a not in systems or b not in systems or a == b:
            raise ConfigError(
                f"A/B pair '{text}' must be SYSTEM:SYSTEM of two different systems among {systems}"
            )
        pairs.append((a, b))
    return pairs


def build_listening_test(
    reference_dir: str,
    systems: dict[str, str],
    out_dir: str,
    settings: ListeningSettings = ListeningSettings(),
) -> str:
    """Write the page and its stimuli into ``out_dir``; return the page's path.

    Parameters
    ----------
    reference_dir : str
        Clean reference files.
    systems : dict[str, str]
        System name -> folder of its outputs (matched to the references by relative path without
        extension).
    out_dir : str
        Created if missing; ``index.html`` and ``audio/`` are (re)written.
    settings : ListeningSettings
    """
    from gan_enhance.audio import audio_info, write_audio
    from gan_enhance.evaluate.listening.page import render_page
    from gan_enhance.evaluate.runner import matched_keys

    reserved = {REFERENCE, ANCHOR} & set(systems)
    if reserved:
        raise ConfigError(
            f"system name(s) {', '.join(reserved)} are reserved for the hidden reference/anchor"
        )
    if not systems:
        raise ConfigError("a listening test needs at least one system")
    references, outputs = matched_keys(reference_dir, list(systems.values()))
    rng = random.Random(settings.seed)
    keys = list(references)
    if settings.trials:
        if settings.trials > len(keys):
            raise DataError(
                f"{settings.trials} trials asked for, but only {len(keys)} items are shared by all systems"
            )
        keys = sorted(rng.sample(keys, settings.trials))
    pairs = _ab_pairs(list(systems), settings.ab_pairs)
    config = {"format": FORMAT, "version": VERSION, "title": settings.title, "seed": settings.seed}
    config["test_id"] = f"{_slug(settings.title)}-{settings.seed}"
    config["mushra"], config["ab"] = [], []
    for index, key in enumerate(keys, start=1):
        trial = f"t{index:02d}"
        info = audio_info(references[key])
        rate = info.sample_rate
        stimuli = {REFERENCE: _load(references[key], rate, info.channels)}
        stimuli.update({name: _load(o[key], rate, info.channels) for name, o in zip(systems, outputs)})
        if settings.anchor_hz:
            stimuli[ANCHOR] = low_pass(stimuli[REFERENCE], rate, settings.anchor_hz)
        frames = min(wav.shape[-1] for wav in stimuli.values())
        if settings.max_seconds:
            frames = min(frames, int(settings.max_seconds * rate))
        stimuli = _normalise({n: w[:, :frames] for n, w in stimuli.items()}, rate, settings.loudness_lufs)
        folder = os.path.join(out_dir, "audio", trial)
        write_audio(os.path.join(folder, "reference.wav"), stimuli[REFERENCE], rate, AUDIO_SUBTYPE)
        order = list(stimuli)
        rng.shuffle(order)
        conditions = []
        for position, name in enumerate(order, start=1):
            src = f"audio/{trial}/c{position}.wav"
            write_audio(os.path.join(out_dir, src), stimuli[name], rate, AUDIO_SUBTYPE)
            conditions.append({"id": f"c{position}", "system": name, "src": src})
        config["mushra"].append(
            {
                "trial": trial,
                "item": key,
                "reference": f"audio/{trial}/reference.wav",
                "conditions": conditions,
            }
        )
        by_system = {c["system"]: c["src"] for c in conditions}
        for a, b in pairs:
            left, right = (a, b) if rng.random() < 0.5 else (b, a)
            config["ab"].append(
                {
                    "pair": f"p{len(config['ab']) + 1:02d}",
                    "item": key,
                    "a": {"system": left, "src": by_system[left]},
                    "b": {"system": right, "src": by_system[right]},
                }
            )
    page = os.path.join(out_dir, PAGE_FILE)
    with open(page, "w", encoding="utf-8") as handle:
        handle.write(render_page(config))
    with open(os.path.join(out_dir, "test.json"), "w", encoding="utf-8") as handle:
        json.dump(config, handle, indent=1)
    return page


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in text.lower()).strip("-") or "test"
