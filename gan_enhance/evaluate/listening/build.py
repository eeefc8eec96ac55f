"""Build a self-contained, blind listening-test folder (``index.html`` plus its audio) and its key.

The page needs no server: open ``index.html`` from disk (or copy the folder anywhere); the audio is
referenced by relative paths under ``audio/``. Two tests share the same stimuli:

- MUSHRA (ITU-R BS.1534 style): per trial, an open reference and, in a random order drawn from the
  seed, the systems, the hidden reference and a low anchor (the reference low-passed at 3.5 kHz),
  optionally a mid anchor (low-passed at 7 kHz, as BS.1534-3 recommends), each rated on a 0-100 slider;
- A/B preference: two systems on the same item, sides and order drawn from the seed; answer A, B or no
  preference.

Blindness: the served folder names nothing. Stimuli are named by random tokens, the page holds only
those tokens, trial numbers and the reference's waveform outline, and every stimulus is written with its
own dither (so the hidden reference is not a byte copy of the open one). What each token is (system,
item) is written to a separate key file (:mod:`.key`) that the experimenter keeps away from listeners;
``gan-enhance listen-results --key`` joins it to the answers. Without an explicit seed a secret one is
drawn and recorded in the key (the same seed rebuilds the same test, so a known seed is not blind).

All stimuli of a trial are at the reference's sample rate, cut to a common length and, by default,
normalised to the same integrated loudness (a louder version of a sound is often preferred for that
alone).
"""

from __future__ import annotations

import itertools
import math
import os
import random
import re
import secrets
from dataclasses import dataclass

import numpy as np

from gan_enhance.errors import ConfigError, DataError

REFERENCE = "reference"
ANCHOR = "anchor"
MID_ANCHOR = "mid_anchor"
ANCHOR_ORDER = 8
# Peak ceiling after loudness normalisation; a trial whose loudest stimulus would exceed it is scaled
# down as a whole, keeping the stimuli's loudness equal.
PEAK_CEILING = 0.99
PAGE_FILE = "index.html"
LEGACY_DESCRIPTION = "test.json"  # written beside the page by version 1, naming every system
AUDIO_FOLDER = "audio"
AUDIO_SUBTYPE = "PCM_16"
LSB = 1 / 32768  # one step of 16-bit audio as soundfile scales it
WAVEFORM_POINTS = 400  # columns of the reference outline drawn on the page
TOKEN_HEX = 12  # 48 random bits per stimulus name


@dataclass
class ListeningSettings:
    """How the test is built.

    Attributes
    ----------
    trials : int
        Number of items (drawn with the seed); 0 uses every item the reference and all systems share.
    seed : int or None
        Seeds the item choice, the condition and A/B orders and the stimulus names; None draws a secret
        seed (recorded in the key file).
    anchor_hz : float
        Cutoff of the low anchor (0 leaves the anchor out).
    mid_anchor_hz : float
        Cutoff of the mid anchor (BS.1534-3: 7000); 0 leaves it out.
    loudness_lufs : float
        Target integrated loudness of every stimulus; NaN keeps the levels as they are.
    max_seconds : float
        Cut stimuli to this length (0 keeps the whole file).
    ab_pairs : tuple[str, ...]
        ``"A:B"`` system pairs for the A/B test; empty means every pair of systems; ``("none",)`` skips it.
    title : str
        Shown at the top of the page.
    """

    trials: int = 0
    seed: int | None = None
    anchor_hz: float = 3500.0
    mid_anchor_hz: float = 0.0
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


def waveform_outline(wav: np.ndarray, points: int = WAVEFORM_POINTS) -> list[int]:
    """Peak magnitude of ``wav`` ``(C, T)`` in ``points`` equal columns, as integers 0-100 of its peak."""
    mono = np.abs(wav).max(axis=0)
    columns = [part.max() if part.size else 0.0 for part in np.array_split(mono, points)]
    peak = max(max(columns), 1e-9)
    return [int(round(100 * value / peak)) for value in columns]


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


def _dithered(wav: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Triangular (TPDF) dither of one 16-bit step: no two stimulus files are byte copies."""
    noise = (rng.random(wav.shape) - rng.random(wav.shape)) * LSB
    return (wav + noise).astype(np.float32)


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


class _Tokens:
    """Distinct random hex names drawn from the seed."""

    def __init__(self, seed: int):
        self._rng = random.Random(f"gan_enhance.listening.names:{seed}")
        self._used: set[str] = set()

    def __call__(self) -> str:
        while True:
            token = f"{self._rng.getrandbits(4 * TOKEN_HEX):0{TOKEN_HEX}x}"
            if token not in self._used:
                self._used.add(token)
                return token


def _check_out_dir(out_dir: str) -> None:
    """Create ``out_dir``; an existing one must be empty or hold an earlier test (which is replaced)."""
    from gan_enhance.evaluate.listening.page import GENERATOR_MARK

    os.makedirs(out_dir, exist_ok=True)
    names = os.listdir(out_dir)
    ours = False
    if PAGE_FILE in names:
        with open(os.path.join(out_dir, PAGE_FILE), encoding="utf-8", errors="replace") as handle:
            ours = GENERATOR_MARK in handle.read()
    if names and not ours:
        raise ConfigError(
            f"'{out_dir}' already holds files that are not a listening test; choose a new folder"
        )


def _remove_stale(out_dir: str, keep: set[str]) -> None:
    """Remove an earlier build's stimuli (other names) and the unblinded ``test.json`` of older pages."""
    for folder, _, names in os.walk(os.path.join(out_dir, AUDIO_FOLDER), topdown=False):
        for name in names:
            if os.path.relpath(os.path.join(folder, name), out_dir).replace(os.sep, "/") not in keep:
                os.remove(os.path.join(folder, name))
        if not os.listdir(folder):
            os.rmdir(folder)
    legacy = os.path.join(out_dir, LEGACY_DESCRIPTION)
    if os.path.isfile(legacy):
        os.remove(legacy)


def build_listening_test(
    reference_dir: str,
    systems: dict[str, str],
    out_dir: str,
    settings: ListeningSettings = ListeningSettings(),
    key_path: str = "",
) -> tuple[str, str]:
    """Write the page and its stimuli into ``out_dir`` and the key beside it; return both paths.

    Parameters
    ----------
    reference_dir : str
        Clean reference files.
    systems : dict[str, str]
        System name -> folder of its outputs (matched to the references by relative path without
        extension).
    out_dir : str
        The folder served to listeners: created if missing; an earlier test there is replaced (its page
        keeps working until the new one is complete).
    settings : ListeningSettings
    key_path : str
        Where the key goes; default ``<out_dir>-key.json`` beside the folder. Never inside ``out_dir``.

    Returns
    -------
    tuple[str, str]
        The page's path and the key file's path.
    """
    from gan_enhance.atomic import write_text
    from gan_enhance.audio import audio_info, write_audio
    from gan_enhance.evaluate.listening.key import default_key_path, write_key
    from gan_enhance.evaluate.listening.page import render_page
    from gan_enhance.evaluate.runner import matched_keys

    reserved = {REFERENCE, ANCHOR, MID_ANCHOR} & set(systems)
    if reserved:
        raise ConfigError(
            f"system name(s) {', '.join(sorted(reserved))} are reserved for the hidden reference/anchors"
        )
    if not systems:
        raise ConfigError("a listening test needs at least one system")
    for name in systems:
        if re.search(rf"(?<![0-9a-z]){re.escape(name.lower())}(?![0-9a-z])", settings.title.lower()):
            raise ConfigError(f"the title '{settings.title}' names system '{name}'; a blind page must not")
    key_path = key_path or default_key_path(out_dir)
    served = os.path.abspath(out_dir) + os.sep
    if os.path.abspath(key_path).startswith(served):
        raise ConfigError(f"key file '{key_path}' is inside the served folder '{out_dir}'; put it elsewhere")
    references, outputs = matched_keys(reference_dir, list(systems.values()))
    seed = secrets.randbits(63) if settings.seed is None else settings.seed
    rng, token = random.Random(seed), _Tokens(seed)
    keys = list(references)
    if settings.trials:
        if settings.trials > len(keys):
            raise DataError(
                f"{settings.trials} trials asked for, but only {len(keys)} items are shared by all systems"
            )
        keys = sorted(rng.sample(keys, settings.trials))
    pairs = _ab_pairs(list(systems), settings.ab_pairs)
    _check_out_dir(out_dir)
    test_id = f"{_slug(settings.title)}-{token()[:8]}"
    page = {"title": settings.title, "test_id": test_id, "mushra": [], "ab": []}
    key = {"test_id": test_id, "title": settings.title, "seed": seed, "page": os.path.abspath(out_dir)}
    key.update(reference_dir=reference_dir, systems=dict(systems), mushra={}, ab={})
    pair_jobs = []
    for index, item in enumerate(keys, start=1):
        trial = f"t{index:02d}"
        info = audio_info(references[item])
        rate = info.sample_rate
        stimuli = {REFERENCE: _load(references[item], rate, info.channels)}
        stimuli.update({name: _load(o[item], rate, info.channels) for name, o in zip(systems, outputs)})
        for name, cutoff in ((ANCHOR, settings.anchor_hz), (MID_ANCHOR, settings.mid_anchor_hz)):
            if cutoff:
                stimuli[name] = low_pass(stimuli[REFERENCE], rate, cutoff)
        frames = min(wav.shape[-1] for wav in stimuli.values())
        if settings.max_seconds:
            frames = min(frames, int(settings.max_seconds * rate))
        stimuli = _normalise({n: w[:, :frames] for n, w in stimuli.items()}, rate, settings.loudness_lufs)
        noise = np.random.default_rng([seed % 2**63, index])
        order = list(stimuli)
        rng.shuffle(order)
        reference_src = f"{AUDIO_FOLDER}/{token()}.wav"
        write_audio(
            os.path.join(out_dir, reference_src), _dithered(stimuli[REFERENCE], noise), rate, AUDIO_SUBTYPE
        )
        src_of, condition_of = {}, {}
        for name in order:
            src_of[name], condition_of[name] = f"{AUDIO_FOLDER}/{token()}.wav", token()
            write_audio(
                os.path.join(out_dir, src_of[name]), _dithered(stimuli[name], noise), rate, AUDIO_SUBTYPE
            )
        page["mushra"].append(
            {
                "trial": trial,
                "reference": reference_src,
                "seconds": round(frames / rate, 4),
                "waveform": waveform_outline(stimuli[REFERENCE]),
                "conditions": [{"id": condition_of[name], "src": src_of[name]} for name in order],
            }
        )
        key["mushra"][trial] = {
            "item": item,
            "conditions": {condition_of[name]: name for name in order},
            "files": {reference_src: "open reference"} | {src_of[name]: name for name in order},
        }
        for a, b in pairs:
            left, right = (a, b) if rng.random() < 0.5 else (b, a)
            pair_jobs.append((trial, item, left, right, src_of[left], src_of[right]))
    rng.shuffle(pair_jobs)  # in a random order, not item by item
    for number, (trial, item, left, right, left_src, right_src) in enumerate(pair_jobs, start=1):
        pair = f"p{number:02d}"
        page["ab"].append({"pair": pair, "a": left_src, "b": right_src, "waveform_of": trial})
        key["ab"][pair] = {"item": item, "a": left, "b": right}
    write_key(key_path, key)
    page_path = os.path.join(out_dir, PAGE_FILE)
    write_text(page_path, render_page(page))  # last: the page exists only once its audio and key do
    _remove_stale(
        out_dir,
        {t["reference"] for t in page["mushra"]}
        | {c["src"] for t in page["mushra"] for c in t["conditions"]},
    )
    return page_path, key_path


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in text.lower()).strip("-") or "test"
