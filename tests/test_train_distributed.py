"""DDP: a two-process ``torchrun`` (gloo on CPU) run finishes and both ranks hold identical weights; when
one rank's data loading fails, every rank stops at the same step and rank 0 keeps the steps so far."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

CONF = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "conf"))
ROOT = os.path.dirname(CONF)

# Each rank trains through the real entry point, then saves what it holds for the test to compare.
RANK_SCRIPT = """
import json, os, sys
import torch
from gan_enhance.train.config import load_config
from gan_enhance.train.distributed import unwrap
from gan_enhance.train.run import run_training

torch.set_num_threads(1)
config_path, overrides, out = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
result = run_training({**load_config(config_path), **overrides})
state = result.state
weights = {"generator": unwrap(state.generator).state_dict(), "discriminator": unwrap(state.discriminator).state_dict()}
torch.save(weights, os.path.join(out, f"rank{os.environ['RANK']}.pt"))
"""


def ddp_overrides(tmp_path, **settings) -> dict:
    """A two-file synthetic corpus in ``tmp_path`` and a tiny run ``ddp`` on it; ``settings`` on top."""
    from gan_enhance.data import write_synthetic_corpus

    corpus = tmp_path / "corpus"
    write_synthetic_corpus(str(corpus), num_files=2, seconds=1.0, sample_rate=16000)
    return {
        "name": "ddp",
        "runs_dir": str(tmp_path / "runs"),
        "Trainer.batch_size": 1,
        "Trainer.num_workers": 0,
        "Trainer.sample_every": 0,
        "Trainer.quiet": True,
        "Data.segment_samples": 4096,
        "Data.epoch_items": 8,
        "Data.val_items": 1,
        "Data.train_sources": [str(corpus)],
        "Data.val_sources": [str(corpus)],
        **settings,
    }


def torchrun(tmp_path, script: str, overrides: dict, *extra: str) -> subprocess.CompletedProcess:
    """``script`` run by two gloo ranks with conf/debug.yml, ``overrides`` (JSON) and ``extra`` arguments."""
    path = tmp_path / "rank.py"
    path.write_text(script)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    command += [str(path), os.path.join(CONF, "debug.yml"), json.dumps(overrides), *extra]
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": ROOT}
    return subprocess.run(command, cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_two_process_gloo_run_keeps_ranks_identical(tmp_path):
    settings = {"Trainer.max_steps": 3, "Trainer.adversarial_start": 1, "Trainer.valid_every": 3}
    overrides = ddp_overrides(tmp_path, **settings, **{"Trainer.log_every": 1})
    finished = torchrun(tmp_path, RANK_SCRIPT, overrides, str(tmp_path))
    assert finished.returncode == 0, finished.stderr[-3000:]
    ranks = [torch.load(tmp_path / f"rank{rank}.pt", weights_only=True) for rank in (0, 1)]
    initial = torch.load(
        tmp_path / "runs" / "ddp" / "checkpoints" / "latest" / "checkpoint.pt", weights_only=True
    )
    for part in ("generator", "discriminator"):
        for key, value in ranks[0][part].items():
            assert torch.equal(value, ranks[1][part][key]), f"{part}.{key} differs between ranks"
            assert torch.equal(value, initial[part][key]), f"rank 0's checkpoint differs at {part}.{key}"
    # Only rank 0 writes: one pair of log folders, one config, one set of checkpoints.
    assert sorted(os.listdir(tmp_path / "runs" / "ddp" / "logs")) == ["train", "val"]
    assert initial["step"] == 3


# Rank 1's fetch of its fourth batch fails as if too many of its files had broken.
FAILING_RANK_SCRIPT = """
import json, os, sys
import torch
from gan_enhance.data.datasets import TooManyBadFilesError
from gan_enhance.train import loop
from gan_enhance.train.config import load_config
from gan_enhance.train.run import run_training

torch.set_num_threads(1)
config_path, overrides = sys.argv[1], json.loads(sys.argv[2])
fetch = loop.BatchStream.__next__
fetched = []

def failing_fetch(self):
    fetched.append(1)
    if os.environ["RANK"] == "1" and len(fetched) == 4:
        raise TooManyBadFilesError("2 of 2 training files failed to load (rank 1)")
    return fetch(self)

loop.BatchStream.__next__ = failing_fetch
run_training({**load_config(config_path), **overrides})
"""


@pytest.mark.slow
def test_a_data_failure_on_one_rank_stops_every_rank_and_rank_0_keeps_the_steps(tmp_path):
    settings = {"Trainer.max_steps": 10, "Trainer.adversarial_start": 100, "Trainer.valid_every": 0}
    overrides = ddp_overrides(tmp_path, **settings, **{"Trainer.checkpoint_every": 100})
    finished = torchrun(tmp_path, FAILING_RANK_SCRIPT, overrides)
    assert finished.returncode != 0
    assert "TooManyBadFilesError: 2 of 2 training files failed to load (rank 1)" in finished.stderr
    assert "data loading failed on another rank" in finished.stderr
    # rank 0 wrote latest after the three steps every rank trained, at the data position before the fourth
    latest = torch.load(
        tmp_path / "runs" / "ddp" / "checkpoints" / "latest" / "checkpoint.pt", weights_only=True
    )
    assert latest["step"] == 3
    assert latest["data"]["batches"] == 3


# Rank 1 resumes from `previous` (as if its copy of `latest` were stale or unreadable); rank 0 from `latest`.
DIVERGING_RESUME_SCRIPT = """
import json, os, sys
import torch
from gan_enhance.train import checkpoint, run
from gan_enhance.train.checkpoint import checkpoint_path, load_checkpoint
from gan_enhance.train.config import load_config

torch.set_num_threads(1)
config_path, overrides = sys.argv[1], json.loads(sys.argv[2])
choose = checkpoint.load_resumable

def stale_on_rank_1(run_dir, set_aside=False):
    if os.environ["RANK"] == "1":
        path = checkpoint_path(run_dir, "previous")
        return load_checkpoint(path), path
    return choose(run_dir, set_aside)

checkpoint.load_resumable = stale_on_rank_1
run.run_training({**load_config(config_path), **overrides}, resume=len(sys.argv) > 3)
"""


@pytest.mark.slow
def test_ranks_that_resume_from_different_checkpoints_stop_with_one_error(tmp_path):
    settings = {"Trainer.max_steps": 3, "Trainer.adversarial_start": 100, "Trainer.valid_every": 0}
    overrides = ddp_overrides(
        tmp_path, **settings, **{"Trainer.checkpoint_every": 1, "Trainer.dist_timeout_minutes": 1.0}
    )

    def launch(resume: bool, **extra) -> subprocess.CompletedProcess:
        return torchrun(
            tmp_path, DIVERGING_RESUME_SCRIPT, {**overrides, **extra}, *(["resume"] if resume else [])
        )

    first = launch(resume=False)
    assert first.returncode == 0, first.stderr[-3000:]
    resumed = launch(resume=True, **{"Trainer.max_steps": 5})
    assert resumed.returncode != 0
    assert "the ranks resumed from different checkpoints (steps 2 to 3" in resumed.stderr, resumed.stderr[
        -3000:
    ]


# At the fourth step the spike guard calls for a restore; rank 1 cannot read any checkpoint, rank 0 can.
SPIKE_SCRIPT = """
import json, os, sys
import torch
from gan_enhance.errors import CheckpointError
from gan_enhance.train import checkpoint
from gan_enhance.train.config import load_config
from gan_enhance.train.distributed import unwrap
from gan_enhance.train.guard import SpikeGuard
from gan_enhance.train.run import run_training

torch.set_num_threads(1)
config_path, overrides, out = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
load, observed = checkpoint.load_resumable, []

def spike_at_step_4(self, loss, adversarial):
    observed.append(loss)
    return len(observed) == 4

def unreadable_on_rank_1(run_dir, set_aside=False):
    if os.environ["RANK"] == "1":
        raise CheckpointError("latest is unreadable here (rank 1)")
    return load(run_dir, set_aside)

SpikeGuard.observe = spike_at_step_4
checkpoint.load_resumable = unreadable_on_rank_1
state = run_training({**load_config(config_path), **overrides}).state
torch.save(unwrap(state.generator).state_dict(), os.path.join(out, f"rank{os.environ['RANK']}.pt"))
print(f"rank {os.environ['RANK']} ended at step {state.step}")
"""


@pytest.mark.slow
def test_a_spike_restore_that_fails_on_one_rank_lowers_the_rate_on_every_rank(tmp_path):
    settings = {
        "Trainer.max_steps": 6,
        "Trainer.adversarial_start": 100,
        "Trainer.valid_every": 0,
        "Trainer.checkpoint_every": 2,
        "Trainer.spike_factor": 3.0,
        "Trainer.spike_action": "restore",
        "Trainer.dist_timeout_minutes": 1.0,
    }
    finished = torchrun(tmp_path, SPIKE_SCRIPT, ddp_overrides(tmp_path, **settings), str(tmp_path))
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert "rank 0 ended at step 6" in finished.stdout and "rank 1 ended at step 6" in finished.stdout
    # rank 1 says why on stderr; rank 0 (quiet) in the run's log
    assert "cannot restore after loss spikes (latest is unreadable here (rank 1))" in finished.stderr
    log = (tmp_path / "runs" / "ddp" / "train.log").read_text()
    assert "cannot restore after loss spikes (another rank could not load a checkpoint" in log
    ranks = [torch.load(tmp_path / f"rank{rank}.pt", weights_only=True) for rank in (0, 1)]
    for key, value in ranks[0].items():
        assert torch.equal(value, ranks[1][key]), f"generator.{key} differs between ranks"
