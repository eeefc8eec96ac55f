"""Paired comparison of systems scored on the same files.

Systems are compared on the files both scored (matched by the ``file`` column), metric by metric:

- mean difference ``B - A`` (the system B minus the baseline A, whatever the metric's direction) and its
  95% percentile bootstrap confidence interval (fixed seed, so the same tables give the same interval);
- the paired t-test (``scipy.stats.ttest_rel``) and the Wilcoxon signed-rank test
  (``scipy.stats.wilcoxon``), two-sided;
- the effect size Cohen's ``d_z = mean(d) / std(d)`` of the paired differences ``d``;
- the winner, read through the metric's direction (higher SI-SDR is better, lower LSD is better, loudness
  difference nearer zero is better: it is compared by its absolute value). A winner is declared only
  when the decision test's p-value is below ``alpha``; otherwise the row says ``tie``. The markdown says
  it in words (``ours better``, ``no significant difference``) and in one sentence per system.

With more than two systems every system is compared with the first, and the p-values of each metric are
Holm-corrected over those comparisons (family-wise error rate ``alpha`` per metric).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass

import numpy as np

from gan_enhance.errors import DataError

# quality registers the built-in no-reference columns (dnsmos_*, utmos) and their directions.
from gan_enhance.evaluate import quality  # noqa: F401
from gan_enhance.evaluate.metrics import HIGHER, METRICS, ZERO
from gan_enhance.evaluate.report import fmt, markdown_table, metric_columns

TIE = "tie"
# The Wilcoxon test with too few pairs: even n pairs that all favour one side cannot reach alpha.
TOO_FEW = "too few pairs"
TESTS = ("wilcoxon", "ttest")
# Bootstrap resamples are drawn in blocks of at most this many values to bound memory.
_BOOTSTRAP_BLOCK = 2_000_000


@dataclass
class PairedResult:
    """One metric compared between a baseline and a system on their common files."""

    metric: str
    baseline: str
    system: str
    n: int
    baseline_mean: float
    system_mean: float
    mean_difference: float
    ci_low: float
    ci_high: float
    p_ttest: float
    p_wilcoxon: float
    effect_size: float
    winner: str
    # True when the metric's ideal is 0 and it was compared by absolute value.
    absolute: bool = False

    @property
    def label(self) -> str:
        return f"abs({self.metric})" if self.absolute else self.metric

    def as_row(self) -> dict:
        return asdict(self)


def bootstrap_ci(
    differences: np.ndarray, confidence: float = 0.95, resamples: int = 10000, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``differences`` (resampling files with replacement)."""
    d = np.asarray(differences, dtype=np.float64)
    if len(d) == 0:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    block = max(1, _BOOTSTRAP_BLOCK // len(d))
    means = []
    for start in range(0, resamples, block):
        count = min(block, resamples - start)
        means.append(d[rng.integers(0, len(d), size=(count, len(d)))].mean(axis=1))
    means = np.concatenate(means)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


def paired_tests(differences: np.ndarray) -> tuple[float, float]:
    """Two-sided p-values ``(t-test, Wilcoxon)`` for mean/median paired difference zero.

    Differences that are all zero give p = 1 for both (scipy would return NaN or refuse); a constant
    non-zero difference gives p = 0 for the t-test. Fewer than two pairs give NaN.
    """
    from scipy import stats

    d = np.asarray(differences, dtype=np.float64)
    if len(d) < 2:
        return math.nan, math.nan
    if np.all(d == 0):
        return 1.0, 1.0
    if np.all(d == d[0]):
        p_t = 0.0
    else:
        p_t = float(stats.ttest_rel(d, np.zeros_like(d)).pvalue)
    with warnings.catch_warnings():
        # scipy warns when it falls back from the exact distribution (ties, zeros): the p-value is fine.
        warnings.simplefilter("ignore", UserWarning)
        p_w = float(stats.wilcoxon(d, zero_method="wilcox").pvalue)
    return p_t, p_w


def cohens_dz(differences: np.ndarray) -> float:
    """Cohen's d_z: mean paired difference over its standard deviation (ddof=1)."""
    d = np.asarray(differences, dtype=np.float64)
    if len(d) < 2:
        return math.nan
    mean, std = d.mean(), d.std(ddof=1)
    if std == 0:
        return 0.0 if mean == 0 else math.copysign(math.inf, mean)
    return float(mean / std)


def holm(p_values: list[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (NaN entries stay NaN and do not count)."""
    valid = [(p, i) for i, p in enumerate(p_values) if not math.isnan(p)]
    adjusted = [math.nan] * len(p_values)
    running = 0.0
    for rank, (p, i) in enumerate(sorted(valid)):
        running = max(running, min(1.0, (len(valid) - rank) * p))
        adjusted[i] = running
    return adjusted


def _oriented(name: str, values: np.ndarray) -> np.ndarray:
    """Values compared as-is, or by absolute value for metrics whose ideal is zero."""
    spec = METRICS.get(name)
    return np.abs(values) if spec is not None and spec.better == ZERO else values


def _winner(name: str, difference: float, p_value: float, alpha: float, baseline: str, system: str) -> str:
    spec = METRICS.get(name)
    if spec is None:
        return "? (unknown direction)"
    if math.isnan(p_value) or p_value >= alpha or difference == 0:
        return TIE
    system_better = difference > 0 if spec.better == HIGHER else difference < 0
    return system if system_better else baseline


def compare_pair(
    baseline_rows: list[dict],
    system_rows: list[dict],
    baseline: str,
    system: str,
    metrics: list[str] | None = None,
    seed: int = 0,
    resamples: int = 10000,
) -> list[PairedResult]:
    """Compare two score tables on their common files, metric by metric (winners not yet decided)."""
    base_by_file = {row["file"]: row for row in baseline_rows}
    common = [row["file"] for row in system_rows if row["file"] in base_by_file]
    if not common:
        raise DataError(
            f"'{baseline}' and '{system}' have no file in common; were they scored on the same set?"
        )
    sys_by_file = {row["file"]: row for row in system_rows}
    names = metrics or [n for n in metric_columns(baseline_rows) if n in metric_columns(system_rows)]
    for label, rows in ((baseline, baseline_rows), (system, system_rows)):
        missing = [name for name in names if name not in metric_columns(rows)]
        if missing:
            raise DataError(
                f"metric(s) {', '.join(missing)} not in the table of '{label}'; it has: "
                f"{', '.join(metric_columns(rows))}"
            )
    results = []
    for name in names:
        a = np.array([base_by_file[f].get(name, math.nan) for f in common], dtype=np.float64)
        b = np.array([sys_by_file[f].get(name, math.nan) for f in common], dtype=np.float64)
        keep = np.isfinite(a) & np.isfinite(b)
        if not keep.any():
            continue
        a, b = _oriented(name, a[keep]), _oriented(name, b[keep])
        d = b - a
        p_t, p_w = paired_tests(d)
        low, high = bootstrap_ci(d, resamples=resamples, seed=seed)
        results.append(
            PairedResult(
                metric=name,
                baseline=baseline,
                system=system,
                n=int(keep.sum()),
                baseline_mean=float(a.mean()) if len(a) else math.nan,
                system_mean=float(b.mean()) if len(b) else math.nan,
                mean_difference=float(d.mean()) if len(d) else math.nan,
                ci_low=low,
                ci_high=high,
                p_ttest=p_t,
                p_wilcoxon=p_w,
                effect_size=cohens_dz(d),
                winner=TIE,
                absolute=METRICS.get(name) is not None and METRICS[name].better == ZERO,
            )
        )
    return results


def compare_systems(
    tables: dict[str, list[dict]],
    metrics: list[str] | None = None,
    alpha: float = 0.05,
    test: str = "wilcoxon",
    seed: int = 0,
    resamples: int = 10000,
) -> list[PairedResult]:
    """Compare every system with the first one (the baseline); Holm-correct p-values per metric.

    Parameters
    ----------
    tables : dict[str, list[dict]]
        System name -> its score rows, the baseline first.
    test : str
        ``"wilcoxon"`` or ``"ttest"``: whose (adjusted) p-value decides the winner.
    """
    if len(tables) < 2:
        raise DataError("compare needs at least two score tables")
    if test not in TESTS:
        raise DataError(f"unknown test {test!r}; use one of {', '.join(TESTS)}")
    (baseline, base_rows), *others = tables.items()
    results = [
        r
        for system, rows in others
        for r in compare_pair(base_rows, rows, baseline, system, metrics, seed, resamples)
    ]
    for metric in dict.fromkeys(r.metric for r in results):
        family = [r for r in results if r.metric == metric]
        for r, p_t, p_w in zip(
            family, holm([r.p_ttest for r in family]), holm([r.p_wilcoxon for r in family])
        ):
            r.p_ttest, r.p_wilcoxon = p_t, p_w
            decision = p_w if test == "wilcoxon" else p_t
            r.winner = _winner(metric, r.mean_difference, decision, alpha, r.baseline, r.system)
            # Holm multiplies the smallest p by the family's size; below it no p can fall.
            if test == "wilcoxon" and r.winner == TIE and len(family) * smallest_wilcoxon_p(r.n) >= alpha:
                r.winner = TOO_FEW
    return results


def smallest_wilcoxon_p(n: int) -> float:
    """The smallest two-sided p-value of the exact Wilcoxon signed-rank test on ``n`` pairs (all
    differences of one sign): ``2 / 2**n``. At n = 5 it is 0.0625, so no 5-file test set can show a
    difference at p < 0.05, however large."""
    return 2.0 ** (1 - n) if n > 0 else 1.0


def _p(value: float) -> str:
    if math.isnan(value):
        return "-"
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def _signed(value: float) -> str:
    """A difference with its sign always written (``+0.512``, ``-0.030``); ``-`` for NaN."""
    return "-" if math.isnan(value) else f"{value:+.3f}"


def verdict(result: PairedResult) -> str:
    """The row's outcome in words: ``"<system> better"``, or that the difference is not significant."""
    if result.winner == TIE:
        return "no significant difference"
    if result.winner == TOO_FEW:
        return f"too few files to decide (n = {result.n}; the Wilcoxon test needs more, or use --test ttest)"
    if result.winner in (result.system, result.baseline):
        return f"{result.winner} better"
    return result.winner  # the metric's direction is unknown


def _sentence(rows: list[PairedResult]) -> str:
    """One line saying, metric by metric, whether the system beat the baseline."""
    system, baseline = rows[0].system, rows[0].baseline
    groups = {
        "better than": [r.label for r in rows if r.winner == system],
        "worse than": [r.label for r in rows if r.winner == baseline],
        "not significantly different from": [r.label for r in rows if r.winner == TIE],
        "too few files to compare with": [r.label for r in rows if r.winner == TOO_FEW],
    }
    parts = [f"{how} {baseline} on {', '.join(names)}" for how, names in groups.items() if names]
    unknown = [r.label for r in rows if r.winner not in (system, baseline, TIE, TOO_FEW)]
    if unknown:
        parts.append(f"of unknown direction on {', '.join(unknown)}")
    return f"{system} is " + "; ".join(parts) + "."


def comparison_markdown(results: list[PairedResult], alpha: float = 0.05, test: str = "wilcoxon") -> str:
    """One markdown table per compared system B against the baseline A, with a sentence saying who won.

    Every difference, its interval and ``d_z`` are ``B - A`` (positive: B scored higher).
    """
    sections = []
    systems = list(dict.fromkeys(r.system for r in results))
    corrected = len(systems) > 1
    for system in systems:
        rows = [r for r in results if r.system == system]
        baseline = rows[0].baseline
        body = [
            [
                r.label,
                str(r.n),
                fmt(r.baseline_mean),
                fmt(r.system_mean),
                _signed(r.mean_difference),
                f"[{_signed(r.ci_low)}, {_signed(r.ci_high)}]",
                _p(r.p_ttest),
                _p(r.p_wilcoxon),
                fmt(r.effect_size, 2),
                verdict(r),
            ]
            for r in rows
        ]
        header = [
            "metric",
            "n",
            f"A: {baseline}",
            f"B: {system}",
            "B - A",
            "95% CI of B - A",
            "p (t)",
            "p (Wilcoxon)",
            "d_z",
            "verdict",
        ]
        title = f"### {system} (B) vs {baseline} (A, baseline)"
        sections.append(f"{title}\n\n{_sentence(rows)}\n\n{markdown_table(header, body)}\n")
    note = (
        "Paired on common files. B - A: the system's mean minus the baseline's (positive: the system scored "
        f"higher; ↑/↓ in the score tables say which way is better). A verdict names the better system where the "
        f"{test} p < {alpha}"
        + (", p-values Holm-corrected per metric over the comparisons with the baseline" if corrected else "")
        + "; abs(x): compared by absolute value (ideal 0).\n"
    )
    return "\n".join(sections) + "\n" + note
