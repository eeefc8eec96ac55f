"""Sweeps: the search-space file, tiny trials on CPU (pruning, report, kill and resume, two workers sharing
one SQLite study) and, when a server can be started here, a PostgreSQL study."""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import yaml

from gan_enhance.errors import ConfigError
from gan_enhance.sweep.space import Dimension, check_space, load_space, parse_space, suggest, values_of
from gan_enhance.sweep.study import SweepSettings, default_direction, open_storage, storage_url
from gan_enhance.train.config import load_config

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
WEIGHT = "lambdas.mel/loss"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> str:
    from gan_enhance.data import write_synthetic_corpus

    folder = tmp_path_factory.mktemp("corpus")
    write_synthetic_corpus(str(folder), num_files=2, seconds=1.0, sample_rate=16000)
    return str(folder)


def tiny_base(corpus: str, **overrides) -> dict:
    """conf/debug.yml as a regression-only run of 2 steps validating every step: a second or two a trial."""
    debug = load_config(os.path.join(ROOT, "conf", "debug.yml"))
    return {
        **{k: v for k, v in debug.items() if not k.startswith(("MultiPeriodDiscriminator", "MultiBand"))},
        "discriminators": [],
        "ConvNeXtUNet.channels": [4, 8],
        "Trainer.max_steps": 2,
        "Trainer.valid_every": 1,
        "Trainer.checkpoint_every": 1,
        "Trainer.log_every": 1,
        "Trainer.sample_every": 0,
        "Trainer.quiet": True,
        "Data.train_sources": [corpus],
        "Data.val_sources": [corpus],
        "Data.segment_samples": 2048,
        "Data.epoch_items": 4,
        "Data.val_items": 2,
        **overrides,
    }


def tiny_settings(corpus: str, trials: int, space: dict | None = None, **fields) -> SweepSettings:
    return SweepSettings(
        base=tiny_base(corpus),
        space=space or {WEIGHT: {"choice": [0.5, 1.0, 100.0]}},
        metric="total/loss",
        direction="minimize",
        trials=trials,
        **{"pruner": "median", "startup_trials": 1, **fields},
    )


def start(settings: SweepSettings, sweep_dir, name: str = "tiny", url: str = "", heartbeat: int = 60):
    from gan_enhance.sweep.study import create_study

    storage = open_storage(storage_url(sweep_dir, url), heartbeat=heartbeat)
    return create_study(settings, storage, name), storage


# -- the search space ---------------------------------------------------------------------------------------------
def test_space_parses_every_kind_and_maps_list_choices_back(tmp_path):
    import optuna

    path = tmp_path / "space.yml"
    path.write_text(
        textwrap.dedent(
            """\
            Optimizer.lr: {log_uniform: [1.0e-4, 1.0e-2]}
            EMA.decay: {uniform: [0.9, 0.99], step: 0.01}
            Trainer.batch_size: {choice: [8, 16, 32]}
            Trainer.adversarial_start: {int: [0, 100], step: 50}
            Data.val_items: {log_int: [2, 64]}
            ConvNeXtUNet.channels: {choice: [[8, 16], [16, 32]]}
            """
        )
    )
    space = load_space(path)
    assert [d.kind for d in space] == ["log_uniform", "uniform", "choice", "int", "log_int", "choice"]
    assert space[1] == Dimension("EMA.decay", "uniform", 0.9, 0.99, 0.01)
    assert space[5].labels == ("[8, 16]", "[16, 32]")
    params = {
        "Optimizer.lr": 1e-3,
        "EMA.decay": 0.95,
        "Trainer.batch_size": 16,
        "Trainer.adversarial_start": 50,
        "Data.val_items": 8,
        "ConvNeXtUNet.channels": "[16, 32]",
    }
    overrides = suggest(optuna.trial.FixedTrial(params), space)
    assert overrides == {**params, "ConvNeXtUNet.channels": [16, 32]}
    assert values_of(params, space) == overrides  # stored params -> config values, the same mapping
    # Optuna's own sampler keeps every value inside its range and on its grid.
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(20):
        values = suggest(study.ask(), space)
        assert 1e-4 <= values["Optimizer.lr"] <= 1e-2 and values["Trainer.adversarial_start"] in (0, 50, 100)
        assert round(values["EMA.decay"] * 100) / 100 == pytest.approx(values["EMA.decay"])
        assert values["ConvNeXtUNet.channels"] in ([8, 16], [16, 32])


@pytest.mark.parametrize(
    "data, message",
    [
        ({"Optimizer.lr": [1e-4, 1e-2]}, r"space.yml: Optimizer.lr must be a mapping"),
        ({"Optimizer.lr": {"normal": [0, 1]}}, r"needs exactly one of uniform, log_uniform"),
        ({"Optimizer.lr": {"log_uniform": [0.0, 1.0]}}, r"log_uniform needs low > 0"),
        ({"Optimizer.lr": {"uniform": [1.0, 0.1]}}, r"needs low <= high"),
        ({"Trainer.batch_size": {"int": [1.5, 8]}}, r"int needs integer ends"),
        ({"Trainer.batch_size": {"choice": []}}, r"choice needs a non-empty list"),
        ({"Optimizer.lr": {"log_uniform": [1e-4, 1e-2], "step": 1e-4}}, r"step cannot be combined"),
        ({}, r"must map config keys to ranges"),
    ],
)
def test_space_errors_name_the_file_and_the_key(data, message):
    with pytest.raises(ConfigError, match=message):
        parse_space(data, "space.yml")


def test_check_space_refuses_a_key_no_run_reads(corpus):
    base = tiny_base(corpus)
    check_space(parse_space({"Optimizer.lr": {"uniform": [1e-4, 1e-3]}}), base)
    with pytest.raises(
        ConfigError, match=r"lr.yml: Optimzer.lr = 0.0001 does not make a valid run.*Optimzer"
    ):
        check_space(parse_space({"Optimzer.lr": {"uniform": [1e-4, 1e-3]}}), base, "lr.yml")


def test_the_objective_must_be_a_metric_validation_computes(corpus):
    from gan_enhance.sweep.objective import check_base

    base = tiny_base(corpus)
    check_base(base, "mel/loss", "minimize")
    check_base({**base, "Trainer.speech_metrics": True}, "metric/pesq", "maximize")
    with pytest.raises(ConfigError, match=r"--metric metric/pesq --direction maximize: .*needs"):
        check_base(base, "metric/pesq", "maximize")  # PESQ only with Trainer.speech_metrics
    with pytest.raises(ConfigError, match=r"--direction minimize: Trainer.best_mode 'min' contradicts"):
        check_base({**base, "Trainer.speech_metrics": True}, "metric/stoi", "minimize")
    check_base({**base, "Trainer.valid_every": 5}, "mel/loss", "minimize")  # validates at its last step


def test_shipped_space_fits_the_stage_configs():
    space = load_space(os.path.join(ROOT, "conf", "sweep", "lr.yml"))
    check_space(space, load_config(os.path.join(ROOT, "conf", "debug.yml")), "conf/sweep/lr.yml")


def test_default_direction_and_storage_messages():
    assert default_direction("metric/pesq") == "maximize" and default_direction("mel/loss") == "minimize"
    assert default_direction("metric/mel_distance") == "minimize"
    assert default_direction("metric/dnsmos_ovrl") == default_direction("metric/sisdr") == "maximize"
    with pytest.raises(ConfigError) as error:  # nothing listens on port 9: one line, no password in it
        open_storage("postgresql://user:secret@127.0.0.1:9/db")
    assert "postgresql://user:***@127.0.0.1:9/db" in str(error.value) and "secret" not in str(error.value)


def test_cli_help_is_fast_and_names_the_modes():
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "gan_enhance", "sweep", "--help"], capture_output=True, text=True, cwd=ROOT
    )
    assert result.returncode == 0 and "--worker" in result.stdout and "--storage" in result.stdout
    assert time.perf_counter() - started < 10


# -- tiny sweeps --------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_four_trials_prune_by_a_forced_schedule_and_report(corpus, tmp_path):
    from optuna.trial import TrialState

    from gan_enhance.sweep.compare import compare_top
    from gan_enhance.sweep.report import write_report
    from gan_enhance.sweep.worker import run_worker

    settings = tiny_settings(corpus, trials=4)
    study, _ = start(settings, tmp_path)
    # total/loss scales with the mel weight: 100 is far behind trial 0's curve at the first validation.
    for weight in (1.0, 100.0, 0.5, 100.0):
        study.enqueue_trial({WEIGHT: weight})
    assert run_worker(study, settings, tmp_path) == 4
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.PRUNED] * 2
    assert [t.user_attrs["steps"] for t in trials] == [2, 1, 2, 1]
    assert study.best_trial.number == 2
    for trial in trials:  # each trial is an ordinary run folder
        run = tmp_path / "trials" / f"trial_{trial.number:04d}"
        assert trial.user_attrs["run_dir"] == str(run) and (run / "checkpoints" / "latest").is_dir()
        assert load_config(run / "config.yml")["lambdas"]["mel/loss"] == trial.params[WEIGHT]

    comparison = compare_top(study, settings, tmp_path, top=3, metrics=["si_sdr", "mel_distance"])
    assert "trial_0" in comparison and "trial_2" in comparison and "si_sdr" in comparison
    assert (tmp_path / "compare" / "trial_2.csv").is_file()
    summary = write_report(study, settings, tmp_path, comparison)
    assert "Best: trial 2, total/loss" in summary and "| 1 | pruned |" in summary
    for name in ("optimization_history", "param_importances", "parallel_coordinate", "intermediate_values"):
        assert (tmp_path / "plots" / f"{name}.png").stat().st_size > 1000
        assert "plotly.min.js" in (tmp_path / "plots" / f"{name}.html").read_text()
    rows = (tmp_path / "trials.csv").read_text().splitlines()
    assert len(rows) == 5 and rows[0].startswith("trial,state,total/loss,steps")
    best = load_config(tmp_path / "best_config.yml")  # ready for train: it passes train's checks
    from gan_enhance.train.builders import read_experiment

    assert read_experiment(best).lambdas["mel/loss"] == 0.5 and best["Trainer.best_metric"] == "total/loss"


@pytest.mark.slow
def test_cli_sweep_reports_and_a_rerun_resumes_the_study(corpus, tmp_path, capsys):
    from gan_enhance.cli.sweep import main

    base, space, out = tmp_path / "base.yml", tmp_path / "space.yml", tmp_path / "sweep"
    base.write_text(yaml.safe_dump(tiny_base(corpus)))
    space.write_text(f"{WEIGHT}: {{uniform: [0.5, 2.0]}}\n")
    command = ["--args.load", str(base), "--space", str(space), "--out", str(out), "--compare-top", "0"]
    assert main(command + ["--trials", "2", "--Trainer.max_steps", "1"]) == 0
    assert "2 trial(s) ran here" in capsys.readouterr().out
    assert main(command + ["--trials", "2", "--Trainer.max_steps", "1"]) == 0  # nothing left to do
    assert "0 trial(s) ran here; the study has 2 trial(s)" in capsys.readouterr().out
    assert main(command + ["--trials", "3", "--Trainer.max_steps", "1"]) == 0  # extended by one
    assert "1 trial(s) ran here; the study has 3 trial(s)" in capsys.readouterr().out
    (out / "summary.md").unlink()
    assert main(["--out", str(out), "--report", "--compare-top", "0"]) == 0
    summary = (out / "summary.md").read_text()
    assert "minimize `mel/loss`" in summary and "param lambdas.mel/loss" in summary
    assert load_config(out / "best_config.yml")["Trainer.max_steps"] == 1
    with pytest.raises(ConfigError, match="already exists with another search space"):
        space.write_text(f"{WEIGHT}: {{uniform: [0.5, 3.0]}}\n")
        main(command + ["--Trainer.max_steps", "1"])


KILL_AT_STEP_2 = """
import os, signal, sys
import optuna
from gan_enhance.sweep.study import open_storage, load_study
from gan_enhance.sweep.worker import run_worker

report = optuna.trial.Trial.report
def report_then_die(self, value, step):
    report(self, value, step)
    if step == 2:  # after the step-1 checkpoint, before the step-2 one
        os.kill(os.getpid(), signal.SIGKILL)
optuna.trial.Trial.report = report_then_die
study, settings = load_study(open_storage(sys.argv[1], heartbeat=1), "tiny")
run_worker(study, settings, sys.argv[2])
"""


@pytest.mark.slow
def test_a_killed_workers_trial_is_retried_and_resumes_its_run(corpus, tmp_path, caplog):
    from optuna.trial import TrialState

    from gan_enhance.sweep.study import load_study
    from gan_enhance.sweep.worker import run_worker

    settings = tiny_settings(corpus, trials=1, pruner="none")
    settings.base["Trainer.max_steps"] = 3
    study, _ = start(settings, tmp_path, heartbeat=1)
    url = storage_url(tmp_path)
    killed = subprocess.run(
        [sys.executable, "-c", KILL_AT_STEP_2, url, str(tmp_path)], cwd=ROOT, capture_output=True
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()[-2000:]
    assert study.get_trials()[0].state == TrialState.RUNNING  # dead, but nobody has noticed yet
    # Past the grace period (2 heartbeats) on SQLite's clock, which has whole seconds: 2.5 s could read as
    # 2 s (not past it), and the retry would not happen (CI saw it once); 3.5 s reads as 3 s or more.
    time.sleep(3.5)
    study, settings = load_study(open_storage(url, heartbeat=1), "tiny")
    with caplog.at_level("INFO"):
        assert run_worker(study, settings, tmp_path) == 1
    first, retry = study.get_trials()
    assert first.state == TrialState.FAIL and retry.state == TrialState.COMPLETE
    assert retry.system_attrs["failed_trial"] == 0 and retry.params == first.params
    assert retry.user_attrs["run_dir"] == str(tmp_path / "trials" / "trial_0000")
    assert retry.user_attrs["steps"] == 3 and 1 in retry.intermediate_values  # inherited from the first
    assert any("resumed" in r.getMessage() and "at step 1" in r.getMessage() for r in caplog.records)
    assert not (tmp_path / "trials" / "trial_0001").exists()


TERMINATE_AT_STEP_1 = """
import os, signal, sys
import optuna
from gan_enhance.cli import main

report = optuna.trial.Trial.report
def report_then_terminate(self, value, step):
    report(self, value, step)
    os.kill(os.getpid(), signal.SIGTERM)  # as a scheduler ending the job would
optuna.trial.Trial.report = report_then_terminate
sys.exit(main(["sweep", "--out", sys.argv[1], "--study", "tiny", "--worker"]))
"""


@pytest.mark.slow
def test_a_terminated_worker_queues_its_trial_at_once_and_it_resumes(corpus, tmp_path):
    from optuna.trial import TrialState

    from gan_enhance.sweep.study import load_study
    from gan_enhance.sweep.worker import run_worker

    settings = tiny_settings(corpus, trials=1, pruner="none")
    start(settings, tmp_path)
    stopped = subprocess.run(
        [sys.executable, "-c", TERMINATE_AT_STEP_1, str(tmp_path)], cwd=ROOT, capture_output=True, text=True
    )
    assert stopped.returncode == 128 + signal.SIGTERM, stopped.stderr[-2000:]
    assert "its trial is queued again" in stopped.stderr
    study, settings = load_study(open_storage(storage_url(tmp_path)), "tiny")
    assert [t.state for t in study.get_trials()] == [TrialState.FAIL, TrialState.WAITING]
    assert run_worker(study, settings, tmp_path) == 1  # no grace period to wait for
    first, retry = study.get_trials()
    assert retry.state == TrialState.COMPLETE and retry.system_attrs["failed_trial"] == 0
    assert retry.user_attrs["run_dir"].endswith("trial_0000") and retry.user_attrs["steps"] == 2


@pytest.mark.slow
def test_two_worker_processes_share_one_sqlite_study(corpus, tmp_path):
    settings = tiny_settings(corpus, trials=2, pruner="none", sampler="random")
    start(settings, tmp_path)
    command = [
        sys.executable,
        "-m",
        "gan_enhance",
        "sweep",
        "--out",
        str(tmp_path),
        "--study",
        "tiny",
        "--worker",
    ]
    workers = [
        subprocess.Popen(
            command + ["--trials-here", "1"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        for _ in range(2)
    ]
    outputs = [worker.communicate(timeout=300)[0].decode() for worker in workers]
    assert [w.returncode for w in workers] == [0, 0], outputs[0][-2000:] + outputs[1][-2000:]
    from gan_enhance.sweep.study import load_study

    study, _ = load_study(open_storage(storage_url(tmp_path)), "tiny")
    trials = study.get_trials()
    assert sorted(t.number for t in trials) == [0, 1]
    assert all(t.state.name == "COMPLETE" for t in trials)
    by_worker: dict[str, list[int]] = {}
    for trial in trials:
        by_worker.setdefault(trial.user_attrs["worker"], []).append(trial.number)
    assert len(by_worker) == 2 and all(len(numbers) == 1 for numbers in by_worker.values())
    assert len({t.user_attrs["run_dir"] for t in trials}) == 2
    assert all("1 trial(s) ran here" in output for output in outputs)


@pytest.mark.slow
def test_a_worker_under_torchrun_trains_each_trial_on_every_process(corpus, tmp_path):
    settings = tiny_settings(corpus, trials=2, pruner="none")
    start(settings, tmp_path)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    command += ["-m", "gan_enhance", "sweep", "--out", str(tmp_path), "--study", "tiny", "--worker"]
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": ROOT}
    finished = subprocess.run(command, cwd=ROOT, env=environment, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr[-3000:]
    from gan_enhance.sweep.study import load_study

    study, _ = load_study(open_storage(storage_url(tmp_path)), "tiny")
    assert [t.state.name for t in study.get_trials()] == ["COMPLETE", "COMPLETE"]
    # Each trial formed a two-process group (rank 1 joined it), one after the other.
    assert finished.stderr.count("joined the process group: backend gloo, rank 0 of 2") == 2
    for number in (0, 1):
        log = (tmp_path / "trials" / f"trial_000{number}" / "train.log").read_text()
        assert "training ended at step 2" in log


def test_diverged_trials_fail_with_their_reason_and_count_as_finished(corpus, tmp_path, monkeypatch):
    import gan_enhance.train.run
    from gan_enhance.sweep.report import trial_rows
    from gan_enhance.sweep.worker import counts, run_worker
    from gan_enhance.train.state import NonFiniteLossError

    def diverge(config, resume=False, on_validation=None):
        raise NonFiniteLossError(f"{config['name']}: non-finite loss for 3 steps in a row\nmore detail")

    monkeypatch.setattr(gan_enhance.train.run, "run_training", diverge)
    settings = tiny_settings(corpus, trials=2)
    study, _ = start(settings, tmp_path)
    assert run_worker(study, settings, tmp_path) == 2  # the sweep goes on after a diverged trial
    assert counts(study) == {"finished": 2, "running": 0, "waiting": 0}
    rows = trial_rows(study, settings)
    assert [row["state"] for row in rows] == ["fail (diverged)"] * 2
    assert study.get_trials()[1].user_attrs["failure"] == "trial_0001: non-finite loss for 3 steps in a row"


def test_worker_without_a_study_says_how_to_start_one(tmp_path):
    from gan_enhance.cli.sweep import main

    with pytest.raises(ConfigError, match="no sweep 'nothing' in the storage; start it first"):
        main(["--out", str(tmp_path / "nothing"), "--worker"])


# -- PostgreSQL ---------------------------------------------------------------------------------------------------
def _postgres_binaries() -> str | None:
    found = shutil.which("initdb")
    if found:
        return os.path.dirname(os.path.realpath(found))
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return os.path.dirname(candidates[-1]) if candidates else None


@pytest.fixture
def postgres_url():
    """A throw-away PostgreSQL server on a Unix socket in a fresh /tmp folder (Debian's `postgresql`)."""
    pytest.importorskip("psycopg", reason="PostgreSQL test skipped: the psycopg driver is not installed")
    binaries = _postgres_binaries()
    if binaries is None:
        pytest.skip(
            "PostgreSQL test skipped: no initdb (apt-get install postgresql; .ci/install_postgres.sh)"
        )
    import tempfile

    folder = tempfile.mkdtemp(prefix="gan_enhance_pg_")  # pytest's tmp_path is private to its user
    prefix: list[str] = []
    if os.geteuid() == 0:  # the server refuses to run as root
        import pwd

        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            shutil.rmtree(folder)
            pytest.skip("PostgreSQL test skipped: running as root and there is no 'postgres' user")
        prefix = ["runuser", "-u", "postgres", "--"]
        os.chown(folder, user.pw_uid, user.pw_gid)
    data = os.path.join(folder, "data")
    run = lambda *args: subprocess.run(prefix + list(args), capture_output=True, text=True, timeout=120)
    try:
        init = run(f"{binaries}/initdb", "-D", data, "-A", "trust", "-U", "postgres")
        if init.returncode != 0:
            pytest.skip(f"PostgreSQL test skipped: initdb failed: {init.stderr.strip()[-300:]}")
        options = f"-k {folder} -p 54329 -c listen_addresses=''"
        log = os.path.join(folder, "server.log")
        started = run(f"{binaries}/pg_ctl", "-D", data, "-o", options, "-w", "-l", log, "start")
        if started.returncode != 0:
            pytest.skip(f"PostgreSQL test skipped: the server did not start: {started.stderr.strip()[-300:]}")
        try:
            yield f"postgresql://postgres@/postgres?host={folder}&port=54329"
        finally:
            run(f"{binaries}/pg_ctl", "-D", data, "-m", "immediate", "stop")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.slow
def test_a_postgresql_study_is_shared_by_two_workers(corpus, tmp_path, postgres_url):
    from gan_enhance.sweep.study import load_study
    from gan_enhance.sweep.worker import run_worker

    settings = tiny_settings(corpus, trials=2, pruner="none")
    sweep = tmp_path / "sweep"
    start(settings, sweep, url=postgres_url)
    # Two workers (here one after the other) that know only the URL and the study name.
    for _ in range(2):
        study, joined = load_study(open_storage(postgres_url), "tiny")
        assert joined.space == settings.space
        assert run_worker(study, joined, sweep, trials_here=1) == 1
    study, _ = load_study(open_storage(postgres_url), "tiny")
    assert [(t.number, t.state.name) for t in study.get_trials()] == [(0, "COMPLETE"), (1, "COMPLETE")]
    assert (
        yaml.safe_load((sweep / "trials" / "trial_0001" / "config.yml").read_text())["name"] == "trial_0001"
    )
