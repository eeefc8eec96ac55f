"""Clean-audio sources, degradations, task presets, datasets, shards and the resumable loader.

Items are ``{"x": (1, T_in), "y": (1, T_out), "index": int}``: ``x`` the degraded input at the input
rate, ``y`` the clean target at the output rate (see docs/internal_api.md).
"""

from gan_enhance.data.audiotools_adapter import Audiotools
from gan_enhance.data.codecs import Codec, PitchShift
from gan_enhance.data.datasets import DegradedDataset, PairedDataset, item_state
from gan_enhance.data.loader import ResumableLoader, build_dataloader
from gan_enhance.data.noise_reverb import AddNoise, Reverb
from gan_enhance.data.shards import ShardDataset, write_shards
from gan_enhance.data.sources import CleanSource
from gan_enhance.data.spectral import BandLimit, Clipping, Equalizer, Gain
from gan_enhance.data.synthetic import synthesize_speech, write_synthetic_corpus
from gan_enhance.data.tasks import PRESETS, TASK_NAMES, Task, build_task
from gan_enhance.data.transforms import DEGRADATIONS, Choose, Compose, Degradation, build_degradation

__all__ = [
    "DEGRADATIONS",
    "PRESETS",
    "TASK_NAMES",
    "AddNoise",
    "Audiotools",
    "BandLimit",
    "Choose",
    "CleanSource",
    "Clipping",
    "Codec",
    "Compose",
    "Degradation",
    "DegradedDataset",
    "Equalizer",
    "Gain",
    "PairedDataset",
    "PitchShift",
    "ResumableLoader",
    "Reverb",
    "ShardDataset",
    "Task",
    "build_dataloader",
    "build_degradation",
    "build_task",
    "item_state",
    "synthesize_speech",
    "write_shards",
    "write_synthetic_corpus",
]
