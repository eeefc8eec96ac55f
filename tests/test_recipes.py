"""Recipe scripts: --help, early path checks, and the shared stage engine (guard, sentinels, options,
records, resume after an interruption)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RECIPES = sorted(p.parent.name for p in (ROOT / "recipes").glob("*/run.sh"))
# recipe -> the option naming its data folder
DATA_OPTIONS = {
    "voicebank_demand": "vbd_root",
    "vctk_restoration": "vctk_root",
    "pitch_shift": "train_dir",
    "folders": "speech",
}
DATA_VARIABLES = ("VBD_ROOT", "VCTK_ROOT", "TRAIN_DIR", "SPEECH", "NOISE", "RIR")


def recipe_env(**extra: str) -> dict:
    """The test's environment without the recipes' data variables, offline, the venv's tools first."""
    env = {k: v for k, v in os.environ.items() if k not in DATA_VARIABLES}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env["HF_HUB_OFFLINE"] = "1"
    return {**env, **extra}


def run_recipe(script: Path, *args: str, cwd: Path | None = None, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(script), *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=recipe_env(**env),
        timeout=60,
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
    assert not (tmp_path / "exp").exists()  # nothing written: no records, no resume.sh replaying the typo


def write_fake_recipe(folder: Path, second: str = 'run_cmd bash -c "echo $word >> $exp_dir/log"') -> Path:
    """A recipe with three stages that append to a log, built on the real stage engine; ``second`` is
    the body of stage 2."""
    script = folder / "run.sh"
    script.write_text(
        f"""#!/usr/bin/env bash
set -euo pipefail
RECIPE_FILE=$(realpath "$0")
RECIPE_ARGS=("$@")
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
second() {{
    {second}
}}
start_records
run_stage 1 "first" run_cmd bash -c "echo one >> $exp_dir/log"
run_stage 2 "second" second
run_stage 3 "third" run_cmd bash -c "echo three >> $exp_dir/log"
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
    # the failing step is not the stage's last: the stage must still stop there (set -e inside stages)
    script = write_fake_recipe(tmp_path, second='false\n    echo two >> "$exp_dir/log"')
    result = run_recipe(script, cwd=tmp_path)
    assert result.returncode == 1
    assert "stage 2 (second) failed; fix the cause" in result.stderr
    assert (tmp_path / "exp" / ".done" / "stage1").exists()
    assert not (tmp_path / "exp" / ".done" / "stage2").exists()
    assert (tmp_path / "exp" / "log").read_text().split() == ["one"]
    assert "--stage 2 --stop_stage 9" in (tmp_path / "exp" / "resume.sh").read_text()


def test_commands_sh_holds_the_command_lines_that_ran(tmp_path):
    script = write_fake_recipe(tmp_path)
    assert run_recipe(script, "--word", "hi there", cwd=tmp_path).returncode == 0
    commands = (tmp_path / "exp" / "commands.sh").read_text()
    assert "bash -c echo\\ hi\\ there\\ \\>\\>\\ exp/log" in commands
    assert "second" not in commands.replace("# stage 2: second", "")  # no shell function names
    # replaying the records repeats the work
    (tmp_path / "exp" / "log").unlink()
    subprocess.run(["bash", str(tmp_path / "exp" / "commands.sh")], check=True, cwd=tmp_path)
    assert (tmp_path / "exp" / "log").read_text().splitlines() == ["one", "hi there", "three"]


def wait_for_process(group: int, name: str, timeout: float = 30.0) -> None:
    """Wait until a process whose command is ``name`` runs in process group ``group`` (Linux /proc)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                head, tail = stat.read_text().rsplit(")", 1)
            except OSError:  # the process ended while we looked
                continue
            if head.split("(", 1)[1] == name and int(tail.split()[2]) == group:
                return
        time.sleep(0.05)
    raise AssertionError(f"no {name!r} process started in group {group} within {timeout} s")


def test_ctrl_c_says_interrupted_and_resume_sh_continues_to_the_stop_stage(tmp_path):
    second = 'sleep 30\n    echo two >> "$exp_dir/log"'
    script = write_fake_recipe(tmp_path, second=second)
    process = subprocess.Popen(
        ["bash", str(script), "--stop_stage", "2", "--word", "hi"],
        cwd=tmp_path,
        env=recipe_env(),
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a terminal's foreground job
    )
    # Ctrl-C reaches every process of the foreground group. Sent once `sleep` runs: a signal that lands
    # while bash forks it reaches bash but not the new child, and bash waits for that child to finish.
    wait_for_process(process.pid, "sleep")
    os.killpg(process.pid, signal.SIGINT)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 130
    assert "stage 2 (second) interrupted; resume with: bash exp/resume.sh" in stderr
    assert "failed" not in stderr
    assert not (tmp_path / "exp" / ".done" / "stage2").exists()
    resume = (tmp_path / "exp" / "resume.sh").read_text()
    assert "--word hi --stage 2 --stop_stage 2" in resume
    # resuming runs the interrupted stage and stops at the stop stage asked for
    script.write_text(script.read_text().replace("sleep 30", "true"))
    result = subprocess.run(
        ["bash", str(tmp_path / "exp" / "resume.sh")], capture_output=True, text=True, env=recipe_env()
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "exp" / "log").read_text().split() == ["one", "two"]
    assert not (tmp_path / "exp" / ".done" / "stage3").exists()


@pytest.mark.parametrize(
    ("typed", "suggestion"),
    [
        ("--stop-stages", "--stop_stage"),
        ("--wavlm_model", "--wavlm"),
        ("--exp", "--exp_dir"),
        ("--qqqq", None),
    ],
)
def test_an_unknown_option_names_the_closest_one(typed, suggestion, tmp_path):
    result = run_recipe(ROOT / "recipes" / "folders" / "run.sh", typed, "x")
    assert result.returncode == 2
    if suggestion:
        assert f"did you mean {suggestion}?" in result.stderr
    else:
        assert "did you mean" not in result.stderr


def write_speakers(folder: Path, speakers: int = 4, files: int = 2) -> Path:
    import numpy as np
    import soundfile

    rng = np.random.default_rng(0)
    for speaker in range(speakers):
        (folder / f"spk{speaker}").mkdir(parents=True)
        for index in range(files):
            soundfile.write(
                folder / f"spk{speaker}" / f"u{index}.wav", 0.1 * rng.standard_normal(20000), 16000
            )
    return folder


def test_a_stage_run_before_its_inputs_exist_names_the_stage_that_makes_them(tmp_path):
    speech = write_speakers(tmp_path / "speech")
    script = ROOT / "recipes" / "folders" / "run.sh"
    common = ["--speech", str(speech), "--exp_dir", str(tmp_path / "exp"), "--wavlm", "none"]
    result = run_recipe(script, *common, "--stage", "4", "--stop_stage", "4")
    assert result.returncode == 1
    assert (
        "stage 4 needs the prepared data" in result.stderr
        and "which stage 1 makes; run it first (--stage 1)" in result.stderr
    )
    result = run_recipe(script, *common, "--stage", "5", "--stop_stage", "5")
    assert "stage 5 needs the stage2 model" in result.stderr and "which stage 4 makes" in result.stderr
    # a finished run that never validated has latest but no best: the error names what there is
    (tmp_path / "exp" / "runs" / "stage2" / "checkpoints" / "latest").mkdir(parents=True)
    result = run_recipe(script, *common, "--stage", "5", "--stop_stage", "5")
    assert "the stage2 run has no 'best' checkpoint" in result.stderr
    assert "checkpoints has: latest); choose one with --export_tag" in result.stderr
    result = run_recipe(script, *common, "--stage", "6", "--stop_stage", "6")
    assert "stage 6 needs the exported model" in result.stderr and "which stage 5 makes" in result.stderr
    for text in (result.stderr,):
        assert "finished" not in text


def test_relative_paths_are_relative_to_where_the_recipe_was_started(tmp_path):
    # The recipe runs from the repository root, but a user's relative paths (options or the recipe's
    # environment variables) name folders where the user is; resume.sh starts there too.
    write_speakers(tmp_path / "speech")
    script = ROOT / "recipes" / "folders" / "run.sh"
    args = ("--exp_dir", "exp", "--wavlm", "none", "--stop_stage", "1")
    result = run_recipe(script, *args, cwd=tmp_path, SPEECH="speech")
    assert result.returncode == 0, result.stderr
    assert len((tmp_path / "exp" / "data" / "train.csv").read_text().splitlines()) > 1
    assert list((tmp_path / "exp" / "data" / "test" / "degraded").iterdir())
    result = run_recipe(script, "--speech", "speech", *args, "--force", "true", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    (tmp_path / "elsewhere").mkdir()
    resume = subprocess.run(
        ["bash", str(tmp_path / "exp" / "resume.sh")],
        capture_output=True,
        text=True,
        cwd=tmp_path / "elsewhere",
        env=recipe_env(),
        timeout=60,
    )
    assert resume.returncode == 0, resume.stderr
    assert "stages 1-1 done" in resume.stderr
    assert not (tmp_path / "elsewhere" / "exp").exists()


PATHS_RECIPE = """#!/usr/bin/env bash
set -euo pipefail
RECIPE_FILE=$(realpath "$0")
CALLER_DIR=$PWD
cd "$(dirname "$RECIPE_FILE")"
PIPELINE_FILE=$RECIPE_FILE
# <defaults>
data=           # data folders
config=c.yml    # a config
model=none      # a model or none
# </defaults>
path_options="data"
file_options="config model"
source {stages}
parse_options "$@"
echo "data=$data config=$config model=$model"
"""


@pytest.mark.parametrize("start", ["start", "with space"])
def test_which_options_resolve_against_the_start_folder(tmp_path, start):
    (tmp_path / "repo").mkdir()
    script = tmp_path / "repo" / "run.sh"
    script.write_text(PATHS_RECIPE.format(stages=ROOT / "recipes" / "common" / "stages.sh"))
    folder = tmp_path / start
    folder.mkdir()
    for name in ("c.yml", "mine.yml", "none"):
        (folder / name).write_text("")

    def values(*args: str) -> str:
        result = run_recipe(script, *args, cwd=folder)
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    if start == "with space":  # paths are split on spaces: nothing is resolved, and the log says so
        assert values("--data", "d") == "data=d config=c.yml model=none"
        assert "whose path has a space" in run_recipe(script, cwd=folder).stderr
        return
    # data: always; a file option: only when given and present there; a default or "none": as written
    assert (
        values("--data", "d e", "--config", "mine.yml")
        == f"data={folder}/d {folder}/e config={folder}/mine.yml model=none"
    )
    assert (
        values("--data=/abs", "--model", "none", "--config", "gone.yml")
        == "data=/abs config=gone.yml model=none"
    )
    assert values() == "data= config=c.yml model=none"


def split_data_main():
    """``main`` of recipes/folders/local/split_data.py, imported from its file."""
    import importlib.util

    path = ROOT / "recipes" / "folders" / "local" / "split_data.py"
    spec = importlib.util.spec_from_file_location("split_data", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def test_split_data_holds_out_whole_speakers(tmp_path):
    speech = write_speakers(tmp_path / "speech", speakers=5)
    out = tmp_path / "data"
    args = ["--speech", str(speech), "--speaker-pattern", "^(spk[0-9])/", "--val-size", "1"]
    assert split_data_main()([*args, "--test-size", "0.4", "--out", str(out)]) == 0
    speakers = {}
    for split in ("train", "val"):
        rows = (out / f"{split}.csv").read_text().splitlines()
        assert rows[0] == "path,duration" and all(row.endswith(",1.250000") for row in rows[1:])
        speakers[split] = {row.split("/")[-2] for row in rows[1:]}
    speakers["test"] = {path.parent.name for path in (out / "test_clean").rglob("*.wav")}
    assert [len(speakers[s]) for s in ("train", "val", "test")] == [2, 1, 2]  # 0.4 of 5 speakers = 2
    assert not (speakers["train"] & speakers["val"]) and not (speakers["train"] & speakers["test"])
    assert not (speakers["val"] & speakers["test"])
    assert len(list((out / "test_clean").rglob("*.wav"))) == 4  # both files of each test speaker
    # the same seed and files give the same split; by file, every file is its own group
    assert split_data_main()([*args, "--test-size", "0.4", "--out", str(tmp_path / "again")]) == 0
    assert (tmp_path / "again" / "val.csv").read_text() == (out / "val.csv").read_text()
    assert (
        split_data_main()(["--speech", str(speech), "--val-size", "3", "--test-size", "2", "--out", str(out)])
        == 0
    )
    assert len((out / "val.csv").read_text().splitlines()) == 1 + 3
    with pytest.raises(SystemExit, match="finds no speaker in 'spk0/u0.wav'"):
        split_data_main()(["--speech", str(speech), "--speaker-pattern", "^(p[0-9]+)_", "--out", str(out)])


def test_the_end_says_finished_only_when_there_is_a_model(tmp_path):
    speech = write_speakers(tmp_path / "speech")
    common = ["--speech", str(speech), "--exp_dir", str(tmp_path / "exp"), "--wavlm", "none"]
    result = run_recipe(ROOT / "recipes" / "folders" / "run.sh", *common, "--stage", "2", "--stop_stage", "2")
    assert result.returncode == 0, result.stderr
    assert "finished" not in result.stderr and "no model yet (stage 5 exports it)" in result.stderr
    (tmp_path / "exp" / "model").mkdir()
    (tmp_path / "exp" / "model" / "config.json").write_text("{}")
    result = run_recipe(ROOT / "recipes" / "folders" / "run.sh", *common, "--stage", "2", "--stop_stage", "2")
    assert f"finished: model in {tmp_path / 'exp' / 'model'}" in result.stderr


@pytest.mark.slow
def test_offline_without_a_local_wavlm_stops_before_any_stage_in_one_line(tmp_path):
    speech = write_speakers(tmp_path / "speech")
    result = run_recipe(
        ROOT / "recipes" / "folders" / "run.sh",
        *("--speech", str(speech), "--exp_dir", str(tmp_path / "exp")),
        HF_HOME=str(tmp_path / "empty_cache"),
    )
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if "error" in line]
    assert len(errors) == 1
    assert "--wavlm: cannot load 'microsoft/wavlm-large'" in errors[0]
    assert "--wavlm PATH" in errors[0] and "--wavlm none" in errors[0]
    assert not (tmp_path / "exp" / ".done").exists()
