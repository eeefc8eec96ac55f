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


def test_five_files_are_too_few_for_the_wilcoxon_test_and_the_verdict_says_so(two_systems):
    """Five pairs that all favour one side give the exact Wilcoxon test p = 2 / 2**5 = 0.0625: not a tie
    of the systems, a test set too small to tell."""
    baseline, better = two_systems
    results = {r.metric: r for r in compare.compare_systems({"baseline": baseline[:5], "ours": better[:5]})}
    assert compare.smallest_wilcoxon_p(5) == 0.0625
    assert results["si_sdr"].p_wilcoxon == pytest.approx(0.0625)
    assert results["si_sdr"].winner == compare.TOO_FEW
    assert compare.verdict(results["si_sdr"]).startswith("too few files to decide (n = 5")
    # the t-test can decide on five pairs, and six pairs are enough for the Wilcoxon test
    by_ttest = compare.compare_systems({"baseline": baseline[:5], "ours": better[:5]}, test="ttest")
    assert all(r.winner == "ours" for r in by_ttest)
    six = compare.compare_systems({"baseline": baseline[:6], "ours": better[:6]}, metrics=["si_sdr"])
    assert six[0].winner == "ours"


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
    assert "### ours (B) vs baseline (A, baseline)" in text and "### same (B) vs baseline" in text
    assert "Holm" in text


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
    assert "### mine (B) vs baseline (A, baseline)" in printed
    header = next(line for line in printed.splitlines() if line.startswith("| metric"))
    assert header.startswith("| metric | n | A: baseline | B: mine | B - A | 95% CI of B - A |")
    assert header.endswith("| p (t) | p (Wilcoxon) | d_z | verdict |")
    assert (tmp_path / "cmp" / "comparison.md").read_text(encoding="utf-8") == printed.rstrip("\n") + "\n"
    assert "p_wilcoxon" in (tmp_path / "cmp" / "comparison.csv").read_text(encoding="utf-8")


def test_the_table_says_who_is_better_in_words_and_differences_are_b_minus_a(two_systems, capsys):
    baseline, better = two_systems
    worse_lsd = [dict(row, lsd=row["lsd"] + 1.0) for row in better]  # now worse than the baseline on lsd
    results = compare.compare_systems({"base": baseline, "ours": worse_lsd})
    text = compare.comparison_markdown(results)
    assert "ours is better than base on si_sdr, abs(loudness_diff); worse than base on lsd." in text
    cells = {
        line.split("|")[1].strip(): [cell.strip() for cell in line.split("|")[2:-1]]
        for line in text.splitlines()
        if line.startswith("| ") and not line.startswith("| metric")
    }
    by_metric = {r.label: r for r in results}
    for label, row in cells.items():
        a, b, difference = float(row[1]), float(row[2]), float(row[3])
        assert difference == pytest.approx(b - a, abs=2e-3), label  # one sign everywhere: B - A
        assert difference == pytest.approx(by_metric[label].mean_difference, abs=1e-3)
    assert cells["si_sdr"][3].startswith("+") and cells["si_sdr"][-1] == "ours better"
    assert cells["lsd"][3].startswith("+") and cells["lsd"][-1] == "base better"  # higher LSD is worse
    assert cells["abs(loudness_diff)"][3].startswith("-") and cells["abs(loudness_diff)"][-1] == "ours better"
    same = compare.compare_systems({"a": baseline, "b": [dict(row, system="b") for row in baseline]})
    same_text = compare.comparison_markdown(same)
    assert "no significant difference" in same_text
    assert "b is not significantly different from a on si_sdr, lsd, abs(loudness_diff)." in same_text
    assert "B - A: the system's mean minus the baseline's" in same_text


def test_a_metric_missing_from_a_table_is_named(two_systems):
    baseline, better = two_systems
    with pytest.raises(DataError, match="pesq_wb not in the table of 'baseline'"):
        compare.compare_systems({"baseline": baseline, "ours": better}, metrics=["si_sdr", "pesq_wb"])


def test_dnsmos_columns_are_compared_higher_is_better(two_systems):
    """DNSMOS columns from ``evaluate`` (no reference needed) compare like any metric: higher wins."""
    baseline, better = two_systems
    noisy = [dict(row, dnsmos_bak=2.0 + 0.01 * i) for i, row in enumerate(baseline)]
    enhanced = [dict(row, dnsmos_bak=3.0 + 0.02 * i) for i, row in enumerate(better)]
    (result,) = compare.compare_systems({"noisy": noisy, "enhanced": enhanced}, metrics=["dnsmos_bak"])
    assert result.winner == "enhanced" and result.mean_difference == pytest.approx(1.0 + 0.01 * 9.5)
    assert compare.verdict(result) == "enhanced better"
    (reverse,) = compare.compare_systems({"enhanced": enhanced, "noisy": noisy}, metrics=["dnsmos_bak"])
    assert reverse.mean_difference < 0 and compare.verdict(reverse) == "enhanced better"
