"""Start-up cost: what the inference path and ``--help`` import, checked in fresh subprocesses.

Timings depend on the machine; the modules a code path imports do not, and they are what makes a command
start slowly (torch about 1 s, the training code and its chain, transformers, librosa/numba, matplotlib
several more). ``benchmarks/startup.py`` measures the times.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile
from test_bundle import tiny_generator

from gan_enhance.bundle import save_bundle

# Never needed to load an exported model and enhance with it (in memory or file to file).
NOT_FOR_INFERENCE = (
    "gan_enhance.train",
    "gan_enhance.data.datasets",
    "gan_enhance.data.tasks",
    "gan_enhance.data.transforms",
    "gan_enhance.losses",
    "gan_enhance.evaluate",
    "gan_enhance.models.discriminators",
    "transformers",
    "matplotlib",
    "optuna",
    "librosa",
    "numba",
    "audiotools",
    "argbind",
    "tensorboard",
    "onnxruntime",
    "scipy",
)
# Never needed to print any command's --help (train's lists argbind's keys: argbind, yaml and the binding
# module gan_enhance.train.binding are fine; the package's other modules load only on use).
NOT_FOR_HELP = ("torch", "numpy", "soundfile", *(m for m in NOT_FOR_INFERENCE if m != "argbind"))
HELP_MAY_IMPORT = ("gan_enhance.train", "gan_enhance.train.binding")


def _imported(code: str, *args: str) -> set[str]:
    """Top-level and ``gan_enhance.*`` package names imported by ``code`` run in a fresh interpreter."""
    script = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    # Run from a neutral folder so the checkout is imported as installed, as a user's process would.
    result = subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, cwd=os.path.dirname(args[0])
    )
    assert result.returncode == 0, result.stderr
    return set(json.loads(result.stdout.splitlines()[-1]))


def _offending(modules: set[str], forbidden: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if any(m == f or m.startswith(f + ".") for f in forbidden))


@pytest.mark.slow  # a fresh interpreter importing torch: about 2 s of CPU
def test_loading_an_export_and_enhancing_imports_no_training_code(tmp_path):
    save_bundle(tiny_generator("unet1d"), tmp_path / "model")
    wav = (0.1 * np.random.default_rng(0).standard_normal((3000, 2))).astype(np.float32)
    soundfile.write(tmp_path / "in.wav", wav, 8000)
    code = """
import sys
import gan_enhance
from gan_enhance.cli import main
model = gan_enhance.load_generator(sys.argv[1])
import torch
enhanced, rate = model.enhance(torch.zeros(2, 3000), 8000)
assert enhanced.shape == (2, 6000), enhanced.shape
assert main(["enhance", sys.argv[1], sys.argv[2], "-o", sys.argv[3], "--no-progress"]) == 0
"""
    modules = _imported(code, str(tmp_path / "model"), str(tmp_path / "in.wav"), str(tmp_path / "out"))
    assert os.path.isfile(tmp_path / "out" / "in.wav")
    assert "gan_enhance.bundle" in modules and "torch" in modules  # the check did run the inference path
    assert _offending(modules, NOT_FOR_INFERENCE) == []


def test_import_gan_enhance_imports_neither_torch_nor_numpy(tmp_path):
    modules = _imported("import gan_enhance; gan_enhance.__all__", str(tmp_path / "x"))
    assert _offending(modules, ("torch", "numpy", *NOT_FOR_INFERENCE)) == []


def test_every_help_imports_nothing_heavy(tmp_path):
    code = """
import contextlib, io
from gan_enhance.cli import available_commands, main
for command in [None, *available_commands()]:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):
        main(["--help"] if command is None else [command, "--help"])
"""
    modules = _imported(code, str(tmp_path / "x"))
    assert "gan_enhance.cli.preprocess" in modules and "gan_enhance.cli.enhance" in modules
    assert _offending(modules - set(HELP_MAY_IMPORT), NOT_FOR_HELP) == []


@pytest.mark.slow  # a fresh interpreter importing torch: about 2 s of CPU
def test_loading_straight_from_a_training_checkpoint_imports_no_training_code(tmp_path):
    import torch

    generator = tiny_generator("unet1d")
    checkpoint = tmp_path / "run" / "checkpoints" / "best" / "checkpoint.pt"
    checkpoint.parent.mkdir(parents=True)
    torch.save(
        {"step": 3, "generator": generator.state_dict(), "generator_config": generator.build_config},
        checkpoint,
    )
    code = """
import sys
import gan_enhance
model = gan_enhance.load_generator(sys.argv[1], tag="best")
assert model.provenance["step"] == 3, model.provenance
"""
    modules = _imported(code, str(tmp_path / "run"))
    assert "gan_enhance.checkpoint_io" in modules  # the check did read the checkpoint
    assert _offending(modules, NOT_FOR_INFERENCE) == []
