"""The listening-test builder (stimuli, order, anchor, loudness) and the aggregation of answers."""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest
import soundfile
from scipy import stats

from gan_enhance.cli import main as cli
from gan_enhance.evaluate.listening import results
from gan_enhance.evaluate.listening.build import ANCHOR, REFERENCE, ListeningSettings, build_listening_test
from gan_enhance.evaluate.metrics import integrated_loudness

SR = 16000
ITEMS = ["i0", "i1", "i2", "i3", "i4"]


def make_test_folders(root) -> tuple[str, dict[str, str]]:
    """Reference white noise per item; system 'quiet' is the reference at -12 dB, 'noisy' adds noise."""
    rng = np.random.default_rng(0)
    folders = {name: os.path.join(root, name) for name in ("ref", "quiet", "noisy")}
    for folder in folders.values():
        os.makedirs(folder, exist_ok=True)
    for item in ITEMS:
        reference = (0.1 * rng.standard_normal(SR)).astype(np.float32)
        soundfile.write(os.path.join(folders["ref"], f"{item}.wav"), reference, SR, subtype="FLOAT")
        soundfile.write(os.path.join(folders["quiet"], f"{item}.wav"), reference / 4, SR, subtype="FLOAT")
        noisy = reference + 0.1 * rng.standard_normal(SR).astype(np.float32)
        soundfile.write(os.path.join(folders["noisy"], f"{item}.flac"), noisy, SR)
    return folders["ref"], {"quiet": folders["quiet"], "noisy": folders["noisy"]}


def band_power(wav: np.ndarray, low_hz: float) -> float:
    spectrum = np.abs(np.fft.rfft(wav)) ** 2
    return float(spectrum[np.fft.rfftfreq(len(wav), 1 / SR) > low_hz].sum() / spectrum.sum())


def test_page_holds_hidden_reference_anchor_and_systems_in_seeded_orders(tmp_path):
    reference, systems = make_test_folders(tmp_path / "in")
    page = build_listening_test(
        reference, systems, str(tmp_path / "page"), ListeningSettings(trials=4, seed=5)
    )
    config = json.loads((tmp_path / "page" / "test.json").read_text())
    html = open(page, encoding="utf-8").read()
    assert html.startswith("<!doctype html>") and config["test_id"] in html and "<script" in html
    assert len(config["mushra"]) == 4 and len({t["item"] for t in config["mushra"]}) == 4
    orders = set()
    for trial in config["mushra"]:
        names = [c["system"] for c in trial["conditions"]]
        assert sorted(names) == sorted([REFERENCE, ANCHOR, "quiet", "noisy"])
        assert [c["src"] for c in trial["conditions"]] == [
            f"audio/{trial['trial']}/c{i}.wav" for i in range(1, 5)
        ]
        orders.add(tuple(names))
        stimuli = {c["system"]: soundfile.read(tmp_path / "page" / c["src"])[0] for c in trial["conditions"]}
        # Loudness-matched to -23 LUFS, so the quiet copy is no longer quieter.
        for wav in stimuli.values():
            assert integrated_loudness(wav, SR) == pytest.approx(-23.0, abs=0.2)
        # The hidden reference is the open reference; the anchor has lost the band above 3.5 kHz.
        open_reference = soundfile.read(tmp_path / "page" / trial["reference"])[0]
        np.testing.assert_allclose(stimuli[REFERENCE], open_reference, atol=1e-4)
        assert band_power(stimuli[REFERENCE], 4000) > 0.4 and band_power(stimuli[ANCHOR], 4000) < 1e-3
    assert len(orders) > 1  # shuffled per trial
    # A/B: one pair (quiet, noisy) per item, sides drawn from the seed and both sides used.
    assert len(config["ab"]) == 4
    assert {frozenset((p["a"]["system"], p["b"]["system"])) for p in config["ab"]} == {
        frozenset(("quiet", "noisy"))
    }
    assert len({p["a"]["system"] for p in config["ab"]}) == 2
    # Same seed, same test; another seed, other orders.
    build_listening_test(reference, systems, str(tmp_path / "again"), ListeningSettings(trials=4, seed=5))
    assert json.loads((tmp_path / "again" / "test.json").read_text()) == config
    build_listening_test(reference, systems, str(tmp_path / "other"), ListeningSettings(trials=4, seed=6))
    assert json.loads((tmp_path / "other" / "test.json").read_text())["mushra"] != config["mushra"]


def test_listen_command_options(tmp_path, capsys):
    reference, systems = make_test_folders(tmp_path / "in")
    argv = [
        "listen",
        "--reference",
        reference,
        "--out",
        str(tmp_path / "page"),
        "--no-ab",
        "--anchor-hz",
        "0",
    ]
    argv += ["--system", f"a={systems['quiet']}", "--system", f"b={systems['noisy']}", "--max-seconds", "0.5"]
    assert cli(argv) == 0
    assert "index.html" in capsys.readouterr().out
    config = json.loads((tmp_path / "page" / "test.json").read_text())
    assert len(config["mushra"]) == len(ITEMS) and config["ab"] == []
    trial = config["mushra"][0]
    assert sorted(c["system"] for c in trial["conditions"]) == ["a", "b", REFERENCE]
    assert soundfile.info(str(tmp_path / "page" / trial["conditions"][0]["src"])).frames == SR // 2
    bad = [
        "listen",
        "--reference",
        reference,
        "--out",
        str(tmp_path / "x"),
        "--system",
        f"reference={systems['quiet']}",
    ]
    assert cli(bad) == 1
    assert "reserved" in capsys.readouterr().err


def answers(listener: str, scores: dict[str, list[float]], choices: list[tuple[str, str, str]]) -> dict:
    mushra = [
        {"trial": f"t{i:02d}", "item": f"i{i}", "condition": f"c{j}", "system": system, "score": score}
        for j, (system, values) in enumerate(scores.items())
        for i, score in enumerate(values)
    ]
    ab = [
        {"pair": f"p{i:02d}", "item": f"i{i}", "a": a, "b": b, "choice": c}
        for i, (a, b, c) in enumerate(choices)
    ]
    return {
        "format": "gan_enhance.listening_answers",
        "version": 1,
        "test_id": "t-0",
        "listener": listener,
        "mushra": mushra,
        "ab": ab,
    }


def test_mushra_means_and_t_intervals_by_hand(tmp_path):
    first = answers("ann", {"reference": [100, 100, 100], "ours": [60, 70, 80], "anchor": [10, 20, None]}, [])
    (tmp_path / "ann.json").write_text(json.dumps(first))
    sets = [results.read_answers(str(tmp_path / "ann.json"))]
    rows = {r["system"]: r for r in results.aggregate_mushra(sets)}
    assert [r["system"] for r in results.aggregate_mushra(sets)] == ["reference", "ours", "anchor"]
    half = stats.t.ppf(0.975, 2) * 10 / math.sqrt(3)  # std of 60, 70, 80 is 10
    assert rows["ours"]["mean"] == pytest.approx(70.0)
    assert (rows["ours"]["ci_low"], rows["ours"]["ci_high"]) == pytest.approx((70 - half, 70 + half))
    assert rows["anchor"]["n"] == 2  # the unrated trial is not a zero


def test_ab_counts_wilson_interval_and_binomial_test(tmp_path):
    choices = [("x", "y", "a")] * 6 + [("y", "x", "b")] * 3 + [("x", "y", "b")] + [("x", "y", "none")] * 2
    (tmp_path / "bob.json").write_text(json.dumps(answers("bob", {}, choices)))
    [row] = results.aggregate_ab([results.read_answers(str(tmp_path / "bob.json"))])
    assert (row["first"], row["first_preferred"], row["second_preferred"], row["no_preference"]) == (
        "x",
        9,
        1,
        2,
    )
    assert row["first_rate"] == pytest.approx(0.9)
    assert row["p_binomial"] == pytest.approx(22 / 1024)  # P(|X - 5| >= 4), X ~ Bin(10, 1/2)
    z = stats.norm.ppf(0.975)
    centre = (0.9 + z * z / 20) / (1 + z * z / 10)
    assert (row["ci_low"] + row["ci_high"]) / 2 == pytest.approx(centre)


def test_screening_and_the_results_command(tmp_path, capsys):
    good = answers(
        "good", {"reference": [100, 95, 90, 100], "ours": [70, 60, 80, 70]}, [("ours", "base", "a")]
    )
    sloppy = answers(
        "sloppy", {"reference": [40, 100, 50, 100], "ours": [100, 100, 100, 100]}, [("ours", "base", "b")]
    )
    (tmp_path / "good.json").write_text(json.dumps(good))
    (tmp_path / "sloppy.json").write_text(json.dumps(sloppy))
    assert cli(["listen-results", str(tmp_path), "--screen", "--out", str(tmp_path / "agg")]) == 0
    printed = capsys.readouterr().out
    assert "Excluded by post-screening" in printed and "sloppy" in printed
    assert "| ours | 4 | 1 | 70.0 |" in printed
    saved = json.loads((tmp_path / "agg" / "listening_results.json").read_text())
    assert saved["excluded"] == ["sloppy"] and saved["ab"][0]["first_preferred"] == 0  # 'base' sorts first
    assert cli(["listen-results", str(tmp_path / "good.json"), str(tmp_path / "sloppy.json")]) == 0
    assert "| ours | 8 | 2 | 85.0 |" in capsys.readouterr().out
    (tmp_path / "broken.json").write_text("{")
    assert cli(["listen-results", str(tmp_path / "broken.json")]) == 1
    assert "not valid JSON" in capsys.readouterr().err
