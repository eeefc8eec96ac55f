"""Recipe scripts: --help, early path checks, and the shared stage engine (guard, sentinels, options)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RECIPES = sorted(p.parent.name for p in (ROOT / "recipes").glob("*/run.sh"))
# recipe -> the option naming its data folder
DATA_OPTIONS = {"voicebank_demand": "vbd_root", "vctk_restoration": "vctk_root", "pitch_shift": "train_dir"}


def run_recipe(script: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("VBD_ROOT", "VCTK_ROOT", "TRAIN_DIR")}
    return subprocess.run(
        ["bash", str(script), *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=60
    )


def test_every_recipe_is_covered():
    assert {"demo", *DATA_OPTIONS} <= set(RECIPES)
    for name in RECIPES:
        assert (ROOT / "recipes" / name / "README.md").is_file(), f"recipes/{name} has no README"


@pytest.mark.parametrize("name", RECIPES)
def test_help_lists_the_options(name):
    result = run_recipe(ROOT / "recipes" / name / "run.sh", "--help")
    assert result.returncode == 0, result.stderr
    for option in ("--stage ", "--stop_stage ", "--exp_dir ", "--stage1_config "):
        assert option in result.stdout


@pytest.mark.parametrize("name", RECIPES)
def test_unknown_option_is_an_error(name):
    result = run_recipe(ROOT / "recipes" / name / "run.sh", "--no_such_option", "1")
    assert result.returncode == 2
    assert "unknown option --no_such_option" in result.stderr


@pytest.mark.parametrize("name", sorted(DATA_OPTIONS))
def test_missing_data_folder_fails_early_and_names_the_option(name, tmp_path):
    option = DATA_OPTIONS[name]
    missing = tmp_path / "not_downloaded"
    result = run_recipe(
        ROOT / "recipes" / name / "run.sh", f"--{option}", str(missing), "--exp_dir", str(tmp_path / "exp")
    )
    assert result.returncode == 1
    assert f"--{option} {missing}: no such folder" in result.stderr
    assert not (tmp_path / "exp" / "runs").exists()


def write_fake_recipe(folder: Path) -> Path:
    """A recipe with three stages that append to a log, built on the real stage engine."""
    script = folder / "run.sh"
    script.write_text(
        f"""#!/usr/bin/env bash
set -euo pipefail
RECIPE_FILE=$(realpath "$0")
PIPELINE_FILE=$RECIPE_FILE
# <defaults>
stage=1        # first stage
stop_stage=9   # last stage
force=false    # rerun finished stages
exp_dir=exp    # output folder
word=hello     # what stage 2 writes
# </defaults>
source {ROOT}/recipes/common/stages.sh
parse_options "$@"
mkdir -p "$exp_dir"
run_stage 1 "first" bash -c "echo one >> $exp_dir/log"
run_stage 2 "second" bash -c "echo $word >> $exp_dir/log"
run_stage 3 "third" bash -c "echo three >> $exp_dir/log"
"""
    )
    return script


def test_stage_guard_sentinels_and_overrides(tmp_path):
    script = write_fake_recipe(tmp_path)
    log = tmp_path / "exp" / "log"
    assert run_recipe(script, "--stop_stage", "2", "--word", "hi", cwd=tmp_path).returncode == 0
    assert log.read_text().split() == ["one", "hi"]
    # finished stages are skipped; the remaining one runs
    result = run_recipe(script, cwd=tmp_path)
    assert result.returncode == 0
    assert log.read_text().split() == ["one", "hi", "three"]
    assert "already done" in result.stderr
    # --force reruns only the selected stage
    assert (
        run_recipe(script, "--stage", "2", "--stop_stage", "2", "--force", "true", cwd=tmp_path).returncode
        == 0
    )
    assert log.read_text().split() == ["one", "hi", "three", "hello"]
    commands = (tmp_path / "exp" / "commands.sh").read_text()
    assert commands.count("# stage 2: second") == 2


def test_a_failing_stage_stops_the_recipe_without_a_sentinel(tmp_path):
    script = write_fake_recipe(tmp_path)
    text = script.read_text().replace('bash -c "echo $word >> $exp_dir/log"', "false")
    script.write_text(text)
    result = run_recipe(script, cwd=tmp_path)
    assert result.returncode == 1
    assert "stage 2 (second) failed" in result.stderr
    assert (tmp_path / "exp" / ".done" / "stage1").exists()
    assert not (tmp_path / "exp" / ".done" / "stage2").exists()
    assert (tmp_path / "exp" / "log").read_text().split() == ["one"]
