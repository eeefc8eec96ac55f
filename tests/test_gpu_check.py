"""The GPU check (``benchmarks/gpu_check.py``): every check passes on CUDA; the same flow runs on CPU."""

from __future__ import annotations

import importlib.util
import os
import sys

import pytest

SCRIPT = os.path.join(os.path.dirname(__file__), "..", "benchmarks", "gpu_check.py")


def gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.mark.gpu
def test_every_gpu_check_passes_on_cuda(capsys):
    """fit (bf16 + compile, logging, validation, best/latest, resume, export, chunked enhance), torchrun with
    one process on NCCL, and fp16 with a scaler per side."""
    assert gpu_check().main(["--device", "cuda"]) == 0, capsys.readouterr().out


@pytest.mark.slow
def test_the_gpu_check_flow_runs_on_cpu(capsys):
    code = gpu_check().main(["--device", "cpu", "--steps", "3", "--segment", "4096"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "| fit | ok |" in out and "| torchrun | ok |" in out and "process group gloo" in out
