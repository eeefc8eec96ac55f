"""Shared fixtures. Tests run on CPU, offline, and never write into the source tree."""

from __future__ import annotations

import os

import pytest
import torch

torch.set_num_threads(int(os.environ.get("GAN_ENHANCE_TEST_THREADS", "2")))

SHARED_DATA = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data")


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


@pytest.fixture(scope="session")
def tiny_wavlm_dir(tmp_path_factory) -> str:
    """A tiny random WavLM saved with ``save_pretrained``, to load back through the real loading path."""
    from gan_enhance._compat import patch

    patch()  # transformers imports torchaudio, which needs the patch on CPU-only torch
    from transformers import WavLMConfig, WavLMModel

    torch.manual_seed(0)
    config = WavLMConfig(
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=128,
        conv_dim=(32,) * 7,
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
        num_buckets=32,
        max_bucket_distance=100,
    )
    folder = tmp_path_factory.mktemp("tiny_wavlm")
    WavLMModel(config).save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="session")
def shared_data_dir() -> str:
    """../shared/data when present (real speech, noise, RIRs, music); tests using it skip otherwise."""
    path = os.path.abspath(SHARED_DATA)
    if not os.path.isdir(path):
        pytest.skip("../shared/data is not present")
    return path
