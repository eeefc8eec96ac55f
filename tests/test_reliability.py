"""Crash safety of training: SIGKILL at random moments, SIGTERM/SIGINT, corrupt and crafted checkpoints,
a full disk, training files that break mid-run, loss spikes, config errors caught before training."""

from __future__ import annotations

import csv
import json
import logging
import os
import random
import re
import resource
import signal
import subprocess
import sys
import threading
import time

import pytest
import soundfile
import torch

from gan_enhance.atomic import write_bytes
from gan_enhance.data.datasets import TooManyBadFilesError
from gan_enhance.errors import CheckpointError, ConfigError, OutOfSpaceError
from gan_enhance.train.checkpoint import (
    CHECKSUM_KEY,
    PREVIOUS_TAG,
    checkpoint_path,
    load_checkpoint,
    save_checkpoint,
)
from gan_enhance.train.config import load_config
from gan_enhance.train.run import run_training

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
CONF = os.path.join(ROOT, "conf")
TRAIN_STEPS = 8


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> str:
    from gan_enhance.data import write_synthetic_corpus

    folder = tmp_path_factory.mktemp("corpus")
    write_synthetic_corpus(str(folder), num_files=3, seconds=1.5, sample_rate=16000)
    return str(folder)


def overrides(corpus: str, runs_dir, name: str, **extra) -> dict:
    """A deterministic few-second CPU run of conf/debug.yml (unet1d, MPD + MBD) writing under ``runs_dir``."""
    return {
        "name": name,
        "runs_dir": str(runs_dir),
        "Trainer.max_steps": TRAIN_STEPS,
        "Trainer.deterministic": True,
        "Trainer.adversarial_start": 2,
        "Trainer.log_every": 1,
        "Trainer.valid_every": 2,
        "Trainer.sample_every": 0,
        "Trainer.checkpoint_every": 1,
        "Trainer.quiet": True,
        "Data.segment_samples": 4096,
        "Data.epoch_items": 6,
        "Data.train_sources": [corpus],
        "Data.val_sources": [corpus],
        "Data.synthetic_files": 0,
        **extra,
    }


def config(corpus: str, runs_dir, name: str, **extra) -> dict:
    return {**load_config(os.path.join(CONF, "debug.yml")), **overrides(corpus, runs_dir, name, **extra)}


def train_command(corpus: str, runs_dir, name: str, resume: bool, **extra) -> list[str]:
    command = [sys.executable, "-m", "gan_enhance", "train", "--args.load", os.path.join(CONF, "debug.yml")]
    for key, value in overrides(corpus, runs_dir, name, **extra).items():
        command += [f"--{key}", json.dumps(value) if isinstance(value, list) else str(value)]
    return command + (["--resume"] if resume else [])


class Training:
    """A ``gan-enhance train`` subprocess whose log lines are read as they come."""

    def __init__(self, command: list[str], own_group: bool = False):
        environment = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=environment,
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
            start_new_session=own_group,  # its own process group, which a test can signal whole
        )
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.process.stderr:
            self.lines.append(line)

    def wait_for_step(self, step: int, timeout: float = 300) -> bool:
        """True once a log line reports ``step`` (or a later one); False if the process ended first."""
        pattern = re.compile(r" step (\d+) ")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(int(m.group(1)) >= step for m in map(pattern.search, list(self.lines)) if m):
                return True
            if self.process.poll() is not None:
                return False
            time.sleep(0.02)
        raise AssertionError("training made no progress:\n" + "".join(self.lines[-20:]))

    def finish(self, timeout: float = 300) -> int:
        code = self.process.wait(timeout)
        self.reader.join(timeout)
        return code

    @property
    def output(self) -> str:
        return "".join(self.lines)


def _same_weights(a: dict, b: dict) -> None:
    for part in ("generator", "generator_ema", "discriminator"):
        assert a[part].keys() == b[part].keys()
        for key, value in a[part].items():
            assert torch.equal(value, b[part][key]), f"{part}.{key}"


@pytest.mark.slow
def test_runs_killed_at_random_moments_resume_to_the_uninterrupted_result(corpus, tmp_path):
    reference = Training(train_command(corpus, tmp_path, "whole", resume=False))
    assert reference.finish() == 0, reference.output
    rng = random.Random(8)
    kills = 0
    for _ in range(3):
        resume = checkpoint_path(tmp_path / "killed", "latest").is_file()
        run = Training(train_command(corpus, tmp_path, "killed", resume=resume))
        # A random moment after some progress: inside a step, a validation or a checkpoint write.
        started = run.wait_for_step(rng.randint(1, TRAIN_STEPS - 2) if not resume else 0)
        time.sleep(rng.uniform(0.0, 0.4))
        if started and run.process.poll() is None:
            run.process.send_signal(signal.SIGKILL)
            kills += 1
        run.finish()
    assert kills >= 2
    final = Training(train_command(corpus, tmp_path, "killed", resume=True))
    assert final.finish() == 0, final.output
    whole = load_checkpoint(checkpoint_path(tmp_path / "whole", "latest"))
    killed = load_checkpoint(checkpoint_path(tmp_path / "killed", "latest"))
    assert whole["step"] == killed["step"] == TRAIN_STEPS
    _same_weights(whole, killed)
    assert whole["data"] == killed["data"]
    best = load_checkpoint(checkpoint_path(tmp_path / "killed", "best"))
    assert best["step"] % 2 == 0 and best["trainer"]["tracker"]["best_step"] == best["step"]
    leftovers = [
        name for _, _, files in os.walk(tmp_path / "killed") for name in files if name.startswith(".")
    ]
    assert leftovers == [], f"temporary files left behind: {leftovers}"


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_and_sigint_write_latest_and_exit_cleanly(corpus, tmp_path, signum):
    # Checkpoints only at the end: the checkpoint found afterwards can only come from the signal.
    extra = {"Trainer.max_steps": 1000, "Trainer.checkpoint_every": 1000, "Trainer.valid_every": 0}
    run = Training(train_command(corpus, tmp_path, "run", resume=False, **extra))
    assert run.wait_for_step(2)
    run.process.send_signal(signum)
    assert run.finish() == 128 + signum, run.output
    assert "continue with --resume" in run.output and "Traceback" not in run.output
    # the last line names the whole command (the run folder's config holds every override)
    assert (
        f"continue with: gan-enhance train --args.load {tmp_path / 'run' / 'config.yml'} --resume"
        in run.output
    )
    latest = load_checkpoint(checkpoint_path(tmp_path / "run", "latest"))
    assert 2 <= latest["step"] < 1000
    extra["Trainer.max_steps"] = latest["step"] + 1
    resumed = Training(train_command(corpus, tmp_path, "run", resume=True, **extra))
    assert resumed.finish() == 0, resumed.output
    assert load_checkpoint(checkpoint_path(tmp_path / "run", "latest"))["step"] == latest["step"] + 1


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_to_the_whole_process_group_with_loader_workers_stops_cleanly(corpus, tmp_path, signum):
    """A terminal's Ctrl-C, ``timeout`` or a job scheduler signal every process of the group, the data
    loader's workers too: the run still finishes its step, writes latest and exits 128 + signal without a
    traceback."""
    extra = {"Trainer.max_steps": 1000, "Trainer.checkpoint_every": 1000, "Trainer.num_workers": 2}
    run = Training(train_command(corpus, tmp_path, "run", resume=False, **extra), own_group=True)
    assert run.wait_for_step(3)
    os.killpg(run.process.pid, signum)
    assert run.finish() == 128 + signum, run.output
    assert "continue with --resume" in run.output and "Traceback" not in run.output
    assert load_checkpoint(checkpoint_path(tmp_path / "run", "latest"))["step"] >= 3


@pytest.fixture(scope="module")
def finished_run(corpus, tmp_path_factory):
    """A 3-step run with checkpoints at every step: ``latest`` is step 3, ``previous`` step 2."""
    runs = tmp_path_factory.mktemp("runs")
    run_training(config(corpus, runs, "run", **{"Trainer.max_steps": 3}))
    return runs / "run"


def test_every_checkpoint_carries_a_checksum_and_latest_keeps_a_previous(finished_run):
    latest = load_checkpoint(checkpoint_path(finished_run, "latest"))
    previous = load_checkpoint(checkpoint_path(finished_run, PREVIOUS_TAG))
    assert (latest["step"], previous["step"]) == (3, 2)
    assert len(latest[CHECKSUM_KEY]) == 64 and latest[CHECKSUM_KEY] != previous[CHECKSUM_KEY]


@pytest.mark.parametrize("damage", ["tensor", "truncate"])
def test_corrupt_latest_is_detected_and_resume_falls_back_to_previous(
    finished_run, corpus, tmp_path, damage, caplog
):
    import shutil

    run_dir = tmp_path / "run"
    shutil.copytree(finished_run, run_dir)
    latest = checkpoint_path(run_dir, "latest")
    if damage == "tensor":
        # A silent change of one weight (a disk or copy error) behind a file that still unpickles.
        payload = torch.load(latest, weights_only=True)
        name = next(iter(payload["generator"]))
        payload["generator"][name] = payload["generator"][name] + 1e-3
        torch.save(payload, latest)
        expected = "is corrupt"
    else:
        latest.write_bytes(latest.read_bytes()[: latest.stat().st_size // 2])
        expected = "not a readable training checkpoint"
    with pytest.raises(CheckpointError, match=expected):
        load_checkpoint(latest)
    caplog.set_level(logging.INFO, logger="gan_enhance.train")
    result = run_training(config(corpus, tmp_path, "run", **{"Trainer.max_steps": 3}), resume=True)
    assert result.step == 3
    assert any("trying an older checkpoint" in r.message and str(latest) in r.message for r in caplog.records)
    assert any(
        f"resumed {checkpoint_path(run_dir, PREVIOUS_TAG)} at step 2" in r.message for r in caplog.records
    )
    # The new latest's save did not rotate the corrupt file into previous: the good step-2 checkpoint is
    # still there, and the unreadable one is kept aside, not deleted.
    assert load_checkpoint(checkpoint_path(run_dir, PREVIOUS_TAG))["step"] == 2
    assert load_checkpoint(latest)["step"] == 3
    assert latest.with_name(latest.name + ".unreadable").is_file()


class RunsCode:
    """Unpickling this calls ``Path.touch(marker)``: the shape of a checkpoint that smuggles in code."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import pathlib

        return pathlib.Path.touch, (pathlib.Path(self.marker),)


def test_a_checkpoint_that_would_run_code_is_refused_and_the_code_never_runs(finished_run, corpus, tmp_path):
    from gan_enhance.export import export_checkpoint

    marker = tmp_path / "code_ran"
    crafted = tmp_path / "crafted" / "checkpoint.pt"
    crafted.parent.mkdir()
    payload = torch.load(checkpoint_path(finished_run, "latest"), weights_only=True)
    torch.save({**payload, "extra": RunsCode(marker)}, crafted)
    with pytest.raises(CheckpointError, match="could run code when loaded, so it was refused"):
        load_checkpoint(crafted)
    with pytest.raises(CheckpointError, match="refused"):
        export_checkpoint(str(crafted), str(tmp_path / "model"))
    with pytest.raises(CheckpointError, match="refused"):
        run_training(config(corpus, tmp_path, "tuned", **{"FineTune.checkpoint": str(crafted)}))
    assert not marker.exists()
    assert not (tmp_path / "model").exists()


def test_out_of_disk_space_keeps_the_previous_checkpoint_and_says_so(tmp_path):
    small = {"step": 1, "generator": {"w": torch.zeros(4)}}
    save_checkpoint(small, tmp_path, ["latest"])
    big = {"step": 2, "generator": {"w": torch.zeros(1 << 20)}}
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    # A file-size limit makes the write fail part-way with EFBIG, as a full disk fails with ENOSPC.
    resource.setrlimit(resource.RLIMIT_FSIZE, (256 * 1024, hard))
    try:
        with pytest.raises(
            OutOfSpaceError, match=r"step-2 checkpoint .* the previous checkpoint .* is intact"
        ):
            save_checkpoint(big, tmp_path, ["latest"])
        with pytest.raises(OutOfSpaceError, match="nothing was written"):
            write_bytes(tmp_path / "new.bin", bytes(512 * 1024))
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert load_checkpoint(checkpoint_path(tmp_path, "latest"))["step"] == 1
    assert not (tmp_path / "new.bin").exists()
    leftovers = [name for _, _, files in os.walk(tmp_path) for name in files if name.startswith(".")]
    assert leftovers == []


def _manifest(path, files: list[str], seconds: float) -> str:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "duration"])
        writer.writerows([name, seconds] for name in files)
    return str(path)


def test_training_files_that_break_are_replaced_logged_counted_and_capped(corpus, tmp_path, caplog):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from gan_enhance.data.files import find_audio_files

    files = find_audio_files([corpus])
    broken = tmp_path / "broken take.wav"
    broken.write_text("not audio: the file was overwritten after the manifest was made")
    # A manifest with durations opens no file when indexed, so the damage shows only during training.
    manifest = _manifest(tmp_path / "train.csv", files + [str(broken)], 1.5)
    settings = {"Data.train_sources": [manifest], "Trainer.max_steps": 4, "Trainer.adversarial_start": 10}
    run_training(config(corpus, tmp_path, "tolerant", **settings, **{"Data.max_bad_share": 0.5}))
    latest = load_checkpoint(checkpoint_path(tmp_path / "tolerant", "latest"))
    assert latest["step"] == 4
    assert len(latest["data"]["bad_files"]) == 1 and str(broken) in latest["data"]["bad_files"][0]
    assert any("training item replaced" in r.message and str(broken) in r.message for r in caplog.records)
    events = EventAccumulator(str(tmp_path / "tolerant" / "logs" / "train")).Reload()
    assert [event.value for event in events.Scalars("data/bad_files")][-1] == 1.0

    caplog.clear()
    with pytest.raises(
        TooManyBadFilesError, match=r"1 of 4 training files failed to load.*broken take\.wav"
    ) as error:
        run_training(config(corpus, tmp_path, "strict", **settings, **{"Data.max_bad_share": 0.1}))
    # the error names the share that would let the run go on, and the log says the steps so far are kept
    assert "--Data.max_bad_share 0.25 would allow them" in str(error.value)
    step = load_checkpoint(checkpoint_path(tmp_path / "strict", "latest"))["step"]
    assert any(
        f"checkpoints/latest holds step {step}; continue with --resume" in r.message for r in caplog.records
    )


def spiking(monkeypatch, spikes_at):
    """Make the generator loss 100x its level at the steps ``spikes_at(step)`` picks (after the update)."""
    from gan_enhance.train import loop

    real_step = loop.train_step

    def spiking_step(state, batch):
        metrics = real_step(state, batch)
        if spikes_at(state.step):
            metrics["total/loss"] = metrics["total/loss"] * 100
        return metrics

    monkeypatch.setattr(loop, "train_step", spiking_step)


# The regression phase only (one loss scale), a short history, every step checkpointed.
# Speed perturbation off and synthetic noise of fixed colours: on this tiny corpus random speeds and random
# noise spectra move the first steps' loss by more than the factor, and these tests need the only spikes to
# be the ones they inject.
GUARD = {
    "Trainer.spike_factor": 5.0,
    "Trainer.spike_window": 8,
    "Trainer.adversarial_start": 100,
    "CleanSource.speed": [1.0, 1.0],
    "AddNoise.colors": ["white", "pink", "brown"],
}


def test_loss_spike_guard_lowers_the_learning_rate_after_repeated_spikes(corpus, tmp_path, monkeypatch):
    spiking(monkeypatch, lambda step: step >= 5)
    guard = {**GUARD, "Trainer.spike_patience": 2, "Trainer.spike_lr_factor": 0.5, "Trainer.max_steps": 7}
    result = run_training(config(corpus, tmp_path, "guarded", **guard))
    base = run_training(config(corpus, tmp_path, "unguarded", **{**guard, "Trainer.spike_factor": 0.0}))
    rates = result.state.learning_rates()
    for key, rate in base.state.learning_rates().items():
        assert rates[key] == pytest.approx(rate * 0.5), key
    latest = load_checkpoint(checkpoint_path(tmp_path / "guarded", "latest"))
    # Steps 5, 6 and 7 spiked: the second spike in a row acted, the third starts a new count.
    guard_state = latest["trainer"]["spike_guard"]
    assert (guard_state["spikes"], guard_state["actions"], guard_state["in_a_row"]) == (3, 1, 1)


def test_loss_spike_guard_can_restore_the_last_good_checkpoint(corpus, tmp_path, monkeypatch, caplog):
    seen = []
    spiking(monkeypatch, lambda step: step == 6 and not seen and not seen.append(step))  # once
    guard = {**GUARD, "Trainer.spike_patience": 1, "Trainer.spike_action": "restore", "Trainer.max_steps": 7}
    caplog.set_level(logging.INFO, logger="gan_enhance.train")
    result = run_training(config(corpus, tmp_path, "restored", **guard))
    assert result.step == 7
    restores = [r.message for r in caplog.records if "loss spikes in a row" in r.message]
    assert len(restores) == 1 and "at step 6" in restores[0] and "(step 5)" in restores[0]


def test_loss_spike_guard_stops_a_run_that_keeps_spiking(corpus, tmp_path, monkeypatch):
    from gan_enhance.train.guard import LossSpikeError

    spiking(monkeypatch, lambda step: step >= 5)
    guard = {**GUARD, "Trainer.spike_patience": 1, "Trainer.spike_action": "restore", "Trainer.max_steps": 9}
    with pytest.raises(LossSpikeError, match="after 2 corrections"):
        run_training(config(corpus, tmp_path, "diverging", **guard, **{"Trainer.spike_max_actions": 2}))


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("Trainer.max_stepz", 3, "Did you mean Trainer.max_steps"),
        ("Trainer.max_steps", "many", "Trainer.max_steps"),
        ("Data.train_sources", ["/nowhere/at/all"], "Data.train_sources: '/nowhere/at/all' does not exist"),
        ("Trainer.spike_action", "panic", "Trainer.spike_action"),
    ],
)
def test_config_errors_name_the_key_before_anything_is_written(corpus, tmp_path, key, value, message):
    settings = config(corpus, tmp_path, "bad", **{"Trainer.spike_factor": 3.0})
    settings[key] = value
    with pytest.raises(ConfigError, match=re.escape(message)):
        run_training(settings)
    assert not (tmp_path / "bad").exists()


def test_run_names_cannot_write_outside_the_runs_folder(corpus, tmp_path):
    with pytest.raises(ConfigError, match="name"):
        run_training(config(corpus, tmp_path / "runs", "../escaped"))
    assert not (tmp_path / "escaped").exists()


def test_audio_written_by_the_toolkit_is_complete_or_absent(tmp_path):
    from gan_enhance.audio import write_audio

    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, hard))
    try:
        with pytest.raises(Exception, match="out.wav"):
            write_audio(tmp_path / "out.wav", torch.zeros(1, 48000), 48000)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert os.listdir(tmp_path) == []
    write_audio(tmp_path / "out.wav", torch.zeros(1, 480), 48000)
    assert soundfile.info(str(tmp_path / "out.wav")).frames == 480
