"""``gan-enhance evaluate`` end to end on tiny folders: enhanced folders, baselines, models, presets."""

from __future__ import annotations

import os

import numpy as np
import pytest
import soundfile
import torch
from test_metrics import SR, noise_at_snr, speech_like

from gan_enhance.cli import main as cli
from gan_enhance.evaluate.metrics import compute_metrics
from gan_enhance.evaluate.report import read_scores_csv

KEYS = ["a", "b", "sub/c"]
FAST_METRICS = "si_sdr,lsd,lsd_low,lsd_high,clip_rate"


def write(folder, key: str, wav: np.ndarray, rate: int = SR, extension: str = ".wav") -> None:
    path = os.path.join(folder, key + extension)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    soundfile.write(path, wav, rate, subtype="FLOAT" if extension == ".wav" else "PCM_24")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """clean/, noisy/ (SNR 5 dB), enhanced/ (SNR 20 dB, FLAC: matched without extension)."""
    root = tmp_path_factory.mktemp("corpus")
    for i, key in enumerate(KEYS):
        clean = speech_like(1.5, seed=i)
        write(root / "clean", key, clean)
        write(root / "noisy", key, (clean + noise_at_snr(clean, 5.0, seed=10 + i)).astype(np.float32))
        write(
            root / "enhanced",
            key,
            (clean + noise_at_snr(clean, 20.0, seed=20 + i)).astype(np.float32),
            extension=".flac",
        )
    return root


def run(*argv: str) -> int:
    return cli(["evaluate", *argv])


def test_enhanced_folder_is_scored_against_clean(corpus, tmp_path, capsys):
    from test_metrics import ConstantMOS

    with pytest.warns(DeprecationWarning):
        torch.jit.script(ConstantMOS()).save(str(tmp_path / "mos.pt"))
    out = tmp_path / "results"
    args = ["--clean", str(corpus / "clean"), "--enhanced", f"ours={corpus / 'enhanced'}"]
    args += ["--quality", f"utmos:{tmp_path / 'mos.pt'}"]
    assert (
        run(
            *args,
            "--degraded",
            str(corpus / "noisy"),
            "--metrics",
            FAST_METRICS,
            "--out",
            str(out),
            "--spectrograms",
            "1",
        )
        == 0
    )
    rows = read_scores_csv(str(out / "ours.csv"))
    assert [row["file"] for row in rows] == sorted(KEYS)
    for row in rows:
        # FLAC stores 24-bit samples: the 20 dB SNR comes back to within quantisation noise.
        assert row["si_sdr"] == pytest.approx(20.0, abs=0.05)
        assert row["system"] == "ours" and row["sample_rate"] == SR
        assert 3.0 < row["utmos"] < 4.0  # the stand-in MOS: 3 + 10 * mean |x|
    printed = capsys.readouterr().out
    assert "| ours | 3 |" in printed and "### ours" in printed
    assert (out / "summary.md").read_text(encoding="utf-8").strip() == printed.strip()
    figures = sorted(os.listdir(out / "spectrograms"))
    assert figures == ["a.png"]
    assert not (out / "audio").exists()  # enhanced folders are not copied


def test_baselines_run_over_the_degraded_folder(corpus, tmp_path):
    out = tmp_path / "results"
    args = ["--clean", str(corpus / "clean"), "--degraded", str(corpus / "noisy"), "--metrics", FAST_METRICS]
    args += [
        "--system",
        "identity",
        "--system",
        "gate=spectral-gating:stationary",
        "--enhanced",
        f"noisy={corpus / 'noisy'}",
    ]
    assert run(*args, "--out", str(out), "--spectrograms", "0") == 0
    identity = read_scores_csv(str(out / "identity.csv"))
    # The identity system and the degraded folder scored as an "enhanced" folder are the same thing.
    assert identity == [dict(row, system="identity") for row in read_scores_csv(str(out / "noisy.csv"))]
    assert [row["si_sdr"] for row in identity] == pytest.approx([5.0] * 3, abs=1e-3)
    gated = read_scores_csv(str(out / "gate.csv"))
    assert np.mean([r["si_sdr"] for r in gated]) > np.mean([r["si_sdr"] for r in identity]) + 1.0
    for system in ("identity", "gate", "degraded"):
        assert sorted(os.listdir(out / "audio" / system)) == ["a.wav", "b.wav", "sub"]


def test_bandwidth_extension_cutoff_and_resampling_baseline(tmp_path):
    from gan_enhance.audio import resample

    rng = np.random.default_rng(0)
    for i, key in enumerate(["x", "y"]):
        clean = speech_like(1.5, seed=i) + 0.02 * rng.standard_normal(int(1.5 * SR)).astype(np.float32)
        write(tmp_path / "clean", key, clean)
        write(tmp_path / "narrow", key, resample(torch.from_numpy(clean), SR, 8000).numpy(), rate=8000)
    out = tmp_path / "results"
    args = [
        "--clean",
        str(tmp_path / "clean"),
        "--degraded",
        str(tmp_path / "narrow"),
        "--metrics",
        FAST_METRICS,
    ]
    assert (
        run(*args, "--system", "identity", "--system", "resample", "--out", str(out), "--spectrograms", "0")
        == 0
    )
    for name in ("identity", "resample"):
        for row in read_scores_csv(str(out / f"{name}.csv")):
            assert row["cutoff_hz"] == pytest.approx(4000.0, abs=60.0)
            assert row["lsd_high"] > 5 * row["lsd_low"]  # the missing band is where the error is
    assert soundfile.info(str(out / "audio" / "resample" / "x.wav")).samplerate == SR
    assert soundfile.info(str(out / "audio" / "identity" / "x.wav")).samplerate == 8000


def test_an_exported_model_runs_as_a_system(corpus, tmp_path):
    from test_bundle import tiny_generator

    from gan_enhance.audio import read_audio
    from gan_enhance.bundle import load_generator, save_bundle

    save_bundle(tiny_generator("unet1d", SR, SR), tmp_path / "model")
    out = tmp_path / "results"
    args = ["--clean", str(corpus / "clean"), "--degraded", str(corpus / "noisy"), "--metrics", "si_sdr,lsd"]
    assert (
        run(*args, "--system", f"tiny=model:{tmp_path / 'model'}", "--out", str(out), "--spectrograms", "0")
        == 0
    )
    rows = {row["file"]: row for row in read_scores_csv(str(out / "tiny.csv"))}
    # The same numbers as running the model by hand and scoring its output.
    noisy, rate = read_audio(corpus / "noisy" / "b.wav")
    enhanced, out_rate = load_generator(tmp_path / "model").enhance(noisy, rate)
    clean, _ = read_audio(corpus / "clean" / "b.wav")
    expected = compute_metrics(enhanced.numpy(), clean.numpy(), out_rate, ["si_sdr", "lsd"])
    assert rows["b"]["si_sdr"] == pytest.approx(expected["si_sdr"], abs=1e-4)
    assert rows["b"]["lsd"] == pytest.approx(expected["lsd"], abs=1e-4)


def test_task_preset_degrades_the_clean_folder_reproducibly(corpus, tmp_path):
    outputs = []
    for run_name in ("first", "second"):
        out = tmp_path / run_name
        args = ["--clean", str(corpus / "clean"), "--task", "denoise", "--seed", "3", "--metrics", "si_sdr"]
        assert run(*args, "--system", "identity", "--out", str(out), "--spectrograms", "0") == 0
        outputs.append(read_scores_csv(str(out / "identity.csv")))
    assert outputs[0] == outputs[1]
    assert all(row["si_sdr"] < 40 for row in outputs[0])  # really degraded
    degraded, _ = soundfile.read(str(tmp_path / "first" / "audio" / "degraded" / "a.wav"))
    clean, _ = soundfile.read(str(corpus / "clean" / "a.wav"))
    assert degraded.shape == clean.shape and not np.allclose(degraded, clean, atol=1e-3)


def test_user_errors_are_one_line_messages(corpus, tmp_path, capsys):
    assert run("--clean", str(corpus / "clean"), "--out", str(tmp_path)) == 1
    assert "nothing to score" in capsys.readouterr().err
    assert (
        run("--clean", str(corpus / "clean"), "--enhanced", str(tmp_path / "missing"), "--out", str(tmp_path))
        == 1
    )
    assert "does not exist" in capsys.readouterr().err
    empty_match = tmp_path / "other"
    write(empty_match, "zzz", speech_like(0.5))
    assert run("--clean", str(corpus / "clean"), "--enhanced", str(empty_match), "--out", str(tmp_path)) == 1
    assert "counterpart" in capsys.readouterr().err
    args = ["--clean", str(corpus / "clean"), "--degraded", str(corpus / "noisy"), "--out", str(tmp_path)]
    assert run(*args, "--system", "wiener") == 1
    assert "unknown system 'wiener'" in capsys.readouterr().err
    assert run(*args, "--system", "identity", "--metrics", "si_sdr,nope") == 1
    assert "nope" in capsys.readouterr().err


def test_on_the_fly_degradation_matches_the_degrade_command(corpus, tmp_path):
    # `gan-enhance degrade` writes the same seeded test set to disk; scoring either gives the same numbers
    # (up to the 16-bit quantisation of the written files).
    assert (
        cli(["degrade", str(corpus / "clean"), str(tmp_path / "set"), "--task", "denoise", "--seed", "4"])
        == 0
    )
    common = [
        "--clean",
        str(corpus / "clean"),
        "--metrics",
        "si_sdr",
        "--system",
        "identity",
        "--spectrograms",
        "0",
    ]
    assert run(*common, "--task", "denoise", "--seed", "4", "--out", str(tmp_path / "fly")) == 0
    assert (
        run(*common, "--degraded", str(tmp_path / "set" / "degraded"), "--out", str(tmp_path / "disk")) == 0
    )
    on_the_fly = read_scores_csv(str(tmp_path / "fly" / "identity.csv"))
    from_disk = read_scores_csv(str(tmp_path / "disk" / "identity.csv"))
    assert [r["file"] for r in on_the_fly] == [r["file"] for r in from_disk]
    assert [r["si_sdr"] for r in on_the_fly] == pytest.approx([r["si_sdr"] for r in from_disk], abs=0.05)


def test_degrade_sets_the_snr_range_and_refuses_rooms_a_task_cannot_use(corpus, tmp_path, capsys):
    """``--set AddNoise.snr_db=[0,10]`` gives SNRs in 0-10 dB (measured: degraded - clean is the noise);
    ``--rir`` with a task that has no Reverb step is an error instead of being ignored."""
    out = tmp_path / "set"
    args = ["degrade", str(corpus / "clean"), str(out), "--task", "denoise", "--seed", "1"]
    assert cli(args + ["--set", "AddNoise.snr_db=[0, 10]", "--set", "AddNoise.prob=1.0"]) == 0
    names = [str(path.relative_to(out / "clean")) for path in sorted((out / "clean").rglob("*.wav"))]
    assert names
    for name in names:
        clean, _ = soundfile.read(str(out / "clean" / name))
        degraded, _ = soundfile.read(str(out / "degraded" / name))
        noise = degraded - clean
        snr = 10 * np.log10(np.sum(clean**2) / np.sum(noise**2))
        assert -0.6 <= snr <= 10.6, name
    assert cli(args + ["--set", "AddNoise.snr_db"]) == 1
    assert "CLASS.KEY=VALUE" in capsys.readouterr().err
    assert cli(args + ["--rir", str(corpus / "clean")]) == 1
    assert "no Reverb step" in capsys.readouterr().err


@pytest.mark.slow
def test_metric_processes_give_the_same_tables(corpus, tmp_path):
    common = ["--clean", str(corpus / "clean"), "--degraded", str(corpus / "noisy"), "--system", "identity"]
    common += ["--enhanced", f"ours={corpus / 'enhanced'}", "--metrics", FAST_METRICS, "--spectrograms", "0"]
    assert run(*common, "--out", str(tmp_path / "one")) == 0
    assert run(*common, "--out", str(tmp_path / "two"), "--jobs", "2") == 0
    for name in ("identity.csv", "ours.csv"):
        assert (tmp_path / "one" / name).read_text() == (tmp_path / "two" / name).read_text()


def test_an_output_of_the_wrong_length_is_reported(corpus, tmp_path, caplog):
    for key in KEYS:
        clean, _ = soundfile.read(str(corpus / "clean" / f"{key}.wav"), dtype="float32")
        write(tmp_path / "long", key, np.concatenate([clean, clean]))  # e.g. written at the wrong rate
    args = ["--clean", str(corpus / "clean"), "--enhanced", str(tmp_path / "long"), "--metrics", "si_sdr"]
    with caplog.at_level("WARNING", logger="gan_enhance.evaluate.runner"):
        assert run(*args, "--spectrograms", "0", "--out", str(tmp_path / "out")) == 0
    assert "Is the output's sample rate right?" in caplog.text
    # Scored on the common part, which is the clean signal itself.
    assert all(r["si_sdr"] > 70 for r in read_scores_csv(str(tmp_path / "out" / "long.csv")))


# 2.3 s: DNSMOS repeats it to 9.2 s, one 9.01 s window (1.5 s would become 12 s, three windows).
RECORDING_SECONDS = 2.3


@pytest.fixture(scope="module")
def recordings(tmp_path_factory):
    """field/sub/r1.wav (speech in noise at 5 dB) and cleaned/sub/r1.wav (the speech alone)."""
    root = tmp_path_factory.mktemp("recordings")
    clean = speech_like(RECORDING_SECONDS, seed=30)
    write(root / "cleaned", "sub/r1", clean)
    write(root / "field", "sub/r1", (clean + noise_at_snr(clean, 5.0, seed=40)).astype(np.float32))
    return root


@pytest.mark.slow
def test_recordings_without_a_reference_get_dnsmos_columns(recordings, tmp_path, capsys):
    """``--no-reference``: the recordings scored as they are, a system's outputs and an enhanced folder
    matched to them, DNSMOS columns only; the noisy recording scores the lower background MOS. A single
    recording file is scored the same way."""
    out = tmp_path / "results"
    args = ["--no-reference", str(recordings / "field"), "--enhanced", str(recordings / "cleaned")]
    args += ["--system", "identity", "--spectrograms", "1", "--out", str(out)]
    assert run(*args) == 0
    field = read_scores_csv(str(out / "field.csv"))  # named after the folder
    assert [row["file"] for row in field] == ["sub/r1"]
    columns = ["dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl", "dnsmos_p808"]
    assert list(field[0]) == ["file", "system", "duration_s", "sample_rate", *columns]
    assert field[0]["duration_s"] == pytest.approx(RECORDING_SECONDS) and field[0]["sample_rate"] == SR
    # The identity system's output is the recording itself: the same scores.
    identity = read_scores_csv(str(out / "identity.csv"))
    for row, same in zip(field, identity):
        for column in columns:
            assert same[column] == pytest.approx(row[column], abs=1e-4)
    cleaned = read_scores_csv(str(out / "cleaned.csv"))
    for noisy_row, clean_row in zip(field, cleaned):
        assert clean_row["dnsmos_bak"] > noisy_row["dnsmos_bak"] + 1.0
    printed = capsys.readouterr().out
    assert "dnsmos_ovrl ↑" in printed and "| field | 1 |" in printed
    assert sorted(os.listdir(out / "audio")) == ["identity"]  # the recordings themselves are not copied
    assert os.listdir(out / "spectrograms" / "sub") == ["r1.png"]
    recording = str(recordings / "field" / "sub" / "r1.wav")
    assert (
        run("--no-reference", f"mine={recording}", "--metrics", "dnsmos_bak", "--out", str(tmp_path / "1"))
        == 0
    )
    (row,) = read_scores_csv(str(tmp_path / "1" / "mine.csv"))
    assert list(row) == ["file", "system", "duration_s", "sample_rate", "dnsmos_bak"]
    assert row["file"] == "r1" and row["dnsmos_bak"] == pytest.approx(field[0]["dnsmos_bak"], abs=1e-4)


def test_no_reference_user_errors(recordings, tmp_path, capsys):
    field, out = str(recordings / "field"), str(tmp_path / "out")
    # Intrusive metrics need a reference; --clean and --no-reference exclude each other.
    assert run("--no-reference", field, "--metrics", "si_sdr", "--out", out) == 1
    assert "si_sdr need a clean reference" in capsys.readouterr().err
    assert run("--no-reference", field, "--clean", field, "--out", out) == 1
    assert "either --clean PATH" in capsys.readouterr().err
    assert run("--no-reference", field, "--degraded", field, "--out", out) == 1
    assert "drop --degraded" in capsys.readouterr().err
    assert run("--enhanced", field, "--out", out) == 1
    assert "either --clean PATH" in capsys.readouterr().err


def test_single_files_are_scored_like_folders(corpus, tmp_path, capsys):
    """A single clean file pairs with a single enhanced file whatever its name, or with its namesake in
    a folder (a single recording without a reference: test_recordings_without_a_reference_...)."""
    enhanced_file = tmp_path / "my_output.flac"
    data, rate = soundfile.read(str(corpus / "enhanced" / "b.flac"), dtype="float32")
    soundfile.write(str(enhanced_file), data, rate, subtype="PCM_24")
    out = tmp_path / "one"
    clean_file = str(corpus / "clean" / "b.wav")
    assert (
        run("--clean", clean_file, "--enhanced", str(enhanced_file), "--metrics", "si_sdr", "--out", str(out))
        == 0
    )
    rows = read_scores_csv(str(out / "my_output.csv"))  # named after the file, without its extension
    assert [row["file"] for row in rows] == ["b"] and rows[0]["si_sdr"] == pytest.approx(20.0, abs=0.05)
    args = ["--clean", clean_file, "--enhanced", f"ours={corpus / 'enhanced'}", "--metrics", "si_sdr"]
    assert run(*args, "--out", str(tmp_path / "two")) == 0
    assert [row["file"] for row in read_scores_csv(str(tmp_path / "two" / "ours.csv"))] == ["b"]
    text_file = tmp_path / "notes.txt"
    text_file.write_text("not audio")
    assert run("--clean", str(text_file), "--enhanced", str(enhanced_file), "--out", str(out)) == 1
    assert "'" + str(text_file) + "' is not an audio file" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["evaluate", "compare"])
def test_help_documents_every_option_with_its_default_and_no_markup(command, capsys):
    from gan_enhance.evaluate.metrics import DEFAULT_METRICS

    with pytest.raises(SystemExit):
        cli([command, "--help"])
    text = " ".join(capsys.readouterr().out.split())  # as one line, whatever the terminal's width
    assert "``" not in text and ":mod:" not in text and ":func:" not in text
    module = __import__(f"gan_enhance.cli.{command}", fromlist=["build_parser"])
    for action in module.build_parser()._actions:
        assert action.help, action.option_strings
    if command == "evaluate":
        assert "(default: 3)" in text and "(default: cpu)" in text
        metrics_help = text[text.rindex("--metrics NAMES") : text.rindex("--quality NAME:PATH")]
        assert all(name in metrics_help for name in DEFAULT_METRICS)
    else:
        assert "(default: 0.05)" in text and "(default: wilcoxon)" in text and "the baseline A first" in text
        assert "(default: )" not in text and "(default: [])" not in text
