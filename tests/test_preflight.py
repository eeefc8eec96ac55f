"""``train --check`` proves every external model and checkpoint loadable (offline failures in one line, at
once); the data summary reports files, hours, rates and band limits, and warns about band-limited targets.

Hub loading is made to fail fast: ``HF_HUB_OFFLINE=1`` and an empty cache folder. No test reaches the
network (the one reachability test points the hub at a closed port on this machine).
"""

from __future__ import annotations

import logging
import os
import re
import shutil

import numpy as np
import pytest
import soundfile
import torch
import yaml
from test_train_step import tiny_config

from gan_enhance._compat import patch
from gan_enhance.errors import CheckpointError, ConfigError

patch()  # transformers (the tiny_wavlm_dir fixture, the WavLM config check) imports torchaudio

from gan_enhance.cli import main as cli_main  # noqa: E402
from gan_enhance.nn.wavlm import load_wavlm, locate_wavlm  # noqa: E402
from gan_enhance.train.builders import read_experiment  # noqa: E402
from gan_enhance.train.data import build_datasets  # noqa: E402
from gan_enhance.train.distributed import DistInfo  # noqa: E402
from gan_enhance.train.preflight import check_run, external_models, log_data_summary  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HUB_ID = "microsoft/wavlm-large"


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """No network, an empty hub cache: a hub id that is not cached must fail at once."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path / "hf_home" / "hub"


@pytest.fixture
def speech(tmp_path) -> str:
    folder = tmp_path / "speech"
    folder.mkdir()
    rng = np.random.default_rng(0)
    soundfile.write(folder / "a.wav", 0.1 * rng.standard_normal(16000), 16000)
    return str(folder)


def wavlm_config(speech: str, model: str, weight: float = 1.0, **overrides) -> dict:
    return tiny_config(
        **{
            "Data.train_sources": [speech],
            "Data.val_sources": [speech],
            "lambdas.wavlm/loss": weight,
            "WavLMFeatureLoss.model": model,
            **overrides,
        }
    )


def test_offline_hub_model_fails_the_check_in_one_line_naming_key_and_remedy(offline, speech):
    experiment = read_experiment(wavlm_config(speech, HUB_ID))
    with pytest.raises(ConfigError) as error:
        check_run(experiment)
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(f"WavLMFeatureLoss.model: cannot load '{HUB_ID}'")
    assert "not in the local cache" in message
    assert "--wavlm PATH" in message and "--wavlm none" in message and "lambdas.wavlm/loss 0" in message
    # the run itself stops at the same line before building anything (no download retries)
    with pytest.raises(ConfigError, match="cannot load"):
        check_run(experiment, load_models=False)


def test_train_check_prints_the_one_line_and_not_config_ok(offline, speech, capsys):
    overrides = ["--Data.train_sources", f"[{speech}]", "--Data.val_sources", f"[{speech}]"]
    code = cli_main(
        ["train", "--args.load", os.path.join(ROOT, "conf", "stage1_16k.yml"), *overrides, "--check"]
    )
    captured = capsys.readouterr()
    assert code == 1
    assert "config OK" not in captured.out
    errors = [line for line in captured.err.splitlines() if "error:" in line]
    assert len(errors) == 1 and f"WavLMFeatureLoss.model: cannot load '{HUB_ID}'" in errors[0]


@pytest.mark.parametrize("case", ["empty training folder", "cuda without a GPU"])
def test_train_check_finds_what_would_stop_the_run_at_its_start(speech, tmp_path, capsys, case):
    """--check used to say "config OK" for both: the run then died at once."""
    empty = tmp_path / "empty"
    empty.mkdir()
    sources = [str(empty)] if case == "empty training folder" else [speech]
    overrides = {
        "Data.train_sources": sources,
        "Data.val_sources": [speech],
        "runs_dir": str(tmp_path / "runs"),
    }
    if case == "cuda without a GPU":
        if torch.cuda.is_available():
            pytest.skip("a GPU is visible")
        overrides["Trainer.device"] = "cuda"
    config = tmp_path / "run.yml"
    config.write_text(yaml.safe_dump(tiny_config(**overrides)))
    code = cli_main(["train", "--args.load", str(config), "--check"])
    captured = capsys.readouterr()
    assert code == 1 and "config OK" not in captured.out
    error = [line for line in captured.err.splitlines() if "error:" in line][-1]
    expected = (
        str(empty) if case == "empty training folder" else "Trainer.device is 'cuda' but no CUDA device"
    )
    assert expected in error


def test_a_zero_weight_loss_needs_no_model(offline, speech):
    experiment = read_experiment(wavlm_config(speech, "/nonexistent/wavlm", weight=0.0))
    assert external_models(experiment) == []
    check_run(experiment)


def test_a_local_folder_passes_and_a_broken_one_names_what_is_missing(
    offline, speech, tiny_wavlm_dir, tmp_path
):
    check_run(read_experiment(wavlm_config(speech, tiny_wavlm_dir)))
    no_weights = tmp_path / "no_weights"
    no_weights.mkdir()
    shutil.copy(os.path.join(tiny_wavlm_dir, "config.json"), no_weights)
    with pytest.raises(ConfigError, match=r"WavLMFeatureLoss.model: folder .*no_weights has no weights"):
        check_run(read_experiment(wavlm_config(speech, str(no_weights))))
    corrupt = shutil.copytree(tiny_wavlm_dir, tmp_path / "corrupt")
    (corrupt / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(ConfigError, match="model.safetensors does not read"):
        check_run(read_experiment(wavlm_config(speech, str(corrupt))))
    with pytest.raises(ConfigError, match="/nonexistent/wavlm is not a folder"):
        check_run(read_experiment(wavlm_config(speech, "/nonexistent/wavlm")))


def test_a_cached_hub_id_loads_offline_from_the_cache(offline, tiny_wavlm_dir):
    # the hub cache layout: models--org--name/{refs/main, snapshots/<commit>/files}
    repo = offline / "models--test-org--tiny-wavlm"
    snapshot = repo / "snapshots" / ("0" * 40)
    shutil.copytree(tiny_wavlm_dir, snapshot)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    source = locate_wavlm("test-org/tiny-wavlm")
    assert (source.kind, source.folder) == ("cache", str(snapshot))
    model = load_wavlm("test-org/tiny-wavlm")
    reference = load_wavlm(str(snapshot))
    for (name, value), (_, other) in zip(model.state_dict().items(), reference.state_dict().items()):
        assert torch.equal(value, other), name


def test_an_unreachable_hub_fails_fast_without_offline_mode(offline, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # the discard port: connection refused
    with pytest.raises(ConfigError, match=r"no network: http://127.0.0.1:9 does not answer"):
        locate_wavlm(HUB_ID, "WavLMFeatureLoss.model")


def test_a_wavlm_conditioned_generator_is_checked_under_its_own_key(offline, speech):
    config = tiny_config(
        **{
            "Data.train_sources": [speech],
            "Data.val_sources": [speech],
            "generator": "hifipp",
            "HiFiPlusPlus.wavlm": HUB_ID,
        }
    )
    with pytest.raises(ConfigError, match=rf"^HiFiPlusPlus.wavlm: cannot load '{HUB_ID}'.*set it to ''"):
        check_run(read_experiment(config))


def test_finetune_checkpoint_must_load(offline, speech, tmp_path):
    from test_train_step import tiny_state

    from gan_enhance.train.checkpoint import save_checkpoint, state_payload

    def experiment(path):
        return read_experiment(
            tiny_config(
                **{
                    "Data.train_sources": [speech],
                    "Data.val_sources": [speech],
                    "FineTune.checkpoint": str(path),
                }
            )
        )

    with pytest.raises(CheckpointError, match=r"^FineTune.checkpoint .*missing_run holds no checkpoint"):
        check_run(experiment(tmp_path / "missing_run"))
    run = tmp_path / "run"
    save_checkpoint(state_payload(tiny_state(), {}, {}, {}, {}), run, ["latest"])
    check_run(experiment(run))
    check_run(experiment(run), load_models=False)  # the run itself does not load it twice
    (run / "checkpoints" / "latest" / "checkpoint.pt").write_bytes(b"truncated")
    with pytest.raises(CheckpointError, match=r"^FineTune.checkpoint: .*not a readable training checkpoint"):
        check_run(experiment(run))


def write_tone_files(folder, specs) -> None:
    """``(name, rate, band_hz)``: white noise at ``rate`` with every component above ``band_hz`` removed."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    for name, rate, band in specs:
        spectrum = np.fft.rfft(rng.standard_normal(2 * rate))
        spectrum[np.fft.rfftfreq(2 * rate, 1 / rate) > band] = 0
        soundfile.write(folder / name, 0.1 * np.fft.irfft(spectrum, 2 * rate), rate)


def test_data_summary_reports_files_rates_and_warns_about_band_limited_targets(tmp_path, caplog):
    speech = tmp_path / "speech"
    write_tone_files(
        speech, [("full48k.wav", 48000, 24000), ("narrow48k.wav", 48000, 4000), ("wide16k.wav", 16000, 8000)]
    )
    config = tiny_config(
        **{
            "Data.train_sources": [str(speech)],
            "Data.val_sources": [str(speech)],
            "Data.val_items": 2,
            "Data.epoch_items": 4,
            "out_sample_rate": 48000,
            "Data.segment_samples": 6144,
            "runs_dir": str(tmp_path / "runs"),
        }
    )
    experiment = read_experiment(config)
    train, val = build_datasets(experiment.data, DistInfo())
    (tmp_path / "runs" / "debug").mkdir(parents=True)
    with caplog.at_level(logging.INFO, logger="gan_enhance.train"):
        log_data_summary(experiment, train, val)
    text = (tmp_path / "runs" / "debug" / "data_summary.txt").read_text()
    assert "train: 4 items from clean audio degraded on the fly; 3 files, 0.00 h" in text
    assert "rates 16000 Hz x1, 48000 Hz x2" in text
    # the 48 kHz full-band file reaches 24 kHz; the 4 kHz one and the 16 kHz file (8 kHz) fall short
    # (the estimate sees a few hertz of window leakage above a brick-wall edge)
    assert re.search(
        r"target bandwidth 4\.[01]-24\.0 kHz \(median 8\.0 kHz, 3 sampled; 2 below 21\.6 kHz\)", text
    )
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(
        "2 of 3 sampled train targets are band-limited below the 24 kHz Nyquist" in w for w in warnings
    )
    assert "noise: synthetic" in text

    # at a 16 kHz output only the 4 kHz file is narrow (the others reach 8 kHz)
    caplog.clear()
    experiment = read_experiment({**config, "out_sample_rate": 16000})
    with caplog.at_level(logging.INFO, logger="gan_enhance.train"):
        log_data_summary(experiment, train, val)
    assert "1 below 7.2 kHz" in (tmp_path / "runs" / "debug" / "data_summary.txt").read_text()


def summary_lines(tmp_path, speech_dir, **overrides) -> list[str]:
    config = tiny_config(
        **{
            "Data.train_sources": [str(speech_dir)],
            "Data.val_sources": [str(speech_dir)],
            "Data.val_items": 1,
            "Data.epoch_items": 2,
            "runs_dir": str(tmp_path / "runs"),
            **overrides,
        }
    )
    experiment = read_experiment(config)
    train, val = build_datasets(experiment.data, DistInfo())
    (tmp_path / "runs" / "debug").mkdir(parents=True, exist_ok=True)
    log_data_summary(experiment, train, val)
    return (tmp_path / "runs" / "debug" / "data_summary.txt").read_text().splitlines()


def test_data_summary_describes_the_noise_and_rooms_the_task_adds_and_nothing_else(tmp_path, speech):
    noise = tmp_path / "noise"
    write_tone_files(noise, [("hum.wav", 16000, 8000), ("fan.wav", 16000, 8000)])
    rirs = tmp_path / "rirs"
    write_tone_files(rirs, [("room.wav", 16000, 8000)])
    folders = {"Data.noise_dirs": [str(noise)], "Data.rir_dirs": [str(rirs)]}
    # restoration: noise on 60% of items, 30% of those synthetic with random spectra; rooms on 40%
    lines = summary_lines(tmp_path, speech, **folders, **{"task": "restoration"})
    assert f"noise: 2 files in {noise}, on 60% of items; 30% of those get synthetic noise (shaped)" in lines
    assert f"impulse responses: 1 files in {rirs}, on 40% of items" in lines
    # no folders: every noisy item gets synthetic noise, every room is synthetic
    lines = summary_lines(tmp_path, speech, **{"task": "dereverb"})
    assert "noise: synthetic (shaped; no folder given), on 30% of items" in lines
    assert "impulse responses: synthetic (RT60 0.2-1.5 s; no folder given), on all items" in lines
    # long lists of folders or files are cut short
    write_tone_files(tmp_path / "more", [("wind.wav", 16000, 8000), ("rain.wav", 16000, 8000)])
    files = sorted(str(path) for path in (*noise.iterdir(), *(tmp_path / "more").iterdir()))
    lines = summary_lines(tmp_path, speech, **{"task": "denoise", "Data.noise_dirs": files})
    shown = ", ".join(files[:3])
    assert (
        f"noise: 4 files in {shown} and 1 more, on all items; 30% of those get synthetic noise (shaped)"
        in lines
    )
    # a task without noise or rooms says nothing about them, even with folders given
    lines = summary_lines(tmp_path, speech, **folders, **{"task": "pitch_shift"})
    assert not [line for line in lines if line.startswith(("noise", "impulse responses"))]


def test_files_listed_by_a_manifest_with_durations_get_their_rates_from_their_headers(tmp_path):
    from gan_enhance.data import CleanSource
    from gan_enhance.train.preflight import summarize_split

    write_tone_files(tmp_path / "speech", [("a.wav", 22050, 11025), ("b.wav", 16000, 8000)])
    manifest = tmp_path / "list.csv"
    manifest.write_text("path,duration\nspeech/a.wav,2.0\nspeech/b.wav,2.0\n")

    class Items:  # what the summary reads of a DegradedDataset: its source and its length
        source = CleanSource([str(manifest)])

        def __len__(self):
            return 8

    summary = summarize_split("train", Items(), 48000)
    assert all(entry.sample_rate == 0 for entry in Items.source.entries[0])  # the index opened nothing
    assert (summary.files, summary.seconds, dict(summary.rates)) == (2, 4.0, {16000: 1, 22050: 1})
    assert "rates 16000 Hz x1, 22050 Hz x1; target bandwidth" in summary.line(48000)


@pytest.mark.parametrize(
    "settings, message",
    [
        (
            {"Trainer.best_metric": "metric/dnsmos_ovrl", "Trainer.best_mode": "max"},
            r"quality_metrics: \[dnsmos",
        ),
        ({"Trainer.quality_metrics": ["dnsmos_ovr"]}, "Trainer.quality_metrics: unknown metric"),
        (
            {"Trainer.quality_metrics": ["dnsmos_ovrl"], "Trainer.best_metric": "metric/dnsmos_ovrl"},
            "best_mode 'min' contradicts",
        ),
        ({"Trainer.speech_metrics": False, "Trainer.best_metric": "metric/pesq"}, "validation computes"),
    ],
)
def test_validation_metrics_are_checked_before_the_run(settings, message):
    experiment = read_experiment(tiny_config(**settings))
    with pytest.raises(ConfigError, match=message):
        check_run(experiment, load_models=False)


def test_a_quality_metric_can_pick_best():
    experiment = read_experiment(
        tiny_config(
            **{
                "Trainer.quality_metrics": ["dnsmos_ovrl"],
                "Trainer.best_metric": "metric/dnsmos_ovrl",
                "Trainer.best_mode": "max",
            }
        )
    )
    check_run(experiment, load_models=False)


def test_speed_perturbation_reaches_training_items_only(tmp_path):
    # CleanSource.speed from the config: training excerpts of a 500 Hz tone come out at 1.2x its pitch,
    # validation's at the recorded pitch.
    speech = tmp_path / "speech"
    speech.mkdir()
    soundfile.write(speech / "tone.wav", 0.3 * np.sin(2 * np.pi * 500.0 * np.arange(32000) / 16000), 16000)
    config = tiny_config(
        **{
            "Data.train_sources": [str(speech)],
            "Data.val_sources": [str(speech)],
            "Data.val_items": 1,
            "Data.epoch_items": 1,
            "CleanSource.speed": [1.2, 1.2],
            "task": "denoise",
            "AddNoise.prob": 0.0,
            "runs_dir": str(tmp_path / "runs"),
        }
    )
    train, val = build_datasets(read_experiment(config).data, DistInfo())

    def peak_hz(item) -> float:
        y = item["y"].reshape(-1).numpy()
        return float(np.argmax(np.abs(np.fft.rfft(y * np.hanning(y.size))))) * 16000 / y.size

    assert abs(peak_hz(train[0]) - 600.0) < 10.0
    assert abs(peak_hz(val[0]) - 500.0) < 10.0
