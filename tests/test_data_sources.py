"""Clean sources (folders, manifests, weights, bad files), excerpts, loudness, and the synthetic generator."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from gan_enhance.audio import read_audio, write_audio
from gan_enhance.data import CleanSource, synthesize_speech, write_synthetic_corpus
from gan_enhance.data.sources import active_level_db
from gan_enhance.data.transforms import rms_db
from gan_enhance.errors import DataError

SR = 16000


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("corpus")
    write_synthetic_corpus(str(folder / "a"), num_files=4, seconds=1.5, sample_rate=SR, seed=1)
    write_synthetic_corpus(str(folder / "b"), num_files=2, seconds=1.5, sample_rate=22050, seed=2)
    return folder


def test_folders_are_searched_recursively_and_all_rates_are_used(corpus):
    source = CleanSource([str(corpus / "a"), str(corpus / "b")], min_duration=1.0)
    assert len(source) == 6 and source.total_seconds == pytest.approx(9.0)
    excerpt = source.excerpt(np.random.RandomState(0), 8000, SR)
    assert excerpt.shape == (8000,) and excerpt.dtype == np.float32


def test_manifests_csv_and_jsonl_with_and_without_durations(corpus, tmp_path):
    files = sorted((corpus / "a").rglob("*.flac"))
    csv_path = tmp_path / "list.csv"
    csv_path.write_text("path,duration\n" + "".join(f"{f},1.5\n" for f in files[:2]))
    jsonl_path = corpus / "list.jsonl"  # relative paths resolve against the manifest's folder
    jsonl_path.write_text("".join(json.dumps({"path": str(f.relative_to(corpus))}) + "\n" for f in files[2:]))
    source = CleanSource([str(csv_path), str(jsonl_path)])
    assert [len(entries) for entries in source.entries] == [2, 2]
    assert source.entries[0][0].sample_rate == 0  # duration trusted, header not read
    assert source.entries[1][0].sample_rate == SR
    bad = tmp_path / "bad.csv"
    bad.write_text("file\nx.wav\n")
    with pytest.raises(DataError, match="no 'path' column"):
        CleanSource([str(bad)])


def test_weights_choose_the_sources(corpus):
    source = CleanSource([str(corpus / "a"), str(corpus / "b")], weights=[0.0, 1.0])
    picks = {source.pick(np.random.RandomState(s)).path for s in range(30)}
    assert picks and all("/b/" in path for path in picks)
    with pytest.raises(DataError, match="weights"):
        CleanSource([str(corpus / "a")], weights=[1.0, 2.0])


def test_bad_and_short_files_are_reported_once_and_skipped(corpus, tmp_path, caplog):
    folder = tmp_path / "mixed"
    write_synthetic_corpus(str(folder), num_files=2, seconds=1.5, sample_rate=SR, seed=3)
    (folder / "empty.wav").write_bytes(b"")
    (folder / "notes.wav").write_text("not audio")
    write_audio(folder / "short.wav", np.zeros(800, dtype=np.float32) + 0.1, SR)
    with caplog.at_level(logging.WARNING, logger="gan_enhance.data.sources"):
        source = CleanSource([str(folder)], min_duration=1.0)
        for seed in range(10):
            source.excerpt(np.random.RandomState(seed), 4000, SR)
    assert len(source) == 2
    reports = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert len(reports) == 1
    assert all(name in reports[0] for name in ("empty.wav", "notes.wav", "short.wav"))
    assert sorted(path.rsplit("/", 1)[-1] for path, _ in source.skipped) == [
        "empty.wav",
        "notes.wav",
        "short.wav",
    ]


def test_file_broken_after_indexing_is_reported_once_and_avoided(corpus, tmp_path, caplog):
    files = sorted((corpus / "a").rglob("*.flac"))
    broken = tmp_path / "broken.flac"
    broken.write_bytes(files[0].read_bytes()[:200])
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"path,duration\n{broken},1.5\n{files[1]},1.5\n")
    source = CleanSource([str(manifest)])
    with caplog.at_level(logging.WARNING, logger="gan_enhance.data.sources"):
        for seed in range(12):
            assert source.excerpt(np.random.RandomState(seed), 4000, SR).shape == (4000,)
    assert sum("broken.flac" in r.getMessage() for r in caplog.records) == 1


def test_empty_dataset_is_an_error(tmp_path):
    (tmp_path / "nothing").mkdir()
    with pytest.raises(DataError, match="no usable audio"):
        CleanSource([str(tmp_path / "nothing")])
    with pytest.raises(DataError, match="does not exist"):
        CleanSource([str(tmp_path / "missing")])


def test_excerpts_avoid_silence_and_are_level_normalised(tmp_path):
    # Two seconds of silence, then one of speech: most random excerpts would be silent.
    wav = np.concatenate([np.zeros(2 * SR, dtype=np.float32), synthesize_speech(1.0, SR, seed=1)])
    write_audio(tmp_path / "mostly_silent.wav", wav, SR, subtype="FLOAT")
    source = CleanSource([str(tmp_path)], silence_threshold_db=-50.0, tries=20, target_level_db=-26.0)
    for seed in range(8):
        excerpt = source.excerpt(np.random.RandomState(seed), SR // 2, SR)
        assert rms_db(excerpt) > -50.0
        assert active_level_db(excerpt, SR) == pytest.approx(-26.0, abs=0.1)
    # Without redraws, the same seeds do land in the silence.
    single = CleanSource([str(tmp_path)], silence_threshold_db=-50.0, tries=1)
    assert min(rms_db(single.excerpt(np.random.RandomState(seed), SR // 2, SR)) for seed in range(8)) < -50.0


def test_training_targets_come_at_a_range_of_levels(tmp_path):
    # Targets all at one level teach a model to output that level whatever comes in (the 45-minute model
    # of benchmarks/learning.py moved its output level by 10 dB over inputs scaled by -30 to +6 dB and lost
    # 3.3 dB SI-SDR at -30 dB); by default each excerpt is scaled to a level drawn from [-45, -15] dB FS.
    write_audio(tmp_path / "speech.wav", synthesize_speech(3.0, SR, seed=2), SR, subtype="FLOAT")
    source = CleanSource([str(tmp_path)])
    levels = [active_level_db(source.excerpt(np.random.RandomState(seed), SR, SR), SR) for seed in range(16)]
    assert -45.2 <= min(levels) and max(levels) <= -14.8
    assert max(levels) - min(levels) > 15.0
    again = active_level_db(source.excerpt(np.random.RandomState(3), SR, SR), SR)
    assert again == pytest.approx(levels[3], abs=1e-3)  # the level is part of the seeded item
    fixed = CleanSource([str(tmp_path)], target_level_db=-30.0)
    assert active_level_db(fixed.excerpt(np.random.RandomState(5), SR, SR), SR) == pytest.approx(
        -30.0, abs=0.1
    )
    tone = tmp_path / "tone"
    tone.mkdir()
    write_audio(
        tone / "tone.wav", 0.05 * np.sin(2 * np.pi * 440.0 * np.arange(3 * SR) / SR), SR, subtype="FLOAT"
    )
    as_recorded = CleanSource([str(tone)], target_level_db=0)  # 0: no normalisation
    assert rms_db(as_recorded.excerpt(np.random.RandomState(5), SR, SR)) == pytest.approx(
        20 * np.log10(0.05 / np.sqrt(2)), abs=0.05
    )
    for bad in ([-15.0, -45.0], [-20.0, 3.0], "loud", [-30.0, -20.0, -10.0]):
        with pytest.raises(DataError, match="CleanSource.target_level_db"):
            CleanSource([str(tmp_path)], target_level_db=bad)


def test_synthetic_speech_is_reproducible_and_speech_like():
    wav = synthesize_speech(3.0, 48000, seed=5)
    assert np.array_equal(wav, synthesize_speech(3.0, 48000, seed=5))
    assert not np.allclose(wav, synthesize_speech(3.0, 48000, seed=6))
    assert wav.shape == (144000,) and np.max(np.abs(wav)) == pytest.approx(0.5)
    frames = wav[: wav.size // 960 * 960].reshape(-1, 960)  # 20 ms frames
    levels = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-12)
    assert np.mean(levels < levels.max() - 40) > 0.1  # pauses
    assert np.mean(levels > levels.max() - 20) > 0.2  # speech
    spectrum = np.abs(np.fft.rfft(wav)) ** 2
    frequencies = np.fft.rfftfreq(wav.size, 1 / 48000)
    share = spectrum[frequencies > 8000].sum() / spectrum.sum()
    assert 1e-4 < share < 0.5  # energy above 8 kHz (fricatives): a bandwidth-extension target
    # Voiced frames are periodic at a speech pitch (autocorrelation peak between 2.5 and 12 ms).
    loudest = frames[np.argmax(levels)]
    correlation = np.correlate(loudest, loudest, "full")[loudest.size - 1 :]
    lag = np.argmax(correlation[120:576]) + 120
    assert correlation[lag] > 0.3 * correlation[0]


def test_written_manifest_reindexes_without_opening_files(corpus, tmp_path):
    from gan_enhance.data.sources import index_source, write_manifest

    entries, skipped = index_source(str(corpus / "a"), min_duration=1.0, threads=3)
    assert len(entries) == 4 and not skipped
    assert entries == index_source(str(corpus / "a"), min_duration=1.0, threads=1)[0]
    write_manifest(entries, str(tmp_path / "lists" / "a.csv"))
    again, _ = index_source(str(tmp_path / "lists" / "a.csv"), min_duration=1.0)
    assert [(e.path, round(e.duration, 4)) for e in again] == [
        (e.path, round(e.duration, 4)) for e in entries
    ]
    assert all(e.sample_rate == 0 for e in again)


def test_corpus_engine_auto_falls_back_to_synthetic_without_espeak(tmp_path, monkeypatch):
    from gan_enhance.data import synthetic

    monkeypatch.setattr(synthetic.shutil, "which", lambda name: None)
    paths = write_synthetic_corpus(str(tmp_path), num_files=1, seconds=0.5, sample_rate=SR, engine="auto")
    wav, _ = read_audio(paths[0])
    assert np.allclose(wav[0].numpy(), synthesize_speech(0.5, SR, seed=0), atol=1e-4)
    with pytest.raises(DataError, match="espeak-ng is not installed"):
        write_synthetic_corpus(str(tmp_path / "e"), num_files=1, seconds=0.5, sample_rate=SR, engine="espeak")


@pytest.mark.skipif(
    not __import__("shutil").which("espeak-ng"), reason="espeak-ng is not installed (optional)"
)
def test_espeak_sentences_are_reproducible_speech():
    from gan_enhance.data.synthetic import espeak_sentence

    wav = espeak_sentence(seed=4, sample_rate=SR)
    assert np.array_equal(wav, espeak_sentence(seed=4, sample_rate=SR))
    assert wav.size > SR and np.max(np.abs(wav)) == pytest.approx(0.5)


def test_speed_perturbation_moves_pitch_by_the_drawn_factor(tmp_path):
    # A 440 Hz tone read 1.25x faster plays at 550 Hz; [1, 1] (the default) leaves it at 440 Hz.
    tone = (0.3 * np.sin(2 * np.pi * 440.0 * np.arange(3 * SR) / SR)).astype(np.float32)
    write_audio(tmp_path / "tone" / "a.wav", tone, SR)

    def peak_hz(source: CleanSource, seed: int) -> float:
        wav = source.excerpt(np.random.RandomState(seed), SR, SR)
        assert wav.shape == (SR,)
        return float(np.argmax(np.abs(np.fft.rfft(wav * np.hanning(SR)))))  # 1 Hz bins

    fast = CleanSource([str(tmp_path / "tone")], speed=[1.25, 1.25])
    assert abs(peak_hz(fast, 0) - 550.0) <= 2.0
    assert peak_hz(CleanSource([str(tmp_path / "tone")]), 0) == pytest.approx(440.0, abs=1.0)
    ranged = CleanSource([str(tmp_path / "tone")], speed=[0.9, 1.1])
    peaks = [peak_hz(ranged, seed) for seed in range(12)]
    assert 0.9 * 440 - 3 <= min(peaks) < max(peaks) <= 1.1 * 440 + 3 and len(set(peaks)) > 4
    with pytest.raises(DataError, match="CleanSource.speed"):
        CleanSource([str(tmp_path / "tone")], speed=[1.1, 0.9])
