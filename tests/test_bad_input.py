"""Bad input to the tools: the whole corpus of tests/bad_audio.py through enhance, evaluate and preprocess.

Each tool gets every case in ONE batch. A bad file gets exactly one error line naming it and no output;
every other file gets a correct output (length, rate, channels, finite values); the exit status says
whether anything failed; nothing temporary or partial is left; nothing is written outside the output.
"""

from __future__ import annotations

import math
import os
import shutil

import numpy as np
import pytest
import soundfile
from bad_audio import ERROR, OK, SECONDS, write_bad_corpus
from test_bundle import tiny_generator

from gan_enhance.bundle import save_bundle
from gan_enhance.cli import main as cli
from gan_enhance.enhance import Enhancer, resampled_length
from gan_enhance.evaluate.report import read_scores_csv

CORPUS_RATE = 16000
# The enhancement model resamples both ways: 8 kHz in, 16 kHz out.
MODEL_IN, MODEL_OUT = 8000, 16000
FAST_METRICS = "si_sdr,lsd,clip_rate"
# Above this SI-SDR (dB) an output equals its reference up to float rounding.
IDENTICAL_DB = 60.0


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_bad_corpus(tmp_path_factory.mktemp("bad") / "corpus", CORPUS_RATE)


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> str:
    folder = tmp_path_factory.mktemp("model") / "tiny"
    save_bundle(tiny_generator("unet1d", MODEL_IN, MODEL_OUT), folder)
    return str(folder)


def stem(entry) -> str:
    return os.path.splitext(entry.name)[0]


def lines_naming(lines: list[str], entry) -> list[str]:
    return [line for line in lines if entry.path in line]


def all_files(folder) -> list[str]:
    return sorted(
        os.path.relpath(os.path.join(r, n), folder) for r, _, names in os.walk(folder) for n in names
    )


def assert_one_error_line_per_bad_file(corpus, lines: list[str]) -> None:
    lines = [line for line in lines if ": note: " not in line]  # (e.g. an input above the model's rate)
    for case, entry in corpus.items():
        naming = lines_naming(lines, entry)
        if entry.expected == ERROR:
            assert len(naming) == 1 and "error" in naming[0], (case, naming)
        else:
            assert naming == [], (case, naming)


def assert_no_hidden_files(folder) -> None:
    assert not [path for path in all_files(folder) if any(p.startswith(".") for p in path.split(os.sep))]


# ----------------------------------------------------------------------------------------------- enhance
def test_enhance_processes_the_good_files_and_names_each_bad_one(corpus, model, tmp_path, capsys):
    folder, out = os.path.dirname(corpus["good"].path), tmp_path / "out"
    code = cli(["enhance", model, folder, "--output", str(out), "--chunk-seconds", "0.1", "--no-progress"])
    captured = capsys.readouterr()
    errors = captured.err.strip().splitlines()
    bad = [entry for entry in corpus.values() if entry.expected == ERROR]
    assert code == 1 and errors[-1] == f"gan-enhance enhance: {len(bad)} of {len(corpus)} files failed"
    assert_one_error_line_per_bad_file(corpus, errors)
    assert "NaN or infinite" in lines_naming(errors, corpus["nan"])[0]
    assert "truncated" in lines_naming(errors, corpus["truncated_data"])[0]
    # Outputs for the good files only, under their own (unicode) names; nothing hidden or partial.
    good = [entry for entry in corpus.values() if entry.expected == OK]
    assert all_files(out) == sorted(entry.name for entry in good)
    assert sorted(captured.out.splitlines()) == sorted(str(out / entry.name) for entry in good)

    enhancer = Enhancer(tiny_generator("unet1d", MODEL_IN, MODEL_OUT), chunk_seconds=0.1)
    for entry in good:
        data, rate = soundfile.read(out / entry.name, dtype="float32", always_2d=True)
        frames = resampled_length(entry.frames, entry.sample_rate, MODEL_OUT)
        assert (rate, data.shape) == (MODEL_OUT, (frames, entry.channels)), entry.name
        assert np.isfinite(data).all()
        # The same numbers as enhancing the decoded signal in memory (PCM outputs are clipped, quantised).
        wav, _ = soundfile.read(entry.path, dtype="float32", always_2d=True)
        expected, _ = enhancer.enhance_waveform(wav.T, entry.sample_rate)
        if soundfile.info(out / entry.name).subtype != "FLOAT":
            expected = expected.clamp(-1, 1)
        np.testing.assert_allclose(data.T, expected.numpy(), atol=2e-4, err_msg=entry.name)


def test_degrade_writes_the_good_files_names_each_bad_one_and_never_mixes_two_test_sets(
    corpus, tmp_path, capsys
):
    folder, out = os.path.dirname(corpus["good"].path), tmp_path / "set"
    args = ["degrade", folder, str(out), "--task", "denoise", "--seed", "0"]
    code = cli(args)
    captured = capsys.readouterr()
    errors = captured.err.strip().splitlines()
    bad = [entry for entry in corpus.values() if entry.expected == ERROR]
    assert code == 1 and errors[-1] == f"gan-enhance degrade: {len(bad)} of {len(corpus)} files failed"
    assert_one_error_line_per_bad_file(corpus, errors)
    good = sorted(stem(entry) + ".wav" for entry in corpus.values() if entry.expected == OK)
    assert all_files(out / "clean") == good and all_files(out / "degraded") == good
    # A second test set into the same folder would sit beside the first one's pairs, and evaluate would
    # score both: refused, nothing written; --overwrite replaces the folder's pairs.
    before = {path: (out / path).read_bytes() for path in all_files(out)}
    assert cli([*args, "--seed", "1"]) == 1
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert (
        f"'{out}' already holds {2 * len(good)} files in degraded/ and clean/" in error
        and "--overwrite" in error
    )
    assert {path: (out / path).read_bytes() for path in all_files(out)} == before
    assert cli([*args, "--seed", "1", "--overwrite"]) == 1
    # the clean folder inside the output's clean/ (or holding it) is refused before anything is deleted
    nested = ["degrade", str(out / "clean"), str(out), "--task", "denoise", "--overwrite"]
    assert cli(nested) == 1 and "hold one another" in capsys.readouterr().err
    assert all_files(out / "clean") == good
    assert all_files(out / "clean") == good
    assert any(
        (out / path).read_bytes() != data for path, data in before.items() if path.startswith("degraded")
    )


def test_enhance_into_a_folder_inside_its_input_folder_does_not_enhance_its_own_outputs(
    model, tmp_path, capsys
):
    recordings = tmp_path / "recordings"
    recordings.mkdir()
    soundfile.write(recordings / "take.wav", 0.1 * np.ones((MODEL_IN // 10, 1), np.float32), MODEL_IN)
    output = recordings / "enhanced"
    for _ in range(2):  # the second run finds the first run's output inside the input folder
        code = cli(["enhance", model, str(recordings), "--output", str(output), "--no-progress"])
        assert code == 0
        assert capsys.readouterr().out.split() == [str(output / "take.wav")]
    assert sorted(path.replace(os.sep, "/") for path in all_files(recordings)) == [
        "enhanced/take.wav",
        "take.wav",
    ]


def test_enhance_says_once_that_inputs_above_the_models_rate_come_out_at_its_rate(model, tmp_path, capsys):
    recordings = tmp_path / "recordings"
    recordings.mkdir()
    for name in ("a.wav", "b.wav"):  # 48 kHz inputs, a model that writes 16 kHz
        soundfile.write(recordings / name, 0.1 * np.ones((4800, 1), np.float32), 48000)
    assert cli(["enhance", model, str(recordings), "--output", str(tmp_path / "out"), "--no-progress"]) == 0
    notes = [line for line in capsys.readouterr().err.splitlines() if "note:" in line]
    assert (
        len(notes) == 1 and f"is at 48000 Hz; outputs are written at the model's {MODEL_OUT} Hz" in notes[0]
    )
    assert soundfile.info(tmp_path / "out" / "a.wav").samplerate == MODEL_OUT
    keep = ["--keep-sample-rate", "--output", str(tmp_path / "kept"), "--no-progress"]
    assert cli(["enhance", model, str(recordings), *keep]) == 0
    assert "note:" not in capsys.readouterr().err


def test_enhance_writes_only_inside_the_output_folder(model, tmp_path, capsys):
    # Inputs spelled with '..', a link inside an input folder to a file outside it, a file given with a
    # trailing slash: every output must land inside --output or be refused.
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (tmp_path / "set" / "deep").mkdir(parents=True)
    tone = 0.1 * np.ones((MODEL_IN // 10, 1), np.float32)
    for path in ("set/deep/a.wav", "elsewhere/linked.wav", "plain.wav"):
        soundfile.write(tmp_path / path, tone, MODEL_IN)
    os.symlink(outside / "linked.wav", tmp_path / "set" / "deep" / "link.wav")
    before = set(all_files(tmp_path))
    inputs = [
        str(tmp_path / "set" / "deep" / ".." / ".."),
        str(tmp_path / "set" / "deep" / ".." / "deep" / "a.wav"),
    ]
    inputs += [str(tmp_path / "plain.wav") + os.sep]
    code = cli(["enhance", model, *inputs, "--output", str(tmp_path / "out"), "--no-progress"])
    errors = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(errors) == 2 and "plain.wav" in errors[0] and "not a file inside" in errors[0]
    created = set(all_files(tmp_path)) - before
    assert all(path.startswith("out" + os.sep) for path in created), created
    assert {"out/set/deep/a.wav", "out/set/deep/link.wav", "out/a.wav"} <= {
        path.replace(os.sep, "/") for path in created
    }
    extension = ["--extension", "/../../x"]
    assert cli(["enhance", model, str(tmp_path / "plain.wav"), "-o", str(tmp_path / "out"), *extension]) == 1
    assert "not a file extension" in capsys.readouterr().err
    assert set(all_files(tmp_path)) - before == created


# ---------------------------------------------------------------------------------------------- evaluate
@pytest.fixture(scope="module")
def references(corpus, tmp_path_factory):
    """A clean counterpart per case: a copy of each good file (so scores against it are known), a normal
    tone for the bad ones."""
    folder = tmp_path_factory.mktemp("references")
    for entry in corpus.values():
        if entry.expected == OK:
            shutil.copy(entry.path, folder / entry.name)
        else:
            shutil.copy(corpus["good"].path, folder / (stem(entry) + ".wav"))
    return folder


def assert_scored_rows(corpus, rows: list[dict]) -> None:
    """One row per good file; identical signals score as identical, silent or 1-sample ones as undefined."""
    good = {stem(entry): entry for entry in corpus.values() if entry.expected == OK}
    assert sorted(row["file"] for row in rows) == sorted(good)
    for row in rows:
        if row["file"] in ("silent", "one_sample"):
            assert math.isnan(row["si_sdr"]), row
        else:
            assert row["si_sdr"] > IDENTICAL_DB, row
        assert row["sample_rate"] == good[row["file"]].sample_rate


@pytest.mark.parametrize("role", ["degraded", "enhanced", "clean"])
def test_evaluate_scores_the_good_files_and_names_each_bad_one(
    corpus, references, model, role, tmp_path, capsys
):
    folder, out = os.path.dirname(corpus["good"].path), tmp_path / "results"
    # Figures for the first 3 files scored (the bad 'empty' sorts among them and must not take a figure).
    figures = 3 if role == "degraded" else 0
    common = ["--metrics", FAST_METRICS, "--out", str(out), "--spectrograms", str(figures)]
    if role == "degraded":
        systems = ["--system", "identity", "--system", f"tiny=model:{model}"]
        code = cli(["evaluate", "--clean", str(references), "--degraded", folder, *systems, *common])
    elif role == "enhanced":
        code = cli(["evaluate", "--clean", str(references), "--enhanced", f"identity={folder}", *common])
    else:
        code = cli(["evaluate", "--clean", folder, "--enhanced", f"identity={references}", *common])
    errors = [line for line in capsys.readouterr().err.splitlines() if not line.startswith("scored ")]
    bad = [entry for entry in corpus.values() if entry.expected == ERROR]
    assert code == 1 and errors[-1] == f"gan-enhance evaluate: {len(bad)} file(s) could not be scored"
    assert_one_error_line_per_bad_file(corpus, errors)
    assert_scored_rows(corpus, read_scores_csv(str(out / "identity.csv")))
    good = [entry for entry in corpus.values() if entry.expected == OK]
    expected_files = [f"spectrograms/{stem(entry)}.png" for entry in sorted(good, key=stem)[:figures]]
    expected_files += ["identity.csv", "summary.md"]
    if role == "degraded":
        expected_files += [
            f"audio/{system}/{stem(e)}.wav" for system in ("degraded", "identity", "tiny") for e in good
        ]
        expected_files += ["tiny.csv"]
        assert len(read_scores_csv(str(out / "tiny.csv"))) == len(good)
        for entry in good:
            data, rate = soundfile.read(out / "audio" / "tiny" / f"{stem(entry)}.wav", always_2d=True)
            frames = resampled_length(entry.frames, entry.sample_rate, MODEL_OUT)
            assert (rate, data.shape) == (MODEL_OUT, (frames, entry.channels)) and np.isfinite(data).all()
            info = soundfile.info(out / "audio" / "identity" / f"{stem(entry)}.wav")
            assert (info.samplerate, info.frames, info.channels) == (
                entry.sample_rate,
                entry.frames,
                entry.channels,
            )
    # Nothing for the bad files, nothing hidden or partial.
    assert all_files(out) == sorted(path.replace("/", os.sep) for path in expected_files)


def test_evaluate_names_never_lead_outside_the_output_folder(corpus, references, tmp_path, capsys):
    args = ["--clean", str(references), "--degraded", str(references), "--out", str(tmp_path / "out")]
    for spec in ("../../escape=identity", "a/b=identity", "..=identity", ".hidden=identity", "model:/"):
        assert cli(["evaluate", *args, "--system", spec]) == 1
        assert "cannot be used for files in the output folder" in capsys.readouterr().err
    assert cli(["evaluate", *args, "--system", "degraded=identity"]) == 1
    assert "names the folder of degraded inputs" in capsys.readouterr().err
    assert cli(["evaluate", *args[:2], "--enhanced", f"../up={references}", *args[4:]]) == 1
    assert "cannot be used" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "out")
    assert not os.path.exists(tmp_path.parent / "escape.csv")


# -------------------------------------------------------------------------------------------- preprocess
def run_preprocess(corpus, out, caplog, capsys) -> tuple[int, list[str], str]:
    folder = os.path.dirname(corpus["good"].path)
    code = cli(
        ["preprocess", "--clean", folder, "--task", "denoise", "--output", str(out), "--items", "40",
         "--segment-seconds", "0.05", "--items-per-shard", "16", "--seed", "1", "--dtype", "float32"]
    )  # fmt: skip
    captured = capsys.readouterr()
    return code, captured.err.splitlines() + "\n".join(caplog.messages).splitlines(), captured.out


def test_preprocess_skips_each_unreadable_file_with_one_line(corpus, tmp_path, caplog, capsys):
    from gan_enhance.data.shards import read_index

    code, lines, _ = run_preprocess(corpus, tmp_path / "shards", caplog, capsys)
    # A training set is complete when the requested pairs are written from the usable files: skipping a
    # few broken files of a large corpus (listed, one line each) is not a failure of the command.
    assert code == 0
    unreadable = ("empty", "zero_samples", "truncated_header", "text")
    for case in unreadable + ("one_sample",):  # 1 sample is shorter than a segment: skipped by design
        naming = lines_naming(lines, corpus[case])
        assert len(naming) == 1, (case, naming)
    assert "shorter than" in lines_naming(lines, corpus["one_sample"])[0]
    index = read_index(str(tmp_path / "shards"))
    assert index["items"] == 40 and index["out_length"] == 800
    assert sorted(os.listdir(tmp_path / "shards")) == ["index.json"] + sorted(
        f"{shard['name']}-{part}.npy" for shard in index["shards"] for part in "xy"
    )


def test_preprocess_never_writes_nan_and_refuses_truncated_files(corpus, tmp_path, caplog, capsys):
    from gan_enhance.data.shards import ShardDataset

    code, lines, _ = run_preprocess(corpus, tmp_path / "shards", caplog, capsys)
    assert code == 0
    assert len(lines_naming(lines, corpus["truncated_data"])) == 1
    for case in ("nan", "inf"):  # found when an excerpt of them is drawn; reported once
        assert len(lines_naming(lines, corpus[case])) <= 1
    dataset = ShardDataset(str(tmp_path / "shards"))
    for index in range(len(dataset)):
        for value in dataset[index].values():
            if hasattr(value, "is_floating_point") and value.is_floating_point():
                assert value.isfinite().all()


def _items(dataset, count: int) -> tuple[list[dict], list[str]]:
    """``count`` items through the training wrapper, and the failures they reported."""
    from gan_enhance.data.datasets import ReplaceBadItems

    wrapped = ReplaceBadItems(dataset)
    items = [wrapped[index] for index in range(count)]
    return items, [line for item in items for line in item["bad"].split("\n") if line]


def test_training_datasets_skip_or_replace_every_bad_file_and_name_it(corpus, caplog):
    from gan_enhance.data import CleanSource, DegradedDataset, PairedDataset, build_task

    folder = os.path.dirname(corpus["good"].path)
    source = CleanSource([folder], min_duration=0.05)
    # Files that cannot be indexed are skipped with one warning line naming each; the rest are used.
    warned = "\n".join(caplog.messages)
    indexed = {os.path.basename(entry.path) for entries in source.entries for entry in entries}
    for case, entry in corpus.items():
        if entry.expected == ERROR and case not in ("nan", "inf"):  # NaN shows only when samples are read
            assert entry.name not in indexed and len(lines_naming(warned.splitlines(), entry)) == 1, case
        elif entry.frames >= 0.05 * entry.sample_rate:
            assert entry.name in indexed, case
    task = build_task("denoise", in_sample_rate=MODEL_IN, out_sample_rate=MODEL_OUT)
    degraded = DegradedDataset(source, task.degradation, MODEL_IN, MODEL_OUT, segment_samples=800, length=60)
    paired = PairedDataset(folder, folder, MODEL_IN, MODEL_OUT, segment_samples=800)
    for dataset in (degraded, paired):
        items, failures = _items(dataset, 60 if dataset is degraded else len(dataset))
        for item in items:
            assert item["x"].shape == (1, 400) and item["y"].shape == (1, 800)
            assert item["x"].isfinite().all() and item["y"].isfinite().all()
        # NaN/Inf (and, for pairs, truncated) files are found when the samples read hold the damage: the
        # item is replaced and the failure names the file. Excerpts that miss the damage are valid audio.
        bad_names = [entry.path for entry in corpus.values() if entry.expected == ERROR]
        for line in failures:
            assert any(path in line for path in bad_names), line
        if dataset is paired:  # pairs are indexed from headers; the cut-short file is found when read
            assert any(corpus["truncated_data"].path in line for line in failures), failures


def test_a_file_that_breaks_after_indexing_is_reported_once_and_batches_still_collate(corpus, tmp_path):
    from torch.utils.data import DataLoader

    from gan_enhance.data import CleanSource, DegradedDataset, build_task

    broken = tmp_path / "later broken.wav"
    broken.write_text("overwritten after the manifest was made")
    manifest = tmp_path / "list.csv"  # durations given: indexing opens no file
    manifest.write_text(f"path,duration\n{broken},1.0\n{corpus['good'].path},{SECONDS}\n")
    source = CleanSource([str(manifest)], min_duration=0.05)
    task = build_task("denoise", in_sample_rate=MODEL_IN, out_sample_rate=MODEL_OUT)
    dataset = DegradedDataset(source, task.degradation, MODEL_IN, MODEL_OUT, segment_samples=800, length=16)
    batches = list(DataLoader(dataset, batch_size=4))
    reports = [line for batch in batches for entry in batch["bad"] for line in entry.split("\n") if line]
    assert len(batches) == 4 and all(len(batch["bad"]) == 4 for batch in batches)
    assert len(reports) == 1 and str(broken) in reports[0]
