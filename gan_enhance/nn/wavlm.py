"""A frozen WavLM (transformers) loaded from a hub id or a local folder.

Used as a feature network: by the FINALLY-style conditioning of the ``hifipp`` generator and by the WavLM
feature loss. The model is always frozen (no gradients to its weights) and kept in eval mode, so dropout
never acts on it, whatever mode its parent module is in.
"""

from __future__ import annotations

import json

import torch
from torch import nn

from gan_enhance.errors import ConfigError

WAVLM_SAMPLE_RATE = 16000


def _transformers_wavlm():
    """``(WavLMConfig, WavLMModel)``; transformers may import torchaudio, so patch it first."""
    from gan_enhance._compat import patch

    patch()
    from transformers import WavLMConfig, WavLMModel

    return WavLMConfig, WavLMModel


def load_wavlm(name_or_path: str) -> nn.Module:
    """Load a pretrained ``WavLMModel`` through ``from_pretrained``, frozen and in eval mode.

    Parameters
    ----------
    name_or_path : str
        A hugging-face hub id (``"microsoft/wavlm-large"``) or a folder written by ``save_pretrained``.

    Raises
    ------
    ConfigError
        Naming the model id when it cannot be loaded (no network, wrong id, not a WavLM folder).
    """
    _, WavLMModel = _transformers_wavlm()
    if not name_or_path:
        raise ConfigError("no WavLM model given: pass a hub id such as 'microsoft/wavlm-large' or a folder")
    try:
        model = WavLMModel.from_pretrained(name_or_path)
    except (OSError, ValueError, KeyError) as error:
        raise ConfigError(
            f"cannot load WavLM {name_or_path!r}: {error}. Pass a folder written by save_pretrained, or a hub "
            "id that is cached locally or reachable (copy the model folder over on offline machines)."
        ) from error
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
