"""Task presets: which degradations, with which probabilities, at which input and output rates.

Plain data, importable without numpy or the degradation code, so ``gan-enhance preprocess --help`` can
list the tasks at once; :func:`gan_enhance.data.tasks.build_task` turns a preset into a chain.
"""

from __future__ import annotations

# Noise: with noise folders, 30% of noisy items get synthetic coloured noise instead of a recording. Measured
# on benchmarks/learning.py (held-out speakers and noise files, 30 min each): +1.46 dB SI-SDR (p 0.003)
# over recordings alone, PESQ and STOI unchanged.
SYNTHETIC_NOISE_SHARE = 0.3
# That synthetic noise has random spectra (a random tilt and a random smooth envelope: AddNoise's colour
# "shaped"), not three fixed slopes (white, pink, brown). Measured the same way, 45 min each: SI-SDR +0.68 dB
# (p 0.006), PESQ +0.071 (p 0.005), STOI unchanged. Without noise folders every noisy item gets it.
SYNTHETIC_NOISE_COLORS = ["shaped"]
SYNTHETIC_NOISE = {"synthetic_prob": SYNTHETIC_NOISE_SHARE, "colors": SYNTHETIC_NOISE_COLORS}
# No preset changes the input's level on its own (the ``Gain`` step): a model can only undo such a change
# by outputting one fixed level. Levels vary on both sides of a pair instead (``CleanSource.target_level_db``).

PRESETS: dict[str, dict] = {
    "denoise": {
        "rates": (16000, 16000),
        "steps": [
            ("AddNoise", {"snr_db": [-5.0, 20.0], "prob": 1.0, **SYNTHETIC_NOISE}),
        ],
    },
    "dereverb": {
        "rates": (16000, 16000),
        "steps": [
            ("Reverb", {"rt60": [0.2, 1.5], "prob": 1.0}),
            ("AddNoise", {"snr_db": [20.0, 40.0], "prob": 0.3, **SYNTHETIC_NOISE}),
        ],
    },
    # 48 kHz targets from 16 kHz inputs: the dataset resamples the degraded signal to 16 kHz; a further
    # random band limit below 8 kHz teaches the model inputs that were narrower than their rate.
    "bandwidth_extension": {
        "rates": (16000, 48000),
        "steps": [
            ("BandLimit", {"cutoff_hz": [3000.0, 7800.0], "prob": 0.5}),
            ("Codec", {"prob": 0.1}),
        ],
    },
    # Everything, in the order a recording meets it: the room, the noise in it, the microphone, processing,
    # the converter's clipping, and transmission (band limit, codec).
    "restoration": {
        "rates": (16000, 16000),
        "steps": [
            ("Reverb", {"prob": 0.4}),
            ("AddNoise", {"snr_db": [-5.0, 25.0], "prob": 0.6, **SYNTHETIC_NOISE}),
            ("Equalizer", {"prob": 0.4}),
            ("PitchShift", {"prob": 0.1}),
            ("Clipping", {"prob": 0.2}),
            ("BandLimit", {"cutoff_hz": [2000.0, 7500.0], "prob": 0.4}),
            ("Codec", {"prob": 0.3}),
        ],
    },
    "pitch_shift": {
        "rates": (16000, 16000),
        "steps": [("PitchShift", {"semitones": [-6.0, 6.0], "prob": 1.0})],
    },
}
TASK_NAMES = tuple(PRESETS)

__all__ = ["PRESETS", "TASK_NAMES"]
