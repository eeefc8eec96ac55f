"""Trainer building blocks: schedules, EMA, config reading, RNG snapshots (optimizers: test_optim.py)."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch
from torch import nn

from gan_enhance.errors import ConfigError
from gan_enhance.train.config import ConfigReader, coerce, load_config, parse_overrides
from gan_enhance.train.ema import EMASettings, GeneratorEMA
from gan_enhance.train.optim import OptimizerSettings
from gan_enhance.train.precision import rng_state, set_rng_state
from gan_enhance.train.schedulers import ScheduleFactor, SchedulerSettings, build_schedulers
from gan_enhance.train.state import TrainerSettings


def test_exponential_schedule_with_warmup_matches_its_formula():
    factor = ScheduleFactor("exponential", gamma=0.99, warmup_steps=4, total_steps=0, min_ratio=0.0)
    assert factor(0) == pytest.approx(0.25)
    assert factor(3) == pytest.approx(0.99**3)
    assert factor(10) == pytest.approx(0.99**10)


def test_cosine_schedule_ends_at_min_ratio_and_lambda_lr_round_trips():
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=2.0)
    settings = SchedulerSettings(kind="cosine", warmup_steps=0, total_steps=10, min_ratio=0.1)
    (scheduler,) = build_schedulers([optimizer], settings, max_steps=100)
    halfway = None
    for step in range(10):
        optimizer.step()
        scheduler.step()
        if step == 4:
            halfway = optimizer.param_groups[0]["lr"]
    assert halfway == pytest.approx(2.0 * (0.1 + 0.9 * 0.5))
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.2)
    restored_optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=2.0)
    (restored,) = build_schedulers([restored_optimizer], settings, max_steps=100)
    restored.load_state_dict(scheduler.state_dict())
    assert restored.last_epoch == 10


def test_cosine_needs_more_steps_than_warmup():
    with pytest.raises(ConfigError, match="total_steps"):
        ScheduleFactor("cosine", 1.0, warmup_steps=10, total_steps=5, min_ratio=0.0)


def test_ema_first_copies_then_averages():
    model = nn.Linear(2, 1, bias=False)
    ema = GeneratorEMA(model, EMASettings(decay=0.9, start_step=1, every=1))
    with torch.no_grad():
        model.weight.fill_(1.0)
    ema.update(model, step=0)  # before start_step: ignored
    ema.update(model, step=1)  # first update copies
    assert torch.equal(ema.module.weight, torch.ones(1, 2))
    with torch.no_grad():
        model.weight.fill_(3.0)
    ema.update(model, step=2)
    torch.testing.assert_close(ema.module.weight, torch.full((1, 2), 0.9 * 1.0 + 0.1 * 3.0))
    state = ema.state_dict()
    other = GeneratorEMA(nn.Linear(2, 1, bias=False), EMASettings(decay=0.9))
    other.load_state_dict(state)
    assert torch.equal(other.module.weight, ema.module.weight) and other.updates == 2


class HostReads(torch.overrides.TorchFunctionMode):
    """Records every read of a tensor's value on the host: on a GPU each one waits for the device."""

    READS = {torch.Tensor.__bool__, torch.Tensor.item, torch.Tensor.tolist, torch.Tensor.__float__}

    def __init__(self):
        super().__init__()
        self.reads = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func in self.READS:
            self.reads.append(func.__name__)
        return func(*args, **(kwargs or {}))


def test_an_ema_update_reads_nothing_back_from_the_device():
    """torch's AveragedModel tested its device counter in Python at every update: a GPU stall per step."""
    model = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3))  # with buffers, one of them an integer
    ema = GeneratorEMA(model, EMASettings(decay=0.9))
    with HostReads() as recorder:
        for step in range(3):
            ema.update(model, step)
    assert recorder.reads == [] and ema.updates == 3
    with torch.no_grad():
        model[0].weight.add_(1.0)
        model[1].num_batches_tracked.fill_(7)
    before = ema.module[0].weight.clone()
    ema.update(model, 3)
    torch.testing.assert_close(ema.module[0].weight, 0.9 * before + 0.1 * model[0].weight)
    assert int(ema.module[1].num_batches_tracked) == 7  # integer buffers take the newest value


def test_config_includes_are_relative_to_the_file_and_vars_substitute(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "base.yml").write_text("Trainer.max_steps: 5\nTrainer.seed: $seed\n")
    (tmp_path / "stage.yml").write_text("$include: [sub/base.yml]\n$vars: {seed: 7}\nTrainer.max_steps: 9\n")
    config = load_config(tmp_path / "stage.yml")
    assert config == {"Trainer.max_steps": 9, "Trainer.seed": 7}


def test_overrides_parse_yaml_values_and_argbind_lists():
    overrides = parse_overrides(
        ["--Trainer.max_steps", "10", "--Optimizer.lr=1e-4", "--X.rates", "8", "8", "2", "--Y.flag", "true"]
    )
    assert overrides == {"Trainer.max_steps": 10, "Optimizer.lr": 1e-4, "X.rates": [8, 8, 2], "Y.flag": True}


def test_unknown_and_mistyped_keys_are_errors_naming_the_key():
    reader = ConfigReader({"Trainer.max_stepz": 3})
    with pytest.raises(ConfigError, match=r"Trainer.max_stepz.*Did you mean Trainer.max_steps"):
        reader.settings(TrainerSettings, "Trainer")
    reader = ConfigReader({"Trainer.max_steps": "ten"})
    with pytest.raises(ConfigError, match="Trainer.max_steps.*integer"):
        reader.settings(TrainerSettings, "Trainer")
    reader = ConfigReader({"Trainer.max_steps": 3, "Stray.key": 1})
    reader.settings(TrainerSettings, "Trainer")
    with pytest.raises(ConfigError, match="Stray.key"):
        reader.check_all_used()


def test_scoped_keys_override_the_shared_section():
    reader = ConfigReader({"Optimizer.lr": 1.0, "discriminator/Optimizer.lr": 2.0})
    generator = reader.settings(OptimizerSettings, "Optimizer", scope="generator")
    discriminator = reader.settings(OptimizerSettings, "Optimizer", scope="discriminator")
    assert (generator.lr, discriminator.lr) == (1.0, 2.0)
    reader.check_all_used()


def test_coerce_widens_int_to_float_and_checks_lists():
    assert coerce(3, float, "k") == 3.0 and isinstance(coerce(3, float, "k"), float)
    assert coerce([1, 2], "list[float]", "k") == [1.0, 2.0]
    with pytest.raises(ConfigError, match="must be a list"):
        coerce(3, "list[int]", "k")
    with pytest.raises(ConfigError, match="true or false"):
        coerce(1, bool, "k")
    # one folder given without brackets (--Data.train_sources /data/clean) is a list of one folder
    assert coerce("/data/clean", "list[str]", "Data.train_sources") == ["/data/clean"]
    with pytest.raises(ConfigError, match="must be a list"):
        coerce("5", "list[float]", "k")


def test_rng_state_round_trips_through_a_weights_only_checkpoint(tmp_path):
    random.seed(1)
    np.random.seed(1)
    torch.manual_seed(1)
    torch.save(rng_state(), tmp_path / "rng.pt")
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    set_rng_state(torch.load(tmp_path / "rng.pt", weights_only=True))
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected
    assert math.isfinite(expected[0])


def test_best_tracker_follows_the_direction_and_counts_patience():
    from gan_enhance.train.checkpoint import BestTracker

    lower = BestTracker("mel/loss", "min", patience=2)
    assert [lower.update({"mel/loss": v}, step) for step, v in enumerate([3.0, 2.0, 2.5, 2.1])] == [
        True,
        True,
        False,
        False,
    ]
    assert lower.should_stop and (lower.best, lower.best_step) == (2.0, 1)
    higher = BestTracker("metric/pesq", "max", patience=0)
    assert [higher.update({"metric/pesq": v}, step) for step, v in enumerate([1.5, 2.0, 1.9])] == [
        True,
        True,
        False,
    ]
    assert not higher.should_stop
    with pytest.raises(ConfigError, match="metric/stoi"):
        BestTracker("metric/stoi", "max", 0).update({"mel/loss": 1.0}, 0)


def test_trainer_threads_set_torch_cpu_threads_and_zero_keeps_the_default():
    from gan_enhance.train.precision import configure_backends

    before = torch.get_num_threads()
    try:
        configure_backends(tf32=False, cudnn_benchmark=False, deterministic=False, threads=1)
        assert torch.get_num_threads() == 1
        configure_backends(tf32=False, cudnn_benchmark=False, deterministic=False, threads=0)
        assert torch.get_num_threads() == 1  # 0 leaves the count alone
        with pytest.raises(ConfigError, match="Trainer.threads"):
            configure_backends(tf32=False, cudnn_benchmark=False, deterministic=False, threads=-1)
    finally:
        torch.set_num_threads(before)


def test_deterministic_mode_warns_about_kernels_without_a_deterministic_version_instead_of_stopping():
    """On CUDA, reflection padding's backward (the STFTs, the period discriminator) has no deterministic
    kernel: strict mode would stop every deterministic GPU run at its first generator backward."""
    from gan_enhance.train.precision import configure_backends

    before = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
    )
    try:
        configure_backends(tf32=True, cudnn_benchmark=True, deterministic=True)
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.is_deterministic_algorithms_warn_only_enabled()
        assert not torch.backends.cudnn.benchmark and torch.backends.cudnn.deterministic
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])
        configure_backends(tf32=False, cudnn_benchmark=False, deterministic=False)


def test_a_torchrun_process_group_waits_as_long_as_the_config_says(monkeypatch):
    """Rank 0 validates and writes checkpoints alone while the others wait in a collective: NCCL's default
    10-minute watchdog would abort runs whose validation takes longer."""
    import datetime

    import torch.distributed as dist

    from gan_enhance.train.distributed import init_distributed

    calls = []
    monkeypatch.setattr(dist, "is_initialized", lambda: False)
    monkeypatch.setattr(dist, "init_process_group", lambda **kwargs: calls.append(kwargs))
    monkeypatch.setattr(dist, "get_backend", lambda: "gloo")
    for name, value in (("WORLD_SIZE", "2"), ("RANK", "1"), ("LOCAL_RANK", "1")):
        monkeypatch.setenv(name, value)
    info = init_distributed("cpu", timeout_minutes=90)
    assert (info.rank, info.world_size, info.distributed) == (1, 2, True)
    assert calls == [{"backend": "gloo", "timeout": datetime.timedelta(minutes=90)}]
    with pytest.raises(ConfigError, match="Trainer.dist_timeout_minutes"):
        init_distributed("cpu", timeout_minutes=0)


def test_ema_settings_out_of_range_are_refused():
    """torch's rule used to refuse a decay above 1; the own update must not extrapolate silently."""
    for settings in (EMASettings(decay=1.5), EMASettings(decay=0.9, every=0)):
        with pytest.raises(ConfigError, match="EMA.decay must be in"):
            GeneratorEMA(nn.Linear(2, 1), settings)


def test_the_bad_file_share_the_error_suggests_allows_those_files():
    from gan_enhance.data.datasets import BadFileLog

    log = BadFileLog(file_count=100, max_share=0.29)  # 0.29 * 100 is 28.999... in floating point
    assert len(log.record(["\n".join(f"file {i} is broken" for i in range(29))])) == 29
