"""End to end: the real conf/ files with tiny overrides, on CPU; resume; logs; checkpoints; the CLI."""

from __future__ import annotations

import glob
import os
import re

import pytest
import torch
import yaml
from tiny_settings import TINY_HIFIPP

from gan_enhance._compat import patch
from gan_enhance.errors import CheckpointError, ConfigError
from gan_enhance.train.builders import read_experiment
from gan_enhance.train.checkpoint import checkpoint_path
from gan_enhance.train.config import load_config
from gan_enhance.train.run import run_training

patch()  # the tiny_wavlm_dir fixture imports transformers, which imports torchaudio
CONF = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "conf"))

TINY_DISCRIMINATORS = {
    "MultiPeriodDiscriminator.periods": [2, 3],
    "MultiPeriodDiscriminator.channels": [4, 8],
    "MultiPeriodDiscriminator.strides": [3, 1],
    "MultiScaleSTFTDiscriminator.n_ffts": [256, 128],
    "MultiScaleSTFTDiscriminator.filters": 4,
    "MultiScaleSTFTDiscriminator.max_filters": 8,
    "MultiBandDiscriminator.window_lengths": [256, 128],
    "MultiBandDiscriminator.channels": 4,
    "MultiScaleMelLoss.n_mels": [20, 40],
    "MultiScaleMelLoss.window_lengths": [256, 512],
}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> str:
    from gan_enhance.data import write_synthetic_corpus

    folder = tmp_path_factory.mktemp("corpus")
    write_synthetic_corpus(str(folder), num_files=2, seconds=1.5, sample_rate=48000)
    return str(folder)


def tiny_run(corpus: str, runs_dir, name: str, **overrides) -> dict:
    """Overrides that make any conf/ stage a few-second CPU run writing under ``runs_dir``."""
    return {
        "name": name,
        "runs_dir": str(runs_dir),
        "Trainer.device": "cpu",
        "Trainer.num_workers": 0,
        "Trainer.batch_size": 2,
        "Trainer.max_steps": 1,
        "Trainer.adversarial_start": 0,
        "Trainer.log_every": 1,
        "Trainer.valid_every": 1,
        "Trainer.valid_batches": 1,
        "Trainer.sample_every": 1,
        "Trainer.num_samples": 1,
        "Trainer.checkpoint_every": 1,
        "Trainer.keep_every": 0,
        "Trainer.speech_metrics": False,
        "Trainer.quiet": True,
        "Data.segment_samples": 6144,
        "Data.epoch_items": 4,
        "Data.val_items": 2,
        "Data.pin_memory": False,
        "Data.train_sources": [corpus],
        "Data.val_sources": [corpus],
        "EMA.start_step": 0,
        "Scheduler.warmup_steps": 0,
        **overrides,
    }


def stage_config(stage: str, corpus: str, runs_dir, wavlm_dir: str, **overrides) -> dict:
    return {
        **load_config(os.path.join(CONF, f"{stage}.yml")),
        **TINY_HIFIPP,
        **TINY_DISCRIMINATORS,
        "WavLMFeatureLoss.model": wavlm_dir,
        **tiny_run(corpus, runs_dir, stage, **overrides),
    }


@pytest.fixture(scope="module")
def stage1_run(corpus, tiny_wavlm_dir, tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    result = run_training(stage_config("stage1_16k", corpus, runs, tiny_wavlm_dir))
    return runs, result


@pytest.mark.slow
def test_stage1_config_runs_one_step_and_writes_a_weights_only_checkpoint(stage1_run):
    runs, result = stage1_run
    assert result.step == 1
    path = checkpoint_path(runs / "stage1_16k", "latest")
    payload = torch.load(path, weights_only=True)
    expected = {"version", "step", "generator", "generator_ema", "generator_config", "discriminator"}
    expected |= {
        "discriminator_config",
        "optimizers",
        "schedulers",
        "scaler",
        "rng",
        "data",
        "metrics",
        "config",
    }
    assert expected <= set(payload)
    assert payload["generator_config"]["name"] == "hifipp"
    assert payload["step"] == 1 and "wavlm/loss" in payload["metrics"]
    assert checkpoint_path(runs / "stage1_16k", "best").is_file()
    # The resolved config is complete: loading it back passes the same checks.
    resolved = load_config(runs / "stage1_16k" / "config.yml")
    assert read_experiment(resolved).generator_kwargs["upsample_rates"] == [8, 4]


@pytest.mark.slow
def test_stage2_config_starts_from_stage1_and_reports_new_keys(stage1_run, corpus, tiny_wavlm_dir, caplog):
    runs, _ = stage1_run
    config = stage_config(
        "stage2_48k",
        corpus,
        runs,
        tiny_wavlm_dir,
        **{"FineTune.checkpoint": str(runs / "stage1_16k"), "Data.segment_samples": 12288},
    )
    with caplog.at_level("INFO", logger="gan_enhance.train"):
        result = run_training(config)
    assert result.state.generator.out_sample_rate == 48000
    new_keys = [r.message for r in caplog.records if "new (initialised fresh): head." in r.message]
    assert new_keys, "the 48 kHz head's weights must be reported as new"
    source = torch.load(checkpoint_path(runs / "stage1_16k", "latest"), weights_only=True)["generator_ema"]
    assert any("loaded" in r.message for r in caplog.records)
    assert set(source) < set(result.state.generator.state_dict())


def test_stage2_refuses_mismatched_shapes_unless_allowed(
    stage1_run, corpus, tiny_wavlm_dir, tmp_path, caplog
):
    runs, _ = stage1_run
    wider = {
        "HiFiPlusPlus.upsample_channels": 32,
        "FineTune.checkpoint": str(runs / "stage1_16k"),
        "Trainer.valid_every": 0,
        "Trainer.sample_every": 0,
        "Data.segment_samples": 12288,
    }
    config = stage_config("stage2_48k", corpus, tmp_path, tiny_wavlm_dir, **wider)
    with pytest.raises(CheckpointError, match="do not fit.*FineTune.allow_shape_mismatch"):
        run_training(config)
    with caplog.at_level("INFO", logger="gan_enhance.train"):
        run_training({**config, "FineTune.allow_shape_mismatch": True})
    assert any("shape mismatch (initialised fresh)" in r.message for r in caplog.records)


def debug_config(corpus: str, runs_dir, name: str, **overrides) -> dict:
    return {**load_config(os.path.join(CONF, "debug.yml")), **tiny_run(corpus, runs_dir, name, **overrides)}


@pytest.mark.slow
def test_resumed_run_equals_uninterrupted_run_bitwise(corpus, tmp_path):
    settings = {
        "Trainer.deterministic": True,
        "Trainer.adversarial_start": 1,
        "Trainer.valid_every": 2,
        "Trainer.sample_every": 0,
        "Trainer.log_every": 2,
        "Trainer.checkpoint_every": 2,
    }
    run_training(debug_config(corpus, tmp_path, "whole", **settings, **{"Trainer.max_steps": 4}))
    run_training(debug_config(corpus, tmp_path, "split", **settings, **{"Trainer.max_steps": 2}))
    run_training(debug_config(corpus, tmp_path, "split", **settings, **{"Trainer.max_steps": 4}), resume=True)
    whole = torch.load(checkpoint_path(tmp_path / "whole", "latest"), weights_only=True)
    split = torch.load(checkpoint_path(tmp_path / "split", "latest"), weights_only=True)
    assert whole["step"] == split["step"] == 4
    assert whole["data"] == split["data"] and whole["data"]["epoch"] >= 1  # crossed an epoch boundary
    for part in ("generator", "generator_ema", "discriminator"):
        for key, value in whole[part].items():
            assert torch.equal(value, split[part][key]), f"{part}.{key}"
    for side in ("generator", "discriminator"):
        for a, b in zip(whole["optimizers"][side], split["optimizers"][side]):
            for index, state in a["state"].items():
                for name, value in state.items():
                    assert torch.equal(value, b["state"][index][name]), f"{side} optimizer {index}.{name}"
    assert whole["schedulers"] == split["schedulers"] and whole["rng"]["python"] == split["rng"]["python"]


def test_resume_needs_a_checkpoint_and_a_finished_run_needs_resume(corpus, tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint"):
        run_training(debug_config(corpus, tmp_path, "none", **{"Trainer.max_steps": 1}), resume=True)


def test_resuming_with_a_changed_model_setting_says_what_differs_in_one_line(corpus, tmp_path):
    """A wider model used to print torch's list of every mismatched tensor: hundreds of lines."""
    run_training(debug_config(corpus, tmp_path, "run", **{"Trainer.max_steps": 1}))
    wider = debug_config(
        corpus, tmp_path, "run", **{"Trainer.max_steps": 2, "ConvNeXtUNet.channels": [12, 24]}
    )
    with pytest.raises(CheckpointError) as error:
        run_training(wider, resume=True)
    message = str(error.value)
    assert "\n" not in message and len(message) < 700, message
    assert "the checkpoint's generator (step 1) does not fit this run's generator: " in message
    assert re.search(r"\d+ tensors of other shapes \(saved vs this run\): \S+ \(8,\) vs \(12,\)", message), (
        message
    )
    assert ", and " in message and "more" in message
    assert "runs/<name>/config.yml" in message


@pytest.mark.slow
def test_both_writers_hold_the_same_loss_tags_plus_audio_and_images(corpus, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    overrides = {
        "Trainer.max_steps": 3,
        "Trainer.valid_every": 2,
        "Trainer.profile_start": 1,
        "Trainer.profile_steps": 1,
        "Optimizer.kind": "muon",
    }
    run_training(debug_config(corpus, tmp_path, "logs", **overrides))
    assert glob.glob(str(tmp_path / "logs" / "logs" / "profile" / "*.pt.trace.json*"))
    logs = {}
    for split in ("train", "val"):
        (folder,) = {os.path.dirname(p) for p in glob.glob(str(tmp_path / "logs" / "logs" / split / "*"))}
        logs[split] = EventAccumulator(folder, size_guidance={"scalars": 0, "audio": 0, "images": 0}).Reload()
    train_tags, val_tags = set(logs["train"].Tags()["scalars"]), set(logs["val"].Tags()["scalars"])
    losses = {"mel/loss", "l1/loss", "adv/gen", "adv/feat", "adv/disc", "total/loss"}
    assert losses <= train_tags and losses <= val_tags
    assert {"grad_norm/gen", "grad_norm/disc", "lr/gen", "lr/gen_muon", "lr/disc"} <= train_tags
    assert {"grad/mel/loss", "grad/adv/feat", "grad_norm/adv/gen"} <= train_tags
    assert {"time/step", "time/data", "perf/samples_per_s", "nonfinite/skipped"} <= train_tags
    assert "metric/sisdr" in val_tags
    assert {"sample_0/input", "sample_0/output", "sample_0/target"} <= set(logs["val"].Tags()["audio"])
    images = set(logs["val"].Tags()["images"])
    assert images == {"sample_0/spectrogram"}  # one figure: input, output, target, difference
    assert [event.step for event in logs["train"].Scalars("total/loss")] == [1, 2, 3]
    assert len(glob.glob(str(tmp_path / "logs" / "samples" / "step_2" / "*.wav"))) == 3


def test_cli_rejects_an_unknown_key_before_training(tmp_path, capsys):
    from gan_enhance.cli import main

    code = main(
        [
            "train",
            "--args.load",
            os.path.join(CONF, "debug.yml"),
            "--Trainer.max_stepz",
            "3",
            "--runs_dir",
            str(tmp_path),
        ]
    )
    assert code == 1
    assert "Trainer.max_stepz" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    "task", sorted(os.path.basename(p)[:-4] for p in glob.glob(os.path.join(CONF, "task", "*.yml")))
)
def test_every_task_overlay_is_a_valid_config(task, tmp_path):
    config = {
        **load_config(os.path.join(CONF, "stage1_16k.yml")),
        **load_config(os.path.join(CONF, "task", f"{task}.yml")),
    }
    assert read_experiment(config).data.task == task


def test_sample_rates_are_set_once_at_the_top_level():
    config = {**load_config(os.path.join(CONF, "debug.yml")), "ConvNeXtUNet.in_sample_rate": 48000}
    with pytest.raises(ConfigError, match="top-level key 'in_sample_rate'"):
        read_experiment(config)
    for path in glob.glob(os.path.join(CONF, "**", "*.yml"), recursive=True):
        text = yaml.safe_load(open(path))
        assert not any(k.endswith("sample_rate") and "." in k for k in text), path


def test_validation_batches_are_the_same_every_time_even_when_cut_short(corpus, tmp_path):
    from gan_enhance.train.data import build_loaders
    from gan_enhance.train.distributed import DistInfo

    experiment = read_experiment(debug_config(corpus, tmp_path, "val", **{"Data.val_items": 4}))
    _, val = build_loaders(experiment.data, 2, 0, DistInfo())
    first = next(iter(val))["x"]
    second = next(iter(val))["x"]
    whole = [batch["x"] for batch in val]
    assert torch.equal(first, second) and torch.equal(first, whole[0]) and len(whole) == 2
    assert not torch.equal(whole[0], whole[1])


def test_a_validation_callback_sees_every_validation_and_can_stop_the_run(corpus, tmp_path):
    seen = []

    def callback(step, metrics):
        seen.append((step, sorted(metrics)))
        return step >= 4

    overrides = {"Trainer.max_steps": 10, "Trainer.valid_every": 2}
    result = run_training(debug_config(corpus, tmp_path, "pruned", **overrides), on_validation=callback)
    assert [step for step, _ in seen] == [2, 4]
    assert "mel/loss" in seen[0][1]
    assert result.step == 4 and result.stopped_early
    assert checkpoint_path(tmp_path / "pruned", "latest").is_file()


def test_a_run_whose_last_step_is_not_a_validation_step_still_validates_and_keeps_best(corpus, tmp_path):
    # recipes/folders' smoke test: `--stage2_args "--Trainer.max_steps 10"` with valid_every 20 used to end
    # without a validation, so without `best`, and the recipe's export stage (tag best) stopped there.
    config = {**load_config(os.path.join(CONF, "debug.yml"))}
    config.update(tiny_run(corpus, tmp_path, "short", **{"Trainer.max_steps": 3, "Trainer.valid_every": 5}))
    result = run_training(config)
    assert result.step == 3 and result.best is not None
    best = torch.load(checkpoint_path(tmp_path / "short", "best"), weights_only=True)
    assert best["step"] == 3


def test_the_run_folder_config_resumes_from_any_working_directory(corpus, tmp_path, monkeypatch):
    # A config with relative paths, trained from its folder; config.yml in the run folder holds them as
    # absolute paths, so `--args.load <run>/config.yml --resume` works from anywhere (a job script's cwd).
    import shutil

    project = tmp_path / "project"
    shutil.copytree(corpus, project / "speech")
    monkeypatch.chdir(project)
    config = {**load_config(os.path.join(CONF, "debug.yml"))}
    config.update(tiny_run("speech", "runs", "rel", **{"Trainer.max_steps": 2}))
    run_training(config)
    saved = yaml.safe_load((project / "runs" / "rel" / "config.yml").read_text())
    assert saved["runs_dir"] == str(project / "runs")
    assert saved["Data.train_sources"] == saved["Data.val_sources"] == [str(project / "speech")]
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    resumed = run_training({**saved, "Trainer.max_steps": 3}, resume=True)
    assert resumed.step == 3
    assert not (tmp_path / "elsewhere" / "runs").exists()
