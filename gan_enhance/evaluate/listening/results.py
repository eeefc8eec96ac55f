"""Read listeners' answer files (JSON or CSV from the page) and aggregate them per system.

MUSHRA: per system, the mean score over all ratings with a 95% confidence interval from the t
distribution (as ITU-R BS.1534 reports), plus std, median and counts. Optional post-screening
(BS.1534-3): a listener who rates the hidden reference below 90 in more than 15% of trials is excluded.

A/B: per system pair, how often each side was preferred and "no preference"; the preference rate of the
first system among decisive answers, its 95% Wilson interval and a two-sided binomial test p-value.
"""

from __future__ import annotations

import csv
import json
import math
import os
from dataclasses import dataclass, field

import numpy as np

from gan_enhance.errors import DataError
from gan_enhance.evaluate.listening.build import REFERENCE
from gan_enhance.evaluate.listening.page import ANSWERS_FORMAT
from gan_enhance.evaluate.report import fmt, markdown_table

SCREEN_SCORE = 90
SCREEN_FRACTION = 0.15
CONFIDENCE = 0.95


@dataclass
class Answers:
    """One listener's answers: MUSHRA ratings and A/B choices (unanswered entries dropped)."""

    source: str
    test_id: str
    listener: str
    mushra: list[dict] = field(default_factory=list)  # {"trial", "item", "system", "score"}
    ab: list[dict] = field(default_factory=list)  # {"pair", "item", "a", "b", "choice"}


def read_answers(path: str) -> Answers:
    """Read one answer file written by the page (``.json`` or ``.csv``)."""
    if not os.path.isfile(path):
        raise DataError(f"answer file '{path}' does not exist")
    if path.lower().endswith(".json"):
        try:
            with open(path, encoding="utf-8") as handle:
                data = json.load(handle)
        except json.JSONDecodeError as error:
            raise DataError(f"'{path}' is not valid JSON ({error}); download the answers again") from None
        if data.get("format") != ANSWERS_FORMAT:
            raise DataError(f"'{path}' is not a listening-test answer file (format {data.get('format')!r})")
        answers = Answers(path, str(data["test_id"]), str(data["listener"]))
        answers.mushra = [
            dict(r, score=float(r["score"])) for r in data["mushra"] if r.get("score") is not None
        ]
        answers.ab = [r for r in data["ab"] if r.get("choice")]
        return answers
    if path.lower().endswith(".csv"):
        with open(path, newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
        if not rows or "test" not in rows[0]:
            raise DataError(f"'{path}' is not a listening-test answer CSV (no 'test' column)")
        answers = Answers(path, rows[0]["test_id"], rows[0]["listener"])
        for row in rows:
            if row["test"] == "mushra" and row["score"] != "":
                answers.mushra.append(
                    {
                        "trial": row["trial"],
                        "item": row["item"],
                        "system": row["system"],
                        "score": float(row["score"]),
                    }
                )
            elif row["test"] == "ab" and row["choice"]:
                answers.ab.append(
                    {
                        "pair": row["trial"],
                        "item": row["item"],
                        "a": row["a"],
                        "b": row["b"],
                        "choice": row["choice"],
                    }
                )
        return answers
    raise DataError(f"'{path}': answer files end in .json or .csv")


def collect_answer_files(paths: list[str]) -> list[str]:
    """Answer files among ``paths`` (folders are searched for ``*.json``/``*.csv``; JSON preferred when a
    listener downloaded both)."""
    files = []
    for path in paths:
        if os.path.isdir(path):
            names = sorted(os.listdir(path))
            stems_with_json = {n[:-5] for n in names if n.endswith(".json")}
            files += [
                os.path.join(path, n)
                for n in names
                if n.endswith(".json") or (n.endswith(".csv") and n[:-4] not in stems_with_json)
            ]
        else:
            files.append(path)
    if not files:
        raise DataError(f"no answer files found in {', '.join(paths)}")
    return files


def screen(answer_sets: list[Answers]) -> tuple[list[Answers], list[str]]:
    """Keep listeners who rate the hidden reference >= 90 in at least 85% of trials (BS.1534-3)."""
    kept, excluded = [], []
    for answers in answer_sets:
        reference = [r["score"] for r in answers.mushra if r["system"] == REFERENCE]
        low = sum(score < SCREEN_SCORE for score in reference)
        if reference and low / len(reference) > SCREEN_FRACTION:
            excluded.append(answers.listener)
        else:
            kept.append(answers)
    return kept, excluded


def mean_ci(values: np.ndarray, confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """Mean and its t-distribution confidence interval (NaN interval for fewer than two values)."""
    from scipy import stats

    values = np.asarray(values, dtype=np.float64)
    mean = float(values.mean())
    if len(values) < 2:
        return mean, math.nan, math.nan
    half = float(
        stats.t.ppf((1 + confidence) / 2, len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values))
    )
    return mean, mean - half, mean + half


def aggregate_mushra(answer_sets: list[Answers]) -> list[dict]:
    """One row per system (best mean first): n ratings, listeners, mean, 95% CI, std, median."""
    systems = sorted({r["system"] for a in answer_sets for r in a.mushra})
    rows = []
    for system in systems:
        scores = np.array([r["score"] for a in answer_sets for r in a.mushra if r["system"] == system])
        mean, low, high = mean_ci(scores)
        listeners = sum(any(r["system"] == system for r in a.mushra) for a in answer_sets)
        rows.append(
            {
                "system": system,
                "n": len(scores),
                "listeners": listeners,
                "mean": mean,
                "ci_low": low,
                "ci_high": high,
                "std": float(scores.std(ddof=1)) if len(scores) > 1 else math.nan,
                "median": float(np.median(scores)),
            }
        )
    return sorted(rows, key=lambda row: -row["mean"])


def wilson_interval(successes: int, total: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Wilson score interval of a proportion (NaN when ``total`` is 0)."""
    from scipy import stats

    if total == 0:
        return math.nan, math.nan
    z = stats.norm.ppf((1 + confidence) / 2)
    p = successes / total
    centre = (p + z * z / (2 * total)) / (1 + z * z / total)
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    return centre - half, centre + half


def aggregate_ab(answer_sets: list[Answers]) -> list[dict]:
    """One row per unordered system pair (first, second in sorted order)."""
    from scipy import stats

    counts: dict[tuple[str, str], dict[str, int]] = {}
    for answers in answer_sets:
        for r in answers.ab:
            first, second = sorted((r["a"], r["b"]))
            tally = counts.setdefault((first, second), {"first": 0, "second": 0, "none": 0})
            if r["choice"] == "none":
                tally["none"] += 1
            else:
                chosen = r["a"] if r["choice"] == "a" else r["b"]
                tally["first" if chosen == first else "second"] += 1
    rows = []
    for (first, second), tally in sorted(counts.items()):
        decisive = tally["first"] + tally["second"]
        low, high = wilson_interval(tally["first"], decisive)
        p_value = float(stats.binomtest(tally["first"], decisive).pvalue) if decisive else math.nan
        rows.append(
            {
                "first": first,
                "second": second,
                "first_preferred": tally["first"],
                "second_preferred": tally["second"],
                "no_preference": tally["none"],
                "first_rate": tally["first"] / decisive if decisive else math.nan,
                "ci_low": low,
                "ci_high": high,
                "p_binomial": p_value,
            }
        )
    return rows


def results_markdown(mushra: list[dict], ab: list[dict], listeners: int, excluded: list[str]) -> str:
    """Markdown tables of the aggregated MUSHRA and A/B results."""
    parts = [f"## Listening test results ({listeners} listener(s))\n"]
    if excluded:
        parts.append(
            f"Excluded by post-screening (hidden reference < {SCREEN_SCORE}): {', '.join(excluded)}\n"
        )
    if mushra:
        body = [
            [
                r["system"],
                str(r["n"]),
                str(r["listeners"]),
                fmt(r["mean"], 1),
                f"[{fmt(r['ci_low'], 1)}, {fmt(r['ci_high'], 1)}]",
                fmt(r["std"], 1),
                fmt(r["median"], 1),
            ]
            for r in mushra
        ]
        parts.append(
            "### MUSHRA (0-100)\n\n"
            + markdown_table(["system", "ratings", "listeners", "mean", "95% CI", "std", "median"], body)
            + "\n"
        )
    if ab:
        body = [
            [
                f"{r['first']} vs {r['second']}",
                str(r["first_preferred"]),
                str(r["second_preferred"]),
                str(r["no_preference"]),
                fmt(r["first_rate"], 2),
                f"[{fmt(r['ci_low'], 2)}, {fmt(r['ci_high'], 2)}]",
                fmt(r["p_binomial"], 3),
            ]
            for r in ab
        ]
        header = [
            "pair",
            "first preferred",
            "second preferred",
            "no preference",
            "first rate",
            "95% CI",
            "p (binomial)",
        ]
        parts.append("### A/B preference\n\n" + markdown_table(header, body) + "\n")
    return "\n".join(parts)
