"""Paired comparison statistics: a clearly better system wins with p < 0.05, a system against itself
shows no difference, Holm's correction and the bootstrap interval against hand computations."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gan_enhance.cli import compare as compare_cli
from gan_enhance.errors import DataError
from gan_enhance.evaluate import compare
from gan_enhance.evaluate.report import read_scores_csv, write_scores_csv

N_FILES = 20


def table(
    system: str, si_sdr: np.ndarray, lsd: np.ndarray, loudness: np.ndarray, first: int = 0
) -> list[dict]:
    return [
        {
            "file": f"f{first + i:03d}",
            "system": system,
            "si_sdr": float(a),
            "lsd": float(b),
            "loudness_diff": float(c),
        }
        for i, (a, b, c) in enumerate(zip(si_sdr, lsd, loudness))
    ]


@pytest.fixture
def two_systems():
    rng = np.random.default_rng(0)
    base_sdr = rng.normal(5.0, 2.0, N_FILES)
    base_lsd = rng.normal(2.0, 0.3, N_FILES)
    base_loud = rng.normal(-3.0, 0.5, N_FILES)
    baseline = table("baseline", base_sdr, base_lsd, base_loud)
    # Better everywhere: +3 dB SI-SDR, 0.5 lower LSD, loudness error shrunk towards 0, with file noise.
    better = table(
        "ours",
        base_sdr + 3.0 + rng.normal(0, 0.5, N_FILES),
        base_lsd - 0.5 + rng.normal(0, 0.1, N_FILES),
        base_loud * 0.1 + rng.normal(0, 0.05, N_FILES),
    )
    return baseline, better


def test_a_clearly_better_system_wins_every_metric(two_systems):
    baseline, better = two_systems
    results = {r.metric: r for r in compare.compare_systems({"baseline": baseline, "ours": better})}
    assert set(results) == {"si_sdr", "lsd", "loudness_diff"}
    for r in results.values():
        assert r.n == N_FILES
        assert r.p_ttest < 0.05 and r.p_wilcoxon < 0.05
        assert r.winner == "ours"
        assert r.ci_low <= r.mean_difference <= r.ci_high
    assert results["si_sdr"].mean_difference == pytest.approx(
        np.mean([b["si_sdr"] - a["si_sdr"] for a, b in zip(baseline, better)])
    )
    assert results["si_sdr"].ci_low > 0 and results["si_sdr"].effect_size > 2
    assert results["lsd"].ci_high < 0 and results["lsd"].effect_size < -2  # lower is better, and lower it is
    assert results["loudness_diff"].absolute and results["loudness_diff"].label == "abs(loudness_diff)"
    # Reversed roles: the same evidence, now the first table wins.
    reverse = {r.metric: r for r in compare.compare_systems({"ours": better, "baseline": baseline})}
    assert all(r.winner == "ours" for r in reverse.values())


def test_a_system_against_itself_shows_no_difference(two_systems):
    baseline, _ = two_systems
    for r in compare.compare_systems({"a": baseline, "b": [dict(row) for row in baseline]}):
        assert r.mean_difference == 0.0
        assert (r.ci_low, r.ci_high) == (0.0, 0.0)
        assert r.p_ttest == 1.0 and r.p_wilcoxon == 1.0
        assert r.effect_size == 0.0
        assert r.winner == compare.TIE


def test_small_noisy_differences_are_a_tie():
    rng = np.random.default_rng(1)
    a = rng.normal(10, 3, 12)
    b = a + rng.normal(0, 3, 12)  # no true difference
    results = compare.compare_systems(
        {"a": table("a", a, a, a), "b": table("b", b, b, b)}, metrics=["si_sdr"]
    )
    assert results[0].winner == compare.TIE
    assert results[0].p_wilcoxon > 0.05


def test_only_common_files_are_paired_and_nan_is_skipped(two_systems):
    baseline, better = two_systems
    partial = better[5:]
    partial[0]["si_sdr"] = math.nan
    results = {r.metric: r for r in compare.compare_systems({"baseline": baseline, "ours": partial})}
    assert results["si_sdr"].n == N_FILES - 6
    assert results["lsd"].n == N_FILES - 5
    with pytest.raises(DataError, match="no file in common"):
        compare.compare_systems({"a": baseline, "b": table("b", [1.0], [1.0], [1.0], first=500)})


def test_holm_matches_a_hand_computation():
    # sorted: 0.01*3 = 0.03; 0.03*2 = 0.06; 0.04*1 = 0.04 -> kept monotone at 0.06
    assert compare.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    adjusted = compare.holm([0.5, math.nan])
    assert adjusted[0] == 0.5 and math.isnan(adjusted[1])  # NaN neither counts nor changes
    assert compare.holm([0.4, 0.3]) == pytest.approx([0.6, 0.6])


def test_bootstrap_interval_is_seeded_and_matches_the_normal_approximation():
    d = np.random.default_rng(3).normal(1.0, 2.0, 400)
    first = compare.bootstrap_ci(d, seed=7)
    assert compare.bootstrap_ci(d, seed=7) == first
    half = 1.96 * d.std(ddof=1) / math.sqrt(len(d))
    assert first[0] == pytest.approx(d.mean() - half, abs=0.03)
    assert first[1] == pytest.approx(d.mean() + half, abs=0.03)


def test_more_than_two_systems_are_corrected_against_the_first(two_systems):
    baseline, better = two_systems
    same = [dict(row, system="same") for row in baseline]
    tables = {"baseline": baseline, "ours": better, "same": same}
    results = compare.compare_systems(tables, metrics=["si_sdr"])
    by_system = {r.system: r for r in results}
    assert set(by_system) == {"ours", "same"}
    raw_ours = compare.paired_tests(np.array([b["si_sdr"] - a["si_sdr"] for a, b in zip(baseline, better)]))
    # Holm with m = 2: the smaller p doubles; the other (1.0) stays 1.0.
    assert by_system["ours"].p_ttest == pytest.approx(min(1.0, 2 * raw_ours[0]))
    assert by_system["same"].p_ttest == 1.0
    assert by_system["ours"].winner == "ours" and by_system["same"].winner == compare.TIE
    text = compare.comparison_markdown(results)
    assert "### ours vs baseline" in text and "### same vs baseline" in text and "Holm" in text


def test_compare_command_prints_and_writes_the_table(two_systems, tmp_path, capsys):
    baseline, better = two_systems
    write_scores_csv(str(tmp_path / "baseline.csv"), baseline)
    write_scores_csv(str(tmp_path / "ours.csv"), better)
    assert read_scores_csv(str(tmp_path / "ours.csv"))[3] == better[3]
    code = compare_cli.main(
        [str(tmp_path / "baseline.csv"), f"mine={tmp_path / 'ours.csv'}", "--out", str(tmp_path / "cmp")]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "### mine vs baseline" in printed
    header = next(line for line in printed.splitlines() if line.startswith("| metric"))
    assert "winner" in header and "95% CI" in header and "p (Wilcoxon)" in header
    si_sdr_line = next(line for line in printed.splitlines() if line.startswith("| si_sdr"))
    assert si_sdr_line.rstrip(" |").endswith("mine")
    assert (tmp_path / "cmp" / "comparison.md").read_text(encoding="utf-8") == printed.rstrip("\n") + "\n"
    assert "p_wilcoxon" in (tmp_path / "cmp" / "comparison.csv").read_text(encoding="utf-8")


def test_a_metric_missing_from_a_table_is_named(two_systems):
    baseline, better = two_systems
    with pytest.raises(DataError, match="pesq_wb not in the table of 'baseline'"):
        compare.compare_systems({"baseline": baseline, "ours": better}, metrics=["si_sdr", "pesq_wb"])
