"""Read listeners' answer files (JSON or CSV from the page), join them to the test's key and aggregate
them per system.

MUSHRA: per system, the mean score over all ratings with a 95% confidence interval that stays inside the
0-100 scale: the t interval (as ITU-R BS.1534 reports) clipped to [0, 100], or a percentile bootstrap.
Optional post-screening (BS.1534-3): a listener who rates the hidden reference below 90 in more than 15%
of trials, or the mid (or low) anchor above 90 in more than 15%, is excluded, with the rule and the
counts said.

A/B: per system pair, how often each side was preferred and "no preference"; the preference rate of the
first system among decisive answers, its 95% Wilson interval and a two-sided binomial test p-value.

The page is blind (version 2 answers name only trials, condition ids and sides): their systems come from
the key file (:mod:`.key`). Answers of the older, unblinded page (version 1) carry the systems themselves.
"""

from __future__ import annotations

import csv
import json
import math
import os
from dataclasses import dataclass, field

import numpy as np

from gan_enhance.errors import DataError
from gan_enhance.evaluate.listening.build import ANCHOR, MID_ANCHOR, REFERENCE
from gan_enhance.evaluate.listening.key import KEY_FORMAT
from gan_enhance.evaluate.listening.page import ANSWERS_FORMAT
from gan_enhance.evaluate.report import fmt, markdown_table

SCREEN_SCORE = 90
SCREEN_FRACTION = 0.15
CONFIDENCE = 0.95
SCALE = (0.0, 100.0)
BOOTSTRAP_RESAMPLES = 10000
CI_METHODS = ("t", "bootstrap")


@dataclass
class Answers:
    """One listener's answers: MUSHRA ratings and A/B choices (unanswered entries dropped).

    ``blind`` answers (from the current page) hold ``{"trial", "condition", "score"}`` and
    ``{"pair", "choice"}`` rows until :func:`~.key.apply_key` adds ``system``/``item`` and ``a``/``b``.
    """

    source: str
    test_id: str
    listener: str
    blind: bool = True
    mushra: list[dict] = field(default_factory=list)
    ab: list[dict] = field(default_factory=list)


def _score(value, path: str) -> float:
    try:
        score = float(value)
    except (TypeError, ValueError):
        raise DataError(f"'{path}': score {value!r} is not a number") from None
    if not SCALE[0] <= score <= SCALE[1]:
        raise DataError(f"'{path}': score {score} is outside the 0-100 MUSHRA scale")
    return score


def _read_json(path: str) -> Answers:
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except json.JSONDecodeError as error:
        raise DataError(f"'{path}' is not valid JSON ({error}); download the answers again") from None
    if isinstance(data, dict) and data.get("format") == KEY_FORMAT:
        raise DataError(f"'{path}' is the test's key, not an answer file; pass it as --key {path}")
    if not isinstance(data, dict) or data.get("format") != ANSWERS_FORMAT:
        found = data.get("format") if isinstance(data, dict) else None
        raise DataError(f"'{path}' is not a listening-test answer file (format {found!r})")
    missing = [name for name in ("test_id", "listener", "mushra", "ab") if name not in data]
    if missing:
        raise DataError(f"'{path}' lacks {', '.join(missing)}; download the answers from the page again")
    answers = Answers(path, str(data["test_id"]), str(data["listener"]), blind=data.get("version", 1) >= 2)
    for row in data["mushra"]:
        if row.get("score") is not None:
            answers.mushra.append(dict(row, score=_score(row["score"], path)))
    answers.ab = [dict(r) for r in data["ab"] if r.get("choice")]
    return answers


def _read_csv(path: str) -> Answers:
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    if not rows or "test" not in rows[0]:
        raise DataError(f"'{path}' is not a listening-test answer CSV (no 'test' column)")
    answers = Answers(path, rows[0]["test_id"], rows[0]["listener"], blind="system" not in rows[0])
    for row in rows:
        if row["test"] == "mushra" and row["score"] != "":
            entry = {"trial": row["trial"], "score": _score(row["score"], path)}
            if row.get("played"):
                entry["played"] = row["played"] == "true"
            fields = ("item", "system") if not answers.blind else ("condition",)
            answers.mushra.append(entry | {name: row[name] for name in fields})
        elif row["test"] == "ab" and row["choice"]:
            entry = {"pair": row["trial"], "choice": row["choice"]}
            answers.ab.append(entry | ({} if answers.blind else {n: row[n] for n in ("item", "a", "b")}))
    return answers


def read_answers(path: str) -> Answers:
    """Read one answer file written by the page (``.json`` or ``.csv``)."""
    if not os.path.isfile(path):
        raise DataError(f"answer file '{path}' does not exist")
    if path.lower().endswith(".json"):
        return _read_json(path)
    if path.lower().endswith(".csv"):
        return _read_csv(path)
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


def attach_systems(answer_sets: list[Answers], key_path: str = "") -> None:
    """Give blind answers their systems and items from the key file at ``key_path``."""
    from gan_enhance.evaluate.listening.key import apply_key, read_key

    key = read_key(key_path) if key_path else None
    for answers in answer_sets:
        if answers.blind:
            if key is None:
                raise DataError(
                    f"'{answers.source}' names no systems (the page is blind); pass --key with the "
                    "-key.json that gan-enhance listen wrote beside the page folder"
                )
            apply_key(answers, key, key_path)
            answers.blind = False


def _screening_reasons(answers: Answers) -> list[str]:
    """The BS.1534-3 post-screening rules ``answers`` breaks, each with its counts."""
    rules = [
        (REFERENCE, "hidden reference", "below", lambda score: score < SCREEN_SCORE),
        (MID_ANCHOR, "mid anchor", "above", lambda score: score > SCREEN_SCORE),
        # The standard's anchor rule names the mid anchor; a low anchor above 90 is plainer evidence still.
        (ANCHOR, "low anchor", "above", lambda score: score > SCREEN_SCORE),
    ]
    reasons = []
    for system, role, side, breaks in rules:
        scores = [r["score"] for r in answers.mushra if r["system"] == system]
        count = sum(map(breaks, scores))
        if scores and count / len(scores) > SCREEN_FRACTION:
            reasons.append(
                f"rated the {role} {side} {SCREEN_SCORE} in {count} of {len(scores)} trials "
                f"({100 * count / len(scores):.0f}%, more than the {100 * SCREEN_FRACTION:.0f}% "
                "ITU-R BS.1534-3 post-screening allows)"
            )
    return reasons


def screen(answer_sets: list[Answers]) -> tuple[list[Answers], list[dict]]:
    """Split listeners by BS.1534-3 post-screening: keep those who rate the hidden reference >= 90 and each
    anchor (mid, low) <= 90 in at least 85% of trials.

    Returns
    -------
    tuple[list[Answers], list[dict]]
        The kept answers, and per excluded listener ``{"listener", "file", "reasons"}``.
    """
    kept, excluded = [], []
    for answers in answer_sets:
        reasons = _screening_reasons(answers)
        if reasons:
            excluded.append({"listener": answers.listener, "file": answers.source, "reasons": reasons})
        else:
            kept.append(answers)
    return kept, excluded


def mean_ci(
    values: np.ndarray, confidence: float = CONFIDENCE, method: str = "t", bounds: tuple[float, float] = SCALE
) -> tuple[float, float, float]:
    """Mean and its confidence interval, kept inside ``bounds`` (NaN interval for fewer than two values).

    ``method="t"``: the t-distribution interval, clipped to ``bounds`` (ratings near the end of the scale
    otherwise give intervals past it). ``"bootstrap"``: the percentile interval of the mean over
    resampled ratings (fixed seed), which lies inside the ratings' own range.
    """
    from scipy import stats

    values = np.asarray(values, dtype=np.float64)
    mean = float(values.mean())
    if len(values) < 2:
        return mean, math.nan, math.nan
    if method == "t":
        half = float(
            stats.t.ppf((1 + confidence) / 2, len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values))
        )
        low, high = mean - half, mean + half
    elif method == "bootstrap":
        rng = np.random.default_rng(0)
        means = values[rng.integers(0, len(values), (BOOTSTRAP_RESAMPLES, len(values)))].mean(axis=1)
        low, high = np.quantile(means, [(1 - confidence) / 2, (1 + confidence) / 2])
    else:
        raise ValueError(f"unknown confidence-interval method {method!r}; use one of {CI_METHODS}")
    return mean, max(float(low), bounds[0]), min(float(high), bounds[1])


def aggregate_mushra(answer_sets: list[Answers], ci: str = "t") -> list[dict]:
    """One row per system (best mean first): n ratings, listeners, mean, 95% CI (``ci`` method, see
    :func:`mean_ci`), std, median."""
    systems = sorted({r["system"] for a in answer_sets for r in a.mushra})
    rows = []
    for system in systems:
        scores = np.array([r["score"] for a in answer_sets for r in a.mushra if r["system"] == system])
        mean, low, high = mean_ci(scores, method=ci)
        listeners = sum(any(r["system"] == system for r in a.mushra) for a in answer_sets)
        rows.append(
            {
                "system": system,
                "n": len(scores),
                "listeners": listeners,
                "mean": mean,
                "ci_low": low,
                "ci_high": high,
                "ci_method": ci,
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


def unplayed_lines(answer_sets: list[Answers]) -> list[str]:
    """One line per listener who rated sounds the page saw them never play (pages from version 2 on)."""
    lines = []
    for answers in answer_sets:
        unplayed = sum(r.get("played") is False for r in answers.mushra)
        if unplayed:
            lines.append(
                f"listener {answers.listener} ({answers.source}) rated {unplayed} of {len(answers.mushra)} "
                "sounds without playing them"
            )
    return lines


def screening_lines(excluded: list[dict]) -> list[str]:
    """One line per excluded listener: who, from which file, and every rule broken with its counts."""
    return [f"listener {e['listener']} ({e['file']}): {'; '.join(e['reasons'])}" for e in excluded]


def results_markdown(
    mushra: list[dict], ab: list[dict], listeners: int, excluded: list[dict], warnings: tuple[str, ...] = ()
) -> str:
    """Markdown tables of the aggregated MUSHRA and A/B results (``excluded`` as from :func:`screen`,
    ``warnings`` listed above the tables)."""
    parts = [f"## Listening test results ({listeners} listener(s))\n"]
    if warnings:
        parts.append("Check:\n\n" + "\n".join(f"- {line}" for line in warnings) + "\n")
    if excluded:
        lines = "\n".join(f"- {line}" for line in screening_lines(excluded))
        parts.append(f"Excluded by post-screening:\n\n{lines}\n")
    if mushra:
        method = {"t": "t, clipped to 0-100", "bootstrap": "bootstrap"}[mushra[0]["ci_method"]]
        ci_header = f"95% CI ({method})"
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
            + markdown_table(["system", "ratings", "listeners", "mean", ci_header, "std", "median"], body)
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
