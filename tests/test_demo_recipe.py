"""The main job end to end: the demo recipe, every stage, with a few training steps."""

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
