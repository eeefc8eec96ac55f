"""Per-file score tables (CSV), their summaries (markdown) and spectrogram comparison figures.

A score table is a list of rows, one per file: ``{"file": relative name, "system": name, <metric>: float,
...}``. The CSV keeps every metric column; NaN is written as an empty cell and read back as NaN.
"""

from __future__ import annotations

import csv
import math
import os

import numpy as np

from gan_enhance.atomic import atomic_path
from gan_enhance.errors import DataError
from gan_enhance.evaluate.metrics import HIGHER, LOWER, METRICS

# Columns that describe a row rather than score it.
KEY_COLUMNS = ["file", "system"]
INFO_COLUMNS = ["duration_s", "sample_rate", "cutoff_hz"]
ARROWS = {HIGHER: "↑", LOWER: "↓"}
ARROW_ZERO = "→0"
SPECTROGRAM_N_FFT = 1024
SPECTROGRAM_FLOOR_DB = -100.0


def metric_columns(rows: list[dict]) -> list[str]:
    """The score columns of ``rows`` in first-seen order (key and info columns excluded)."""
    columns: list[str] = []
    for row in rows:
        for key in row:
            if key not in KEY_COLUMNS and key not in INFO_COLUMNS and key not in columns:
                columns.append(key)
    return columns


def write_scores_csv(path: str, rows: list[dict]) -> None:
    """Write one row per file: key columns, info columns, then metrics (NaN as an empty cell)."""
    present_info = [c for c in INFO_COLUMNS if any(c in row for row in rows)]
    header = KEY_COLUMNS + present_info + metric_columns(rows)
    with atomic_path(path) as temporary, open(temporary, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=header)
        writer.writeheader()
        for row in rows:
            writer.writerow({key: _cell(row.get(key, math.nan)) for key in header})


def _cell(value) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else repr(value)
    return str(value)


def read_scores_csv(path: str) -> list[dict]:
    """Read a table written by :func:`write_scores_csv` (score cells as floats, empty -> NaN)."""
    if not os.path.isfile(path):
        raise DataError(f"score table '{path}' does not exist; write it with `gan-enhance evaluate`")
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames or "file" not in reader.fieldnames:
            raise DataError(
                f"'{path}' has no 'file' column; is it a table written by `gan-enhance evaluate`?"
            )
        rows = []
        for line, raw in enumerate(reader, start=2):
            row = {}
            for key, value in raw.items():
                if key in ("file", "system"):
                    row[key] = value
                    continue
                try:
                    row[key] = float(value) if value not in ("", None) else math.nan
                except ValueError:
                    raise DataError(
                        f"'{path}' line {line}: column '{key}' holds '{value}', not a number"
                    ) from None
            rows.append(row)
    if not rows:
        raise DataError(f"score table '{path}' has no rows")
    return rows


def metric_label(name: str) -> str:
    """``name`` with an arrow saying which way is better (when the metric is known)."""
    spec = METRICS.get(name)
    if spec is None:
        return name
    return f"{name} {ARROWS.get(spec.better, ARROW_ZERO)}"


def summarize(rows: list[dict]) -> dict[str, dict[str, float]]:
    """Per metric: n (files with a value), mean, std (ddof=1), median, min, max; NaN values skipped."""
    summary = {}
    for name in metric_columns(rows):
        values = np.array([row.get(name, math.nan) for row in rows], dtype=np.float64)
        values = values[np.isfinite(values)]
        if len(values) == 0:
            summary[name] = {"n": 0, **{k: math.nan for k in ("mean", "std", "median", "min", "max")}}
            continue
        summary[name] = {
            "n": len(values),
            "mean": float(values.mean()),
            "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
            "median": float(np.median(values)),
            "min": float(values.min()),
            "max": float(values.max()),
        }
    return summary


def fmt(value: float, digits: int = 3) -> str:
    """A table cell: fixed digits, ``-`` for NaN."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, int):
        return str(value)
    return f"{value:.{digits}f}"


def markdown_table(header: list[str], body: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    return "\n".join(lines)


def summary_markdown(rows: list[dict], title: str = "") -> str:
    """A markdown table with one line per metric: n, mean, std, median, min, max."""
    stats = summarize(rows)
    body = [
        [metric_label(name), str(s["n"])] + [fmt(s[k]) for k in ("mean", "std", "median", "min", "max")]
        for name, s in stats.items()
    ]
    table = markdown_table(["metric", "n", "mean", "std", "median", "min", "max"], body)
    return f"### {title}\n\n{table}\n" if title else table + "\n"


def means_markdown(tables: dict[str, list[dict]]) -> str:
    """Systems side by side: one row per system, one column per metric, cells ``mean ± std``."""
    names: list[str] = []
    for rows in tables.values():
        names += [n for n in metric_columns(rows) if n not in names]
    body = []
    for system, rows in tables.items():
        stats = summarize(rows)
        cells = [
            f"{fmt(stats[n]['mean'])} ± {fmt(stats[n]['std'])}" if stats.get(n, {}).get("n") else "-"
            for n in names
        ]
        body.append([system, str(len(rows))] + cells)
    return markdown_table(["system", "files"] + [metric_label(n) for n in names], body) + "\n"


def spectrogram_figure(path: str, signals: list[tuple[str, np.ndarray, int]], title: str = "") -> None:
    """Save stacked log-power spectrograms (e.g. degraded / enhanced / clean) as one PNG.

    Parameters
    ----------
    path : str
        The PNG to write.
    signals : list of (label, wav (T,), sample_rate)
        One panel each, top to bottom, sharing a frequency axis up to the highest Nyquist frequency.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import scipy.signal

    top = max(rate for _, _, rate in signals) / 2
    figure, axes = plt.subplots(len(signals), 1, figsize=(10, 2.6 * len(signals)), sharex=True, squeeze=False)
    for axis, (label, wav, rate) in zip(axes[:, 0], signals):
        segment = min(SPECTROGRAM_N_FFT, len(wav))
        freqs, times, power = scipy.signal.spectrogram(
            np.asarray(wav, np.float64), fs=rate, nperseg=segment, noverlap=segment * 3 // 4
        )
        level = 10 * np.log10(np.maximum(power, 10 ** (SPECTROGRAM_FLOOR_DB / 10)))
        mesh = axis.pcolormesh(
            times, freqs / 1000, level, shading="auto", cmap="magma", vmin=SPECTROGRAM_FLOOR_DB
        )
        axis.set_ylim(0, top / 1000)
        axis.set_ylabel("kHz")
        axis.set_title(f"{label} ({rate} Hz)", fontsize=9)
        figure.colorbar(mesh, ax=axis, label="dB")
    axes[-1, 0].set_xlabel("time (s)")
    if title:
        figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    try:
        with atomic_path(path) as temporary:
            figure.savefig(temporary, dpi=100, format="png")
    finally:
        plt.close(figure)
