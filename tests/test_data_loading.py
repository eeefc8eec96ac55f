"""Datasets, task presets, paired data, shards and the resumable loader."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gan_enhance.audio import read_audio, resample, write_audio
from gan_enhance.data import (
    PRESETS,
    CleanSource,
    DegradedDataset,
    PairedDataset,
    ShardDataset,
    build_dataloader,
    build_task,
    synthesize_speech,
    write_shards,
    write_synthetic_corpus,
)
from gan_enhance.errors import ConfigError, DataError


@pytest.fixture(scope="module")
def clean_dir(tmp_path_factory) -> str:
    folder = tmp_path_factory.mktemp("clean")
    write_synthetic_corpus(str(folder), num_files=4, seconds=1.2, sample_rate=48000, seed=0)
    return str(folder)


@pytest.fixture(scope="module")
def source(clean_dir) -> CleanSource:
    return CleanSource([clean_dir], min_duration=0.5)


def make_dataset(source, task="denoise", seed=0, length=8, segment=4000, **rates) -> DegradedDataset:
    built = build_task(task, **rates)
    return DegradedDataset(
        source, built.degradation, built.in_sample_rate, built.out_sample_rate, segment, length, seed
    )


def batches(loader, count):
    iterator = loader.forever()
    return [next(iterator) for _ in range(count)]


@pytest.mark.parametrize("task", [name for name in PRESETS if name != "pitch_shift"])
def test_every_preset_gives_items_of_the_right_shapes(source, task):
    dataset = make_dataset(source, task, segment=4800)
    item = dataset[3]
    ratio = dataset.out_sample_rate // dataset.in_sample_rate
    assert item["y"].shape == (1, 4800) and item["x"].shape == (1, 4800 // ratio) and item["index"] == 3
    assert item["x"].dtype == torch.float32 and item["x"].abs().max() <= 1.0
    assert not torch.equal(item["x"], item["y"][:, ::ratio])


@pytest.mark.slow
def test_pitch_shift_preset_item(source):
    item = make_dataset(source, "pitch_shift", segment=8000)[0]
    assert item["x"].shape == item["y"].shape == (1, 8000)


def test_bandwidth_extension_input_is_the_target_at_16k_when_nothing_else_acts(source):
    quiet = {"BandLimit": {"prob": 0.0}, "Codec": {"prob": 0.0}}
    task = build_task("bandwidth_extension", settings=quiet)
    assert (task.in_sample_rate, task.out_sample_rate) == (16000, 48000)
    item = DegradedDataset(source, task.degradation, 16000, 48000, 9600, 4, seed=0)[1]
    assert item["x"].shape == (1, 3200) and item["y"].shape == (1, 9600)
    assert torch.allclose(item["x"], resample(item["y"], 48000, 16000), atol=1e-5)


def test_task_settings_override_and_unknown_keys_fail(source):
    task = build_task("denoise", settings={"AddNoise": {"snr_db": [30.0, 30.0]}})
    assert task.degradation.degradations[0].snr_db == [30.0, 30.0]
    with pytest.raises(ConfigError, match="no degradation Reverb"):
        build_task("denoise", settings={"Reverb": {"prob": 1.0}})
    with pytest.raises(ConfigError, match="no setting 'snr'"):
        build_task("denoise", settings={"AddNoise": {"snr": [1, 2]}})
    with pytest.raises(ConfigError, match="unknown task"):
        build_task("denoize")
    with pytest.raises(DataError, match="whole number"):
        make_dataset(source, "bandwidth_extension", segment=4001)


def test_same_seed_same_batch_different_seed_different_batch(source):
    first = batches(build_dataloader(make_dataset(source, seed=1), 4, seed=5), 2)
    again = batches(build_dataloader(make_dataset(source, seed=1), 4, seed=5), 2)
    other = batches(build_dataloader(make_dataset(source, seed=2), 4, seed=5), 2)
    for a, b, c in zip(first, again, other, strict=True):
        assert (
            torch.equal(a["x"], b["x"])
            and torch.equal(a["y"], b["y"])
            and torch.equal(a["index"], b["index"])
        )
        assert a["x"].shape == (4, 1, 4000)
        assert not torch.equal(a["x"], c["x"])


@pytest.mark.slow
def test_workers_give_the_same_batches_as_the_main_process(source):
    alone = batches(build_dataloader(make_dataset(source, seed=3), 2, num_workers=0, seed=0), 3)
    workers = batches(build_dataloader(make_dataset(source, seed=3), 2, num_workers=2, seed=0), 3)
    for a, b in zip(alone, workers, strict=True):
        assert torch.equal(a["x"], b["x"]) and torch.equal(a["y"], b["y"])


def test_epochs_differ_and_shuffle_follows_the_seed(source):
    loader = build_dataloader(make_dataset(source, length=4), 2, seed=0)
    epoch0 = [b["index"].tolist() for b in loader]
    epoch1 = [b["index"].tolist() for b in loader]
    assert sorted(sum(epoch0, [])) == [0, 1, 2, 3]
    assert sorted(sum(epoch1, [])) == [4, 5, 6, 7]  # fresh excerpts in the next epoch
    unshuffled = build_dataloader(make_dataset(source, length=4), 2, seed=0, shuffle=False)
    assert [b["index"].tolist() for b in unshuffled] == [[0, 1], [2, 3]]


@pytest.mark.parametrize("consumed", [1, 3, 4])
def test_resumed_loader_continues_with_the_next_batch(source, consumed):
    dataset = make_dataset(source, length=6)
    reference = batches(build_dataloader(dataset, 2, seed=9), consumed + 2)  # crosses an epoch boundary
    interrupted = build_dataloader(dataset, 2, seed=9)
    iterator = interrupted.forever()
    for _ in range(consumed):
        next(iterator)
    state = interrupted.state_dict()
    resumed = build_dataloader(make_dataset(source, length=6), 2, seed=9)
    resumed.load_state_dict(state)
    following = next(iter(resumed))
    assert torch.equal(following["x"], reference[consumed]["x"])
    assert torch.equal(following["index"], reference[consumed]["index"])
    with pytest.raises(DataError, match="batch_size"):
        build_dataloader(dataset, 3, seed=9).load_state_dict(state)


def test_paired_folders_stay_aligned_across_rates(tmp_path):
    clean, noisy = tmp_path / "clean", tmp_path / "noisy"
    for name in ("p1/a", "p1/b", "p2/c"):
        wav = synthesize_speech(1.0, 48000, seed=len(name) + ord(name[-1]))
        write_audio(clean / f"{name}.wav", wav, 48000, subtype="FLOAT")
        # The degraded file: the same signal at 16 kHz plus a little noise, stored as FLAC.
        low = resample(torch.from_numpy(wav), 48000, 16000).numpy()
        write_audio(noisy / f"{name}.flac", low + 0.001 * np.random.RandomState(0).randn(low.size), 16000)
    write_audio(noisy / "orphan.wav", np.zeros(1600), 16000)
    dataset = PairedDataset(str(noisy), str(clean), 16000, 48000, segment_samples=9600, seed=0)
    assert len(dataset) == 3 and any("orphan" in path for path, _ in dataset.skipped)
    for index in range(6):
        item = dataset[index]
        assert item["x"].shape == (1, 3200) and item["y"].shape == (1, 9600)
        expected = resample(item["y"], 48000, 16000)
        inner = slice(100, -100)  # resampling edges
        error = torch.mean((item["x"][:, inner] - expected[:, inner]) ** 2)
        assert error < 0.02 * torch.mean(expected[:, inner] ** 2) + 2e-6  # the added noise is 1e-6
    whole = PairedDataset(str(noisy), str(clean), 16000, 48000)[0]
    assert whole["x"].shape == (1, 16000) and whole["y"].shape == (1, 48000)
    with pytest.raises(DataError, match="no matching"):
        PairedDataset(str(noisy / "p1"), str(clean / "p2"), 16000, 48000)


def test_shards_hold_the_same_items_and_load_fast(source, tmp_path):
    dataset = make_dataset(source, "bandwidth_extension", length=7, segment=4800)
    index = write_shards(
        dataset, str(tmp_path / "shards"), num_items=7, items_per_shard=3, metadata={"task": "bwe"}
    )
    assert [s["items"] for s in index["shards"]] == [3, 3, 1]
    shards = ShardDataset(str(tmp_path / "shards"))
    assert len(shards) == 7 and shards.metadata == {"task": "bwe"}
    assert (shards.in_sample_rate, shards.out_sample_rate) == (16000, 48000)
    for position in (0, 4, 6):
        stored, fresh = shards[position], dataset[position]
        assert torch.allclose(stored["x"], fresh["x"], atol=1 / 32767)
        assert torch.allclose(stored["y"], fresh["y"], atol=1 / 32767)
    assert torch.equal(shards[9]["x"], shards[2]["x"])  # wraps around
    first = batches(build_dataloader(shards, 2, num_workers=0, seed=0), 3)
    assert first[0]["x"].shape == (2, 1, 1600) and first[0]["y"].shape == (2, 1, 4800)
    with pytest.raises(DataError, match="index.json"):
        ShardDataset(str(tmp_path))


def test_preprocess_command_writes_shards(clean_dir, tmp_path, capsys):
    from gan_enhance.cli import main

    out = tmp_path / "shards"
    code = main(
        ["preprocess", "--clean", clean_dir, "--task", "denoise", "--output", str(out), "--items", "5",
         "--segment-seconds", "0.25", "--items-per-shard", "2", "--seed", "3"]
    )  # fmt: skip
    assert code == 0
    shards = ShardDataset(str(out))
    assert len(shards) == 5 and shards[0]["x"].shape == (1, 4000) and shards.metadata["seed"] == 3
    x, sample_rate = read_audio(clean_dir + "/speaker_0/utterance_00000.flac")
    assert sample_rate == 48000 and x.shape[1] > 0
    assert main(["preprocess", "--clean", str(tmp_path / "none"), "--output", str(out), "--items", "1"]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_preprocess_speed_perturbs_the_clean_side(tmp_path):
    # A 500 Hz tone written as shards at --speed 1.2 1.2: every clean segment is the tone at 600 Hz.
    from gan_enhance.cli import main

    tone = (0.3 * np.sin(2 * np.pi * 500.0 * np.arange(32000) / 16000)).astype(np.float32)
    write_audio(tmp_path / "clean" / "tone.wav", tone, 16000)
    out = tmp_path / "shards"
    code = main(
        ["preprocess", "--clean", str(tmp_path / "clean"), "--task", "denoise", "--output", str(out),
         "--items", "2", "--segment-seconds", "0.5", "--speed", "1.2", "1.2"]
    )  # fmt: skip
    assert code == 0
    shards = ShardDataset(str(out))
    assert len(shards) == 2
    for index in range(len(shards)):
        y = shards[index]["y"].reshape(-1).numpy()
        assert abs(np.argmax(np.abs(np.fft.rfft(y * np.hanning(y.size)))) * 16000 / y.size - 600.0) < 10.0
