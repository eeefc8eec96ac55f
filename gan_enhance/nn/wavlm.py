"""A frozen WavLM (transformers) loaded from a hub id or a local folder.

Used as a feature network: by the FINALLY-style conditioning of the ``hifipp`` generator and by the WavLM
feature loss. The model is always frozen (no gradients to its weights) and kept in eval mode, so dropout
never acts on it, whatever mode its parent module is in.

Where a model comes from is decided before any weight is read (:func:`locate_wavlm`): a folder written by
``save_pretrained``, a hub id already in the local cache (loaded from there, no network), or a hub id to
download. Offline (``HF_HUB_OFFLINE=1``) or with the hub unreachable, a model that is not cached is a
one-line :class:`~gan_enhance.errors.ConfigError` at once, not a failure after minutes of retries.
:func:`verify_wavlm` proves a located model loadable cheaply (config parsed, weight headers read).
"""

from __future__ import annotations

import json
import os
import re
import socket
import threading
from dataclasses import dataclass
from urllib.parse import urlparse

import torch
from torch import nn

from gan_enhance.errors import ConfigError

WAVLM_SAMPLE_RATE = 16000
CONFIG_FILE = "config.json"
# Weight files of a save_pretrained folder, in the order transformers looks for them.
WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
DEFAULT_ENDPOINT = "https://huggingface.co"
# Seconds the reachability probe waits for the hub before calling it unreachable.
PROBE_SECONDS = 5.0
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
TRUE_VALUES = ("1", "ON", "YES", "TRUE")


@dataclass(frozen=True)
class WavLMSource:
    """Where a WavLM loads from.

    Attributes
    ----------
    name : str
        The hub id or folder as configured.
    kind : str
        ``"folder"`` (a local folder), ``"cache"`` (a hub id in the local cache) or ``"hub"`` (to download).
    folder : str
        The folder that holds config and weights (empty for ``"hub"``).
    """

    name: str
    kind: str
    folder: str = ""

    def describe(self) -> str:
        """A few words for the log: where the model will be read from."""
        if self.kind == "folder":
            return f"local folder {self.folder}"
        if self.kind == "cache":
            return f"hub id in the local cache ({self.folder})"
        return f"hub id, downloaded from {hub_endpoint()} on first use"


def hub_offline() -> bool:
    """True when the user asked for offline mode (``HF_HUB_OFFLINE`` or ``TRANSFORMERS_OFFLINE``), read
    now rather than at import, so a setting made after ``import huggingface_hub`` counts."""
    return any(
        os.environ.get(name, "").upper() in TRUE_VALUES for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


def hub_endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "").rstrip("/") or DEFAULT_ENDPOINT


def hub_cache_dir() -> str:
    """The hub cache folder as huggingface_hub resolves it, read from the environment now."""
    for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(name):
            return os.path.expanduser(os.environ[name])
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "huggingface"
    )
    return os.path.join(os.path.expanduser(home), "hub")


def hub_reachable(timeout: float = PROBE_SECONDS) -> bool:
    """Whether a TCP connection to the hub endpoint opens within ``timeout`` seconds.

    Run in a daemon thread so a name lookup that hangs cannot hold the caller longer than ``timeout``.
    """
    url = urlparse(hub_endpoint())
    host = url.hostname or ""
    port = url.port or (443 if url.scheme == "https" else 80)
    result: list[bool] = []

    def probe() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(result and result[0])


def _looks_like_path(name: str) -> bool:
    """A name that cannot be a hub id (``org/name``) is meant as a folder."""
    return not HUB_ID.match(name) or name.startswith((".", "~"))


def _folder_problem(folder: str) -> str:
    """What a ``save_pretrained`` folder lacks ("" when config and a weight file are there)."""
    if not os.path.isfile(os.path.join(folder, CONFIG_FILE)):
        return f"no {CONFIG_FILE}"
    if not any(os.path.isfile(os.path.join(folder, name)) for name in WEIGHT_FILES):
        return f"no weights ({' or '.join(WEIGHT_FILES[::2])})"
    return ""


def _cached_snapshot(repo_id: str) -> str:
    """The cache snapshot folder holding ``repo_id``'s config and weights, or "" when not cached."""
    from huggingface_hub import try_to_load_from_cache

    cache = hub_cache_dir()
    config = try_to_load_from_cache(repo_id, CONFIG_FILE, cache_dir=cache)
    if not isinstance(config, str):
        return ""
    for name in WEIGHT_FILES:
        if isinstance(try_to_load_from_cache(repo_id, name, cache_dir=cache), str):
            return os.path.dirname(config)
    return ""


def locate_wavlm(
    name_or_path: str, key: str = "WavLM model", hint: str = "", probe: bool = True
) -> WavLMSource:
    """Decide where ``name_or_path`` loads from, reading no weights and waiting on no download.

    Parameters
    ----------
    name_or_path : str
        A hub id (``"microsoft/wavlm-large"``) or a folder written by ``save_pretrained``.
    key : str
        The config key that named the model, for the error message.
    hint : str
        What the user can do instead (appended to the error message).
    probe : bool
        For a hub id that is not cached, check that the hub answers (at most ``PROBE_SECONDS``).

    Raises
    ------
    ConfigError
        One line naming ``key``: an empty name, a folder without config or weights, or a hub id that is
        not cached while offline or with the hub unreachable.
    """
    hint = f"; {hint}" if hint else ""
    if not name_or_path:
        raise ConfigError(f"{key} is empty: give a hub id such as 'microsoft/wavlm-large' or a folder{hint}")
    if os.path.isdir(name_or_path):
        problem = _folder_problem(name_or_path)
        if problem:
            raise ConfigError(
                f"{key}: folder {name_or_path} has {problem}; give a folder written by save_pretrained{hint}"
            )
        return WavLMSource(name_or_path, "folder", os.path.abspath(name_or_path))
    if _looks_like_path(name_or_path):
        raise ConfigError(f"{key}: {name_or_path} is not a folder (and not a hub id){hint}")
    snapshot = _cached_snapshot(name_or_path)
    if snapshot:
        return WavLMSource(name_or_path, "cache", snapshot)
    if hub_offline():
        raise ConfigError(
            f"{key}: cannot load {name_or_path!r} (offline mode, HF_HUB_OFFLINE, and not in the local cache "
            f"{hub_cache_dir()}){hint}"
        )
    if probe and not hub_reachable():
        raise ConfigError(
            f"{key}: cannot load {name_or_path!r} (no network: {hub_endpoint()} does not answer, and not in "
            f"the local cache {hub_cache_dir()}){hint}"
        )
    return WavLMSource(name_or_path, "hub")


def verify_wavlm(source: WavLMSource, key: str = "WavLM model") -> None:
    """Prove a located local model loadable without loading it: the config parses as a WavLM config and
    every weight file's header (safetensors) or index (PyTorch zip, memory-mapped) reads.

    Raises
    ------
    ConfigError
        One line naming ``key`` and the file that does not read.
    """
    if source.kind == "hub":
        return
    WavLMConfig, _ = _transformers_wavlm()
    try:
        config = WavLMConfig.from_pretrained(source.folder, local_files_only=True)
    except (OSError, ValueError) as error:
        raise ConfigError(
            f"{key}: {source.folder}/{CONFIG_FILE} does not read: {_first_line(error)}"
        ) from None
    if config.model_type != "wavlm":
        raise ConfigError(f"{key}: {source.folder} holds a {config.model_type!r} model, not WavLM")
    for path in _weight_paths(source.folder):
        try:
            if path.endswith(".safetensors"):
                from safetensors import safe_open

                with safe_open(path, framework="pt") as handle:
                    names = list(handle.keys())
            else:
                names = list(torch.load(path, map_location="cpu", weights_only=True, mmap=True))
        except Exception as error:  # safetensors, zip and pickle readers raise many types for bad files
            raise ConfigError(f"{key}: weight file {path} does not read: {_first_line(error)}") from None
        if not names:
            raise ConfigError(f"{key}: weight file {path} holds no tensors")


def _weight_paths(folder: str) -> list[str]:
    """The weight files transformers would read from ``folder`` (the shards an index names)."""
    for name in WEIGHT_FILES:
        path = os.path.join(folder, name)
        if not os.path.isfile(path):
            continue
        if not name.endswith(".index.json"):
            return [path]
        try:
            with open(path, encoding="utf-8") as handle:
                shards = sorted(set(json.load(handle)["weight_map"].values()))
        except (OSError, ValueError, KeyError) as error:
            raise ConfigError(f"weight index {path} does not read: {_first_line(error)}") from None
        return [os.path.join(folder, shard) for shard in shards]
    return []


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _transformers_wavlm():
    """``(WavLMConfig, WavLMModel)``; transformers may import torchaudio, so patch it first."""
    from gan_enhance._compat import patch

    patch()
    from transformers import WavLMConfig, WavLMModel

    return WavLMConfig, WavLMModel


def load_wavlm(name_or_path: str, key: str = "WavLM model", hint: str = "") -> nn.Module:
    """Load a pretrained ``WavLMModel`` through ``from_pretrained``, frozen and in eval mode.

    A cached hub id loads from its cache folder (no network); see :func:`locate_wavlm`.

    Parameters
    ----------
    name_or_path : str
        A hugging-face hub id (``"microsoft/wavlm-large"``) or a folder written by ``save_pretrained``.
    key, hint : str
        The config key naming the model and what the user can do instead, for error messages.

    Raises
    ------
    ConfigError
        One line naming ``key`` when the model cannot be loaded (offline and not cached, wrong id, not a
        WavLM folder).
    """
    _, WavLMModel = _transformers_wavlm()
    source = locate_wavlm(name_or_path, key, hint)
    try:
        model = WavLMModel.from_pretrained(source.folder or source.name)
    except (OSError, ValueError, KeyError) as error:
        tail = f"; {hint}" if hint else ""
        raise ConfigError(f"{key}: cannot load WavLM {name_or_path!r}: {_first_line(error)}{tail}") from None
    return freeze(model)


def wavlm_from_config(config: dict) -> nn.Module:
    """A ``WavLMModel`` with the architecture of ``config`` (a ``WavLMConfig.to_dict()``), weights random.

    Rebuilds the frozen network of a saved generator without the hub: its weights come from the
    generator's state dict afterwards.
    """
    WavLMConfig, WavLMModel = _transformers_wavlm()
    return freeze(WavLMModel(WavLMConfig.from_dict(config)))


def wavlm_config_json(model: nn.Module) -> str:
    """The model's architecture as a JSON string (plain, so it can travel as a constructor argument)."""
    return json.dumps(model.config.to_diff_dict(), sort_keys=True)


def freeze(model: nn.Module) -> nn.Module:
    model.eval()
    model.requires_grad_(False)
    return model


class FrozenWavLM(nn.Module):
    """WavLM features of 16 kHz audio; the wrapped model stays frozen and in eval mode.

    Parameters
    ----------
    model : nn.Module
        A ``WavLMModel`` (from :func:`load_wavlm` or :func:`wavlm_from_config`).
    layer : int
        0: the output of the convolutional feature encoder (local context: 400-sample receptive field,
        320-sample hop); ``k >= 1``: the output of transformer layer ``k``; ``-1``: the last layer.
        Transformer layers attend over the whole input (global context).
    """

    hop = 320
    window = 400

    def __init__(self, model: nn.Module, layer: int = -1):
        super().__init__()
        self.model = freeze(model)
        num_layers = model.config.num_hidden_layers
        if not -1 <= layer <= num_layers:
            raise ConfigError(f"WavLM layer {layer} does not exist: use -1, 0 or 1..{num_layers}")
        self.layer = layer
        self.dim = model.config.conv_dim[-1] if layer == 0 else model.config.hidden_size

    @property
    def is_local(self) -> bool:
        """True when each feature frame depends only on its own 400-sample window."""
        return self.layer == 0 and self.model.config.feat_extract_norm == "layer"

    def train(self, mode: bool = True) -> FrozenWavLM:
        super().train(mode)
        self.model.eval()
        return self

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        """Features of ``wav`` (B, 1, T) at 16 kHz -> (B, dim, floor((T - 400) / 320) + 1)."""
        wav = wav[:, 0]
        if self.layer == 0:
            return self.model.feature_extractor(wav)
        outputs = self.model(wav, output_hidden_states=True)
        return outputs.hidden_states[self.layer].transpose(1, 2)
