"""The main job end to end: the demo recipe and the generic folders recipe, every stage, with a few
training steps (offline: HF_HUB_OFFLINE=1, the WavLM loss off)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_demo_recipe_runs_every_stage(tmp_path):
    exp = tmp_path / "demo"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env["HF_HUB_OFFLINE"] = "1"
    validate_often = "--Trainer.valid_every 2 --Trainer.sample_every 2 --Trainer.checkpoint_every 2"
    args = ["--exp_dir", str(exp), "--steps", "4", "--train_files", "4", "--test_files", "2"]
    args += ["--train_args", validate_often]
    result = subprocess.run(
        ["bash", str(ROOT / "recipes" / "demo" / "run.sh"), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    for stage in range(1, 8):
        if stage != 2:  # shards are off by default
            assert (exp / ".done" / f"stage{stage}").exists(), f"stage {stage} left no sentinel"
    config = json.loads((exp / "model" / "config.json").read_text())
    assert (config["in_sample_rate"], config["out_sample_rate"]) == (16000, 48000)
    enhanced = sorted((exp / "enhanced").rglob("*.wav"))
    assert len(enhanced) == 2
    summary = (exp / "eval" / "summary.md").read_text()
    assert "ours" in summary and "identity" in summary
    assert (exp / "eval" / "comparison.md").is_file()
    # stage 2 started from stage 1 and said which weights are new
    assert "stage1" in (exp / "commands.sh").read_text()
    # a rerun skips every finished stage
    again = subprocess.run(
        ["bash", str(ROOT / "recipes" / "demo" / "run.sh"), *args], capture_output=True, text=True, env=env
    )
    assert again.returncode == 0
    assert again.stderr.count("already done") == 6


def write_corpus(root: Path) -> dict[str, Path]:
    """Speech of four speakers (one folder each, 48 kHz), two noise files and two impulse responses."""
    import numpy as np
    import soundfile

    from gan_enhance.data import write_synthetic_corpus

    for speaker in range(4):
        write_synthetic_corpus(str(root / "speech" / f"spk{speaker}"), 2, 2.0, 48000, seed=speaker)
    rng = np.random.default_rng(0)
    (root / "noise").mkdir()
    (root / "rir").mkdir()
    decay = np.exp(-np.arange(2400) / 48000 / 0.03)
    for index in range(2):
        soundfile.write(root / "noise" / f"noise{index}.wav", 0.1 * rng.standard_normal(96000), 48000)
        soundfile.write(root / "rir" / f"room{index}.wav", rng.standard_normal(2400) * decay, 48000)
    return {name: root / name for name in ("speech", "noise", "rir")}


@pytest.mark.slow
def test_folders_recipe_runs_every_stage_on_generated_folders(tmp_path):
    folders = write_corpus(tmp_path / "corpus")
    exp = tmp_path / "exp"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env["HF_HUB_OFFLINE"] = "1"
    steps = (
        "--Trainer.max_steps 2 --Trainer.valid_every 2 --Trainer.sample_every 2 --Trainer.checkpoint_every 2"
    )
    args = [item for name, path in folders.items() for item in (f"--{name}", str(path))]
    args += ["--exp_dir", str(exp), "--size", "small", "--wavlm", "none", "--train_args", steps]
    args += [
        "--speaker_pattern",
        "^(spk[0-9])/",
        "--val_size",
        "1",
        "--test_size",
        "1",
        "--baselines",
        "identity",
    ]
    args += ["--evaluate_args", "--metrics si_sdr --spectrograms 0 --no-save-audio"]
    result = subprocess.run(
        ["bash", str(ROOT / "recipes" / "folders" / "run.sh"), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    for stage in (1, 3, 4, 5, 6, 7):
        assert (exp / ".done" / f"stage{stage}").exists(), f"stage {stage} left no sentinel"
    assert (exp / "data" / "split.txt").read_text().splitlines() == [
        "train: 4 files, 0.00 h, 2 speakers",
        "val: 2 files, 0.00 h, 1 speakers",
        "test: 2 files, 0.00 h, 1 speakers",
    ]
    config = json.loads((exp / "model" / "config.json").read_text())
    assert (config["in_sample_rate"], config["out_sample_rate"]) == (16000, 48000)
    assert len(list((exp / "enhanced").rglob("*.wav"))) == 2
    # the input (identity) is the comparison's reference: differences read ours - identity
    assert "ours (B) vs identity (A, baseline)" in (exp / "eval" / "comparison.md").read_text()
    # commands.sh holds the command lines: the check, then the training, with the WavLM loss off
    commands = (exp / "commands.sh").read_text().splitlines()
    trains = [line for line in commands if line.startswith("gan-enhance train")]
    assert len(trains) == 4 and trains[0].endswith("--check") and not trains[1].endswith("--check")
    assert all("--lambdas.wavlm/loss 0" in line for line in trains)
    assert any(line.startswith("gan-enhance compare") for line in commands)
    # each training run summarised its data before the first step
    summary = (exp / "runs" / "stage2" / "data_summary.txt").read_text()
    assert "train: 256 items from clean audio degraded on the fly; 4 files" in summary
    assert "noise: 2 files in" in summary and "impulse responses: 2 files in" in summary
    assert f"finished: model in {exp}/model" in result.stderr
