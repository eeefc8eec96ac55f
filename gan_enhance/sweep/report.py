"""A sweep's results in its folder: the trials table, Optuna's plots, and the best trial's config.

- ``trials.csv`` / ``trials.md``: one row per trial (number, state, objective, steps, params, run folder);
- ``plots/<name>.html`` (plotly, interactive; ``plots/plotly.min.js`` beside them, so they open offline)
  and ``plots/<name>.png`` (matplotlib) for the optimisation history, the parameter importances, the
  parallel coordinates and the validation curves (intermediate values);
- ``best_config.yml``: the base config with the best trial's values, ready for
  ``gan-enhance train --args.load <sweep>/best_config.yml``;
- ``summary.md``: all of the above in one page (plus the paired comparison when it was run).
"""

from __future__ import annotations

import csv
import io
import math
import warnings
from pathlib import Path
from typing import Any

import yaml

from gan_enhance.atomic import atomic_path, write_text
from gan_enhance.sweep.objective import best_mode
from gan_enhance.sweep.space import parse_space, values_of
from gan_enhance.sweep.study import SweepSettings

PLOTS_DIR = "plots"
# name -> the optuna.visualization function (the same name in optuna.visualization.matplotlib).
PLOTS = {
    "optimization_history": "plot_optimization_history",
    "param_importances": "plot_param_importances",
    "parallel_coordinate": "plot_parallel_coordinate",
    "intermediate_values": "plot_intermediate_values",
}
BEST_CONFIG = "best_config.yml"


def trial_rows(study, settings: SweepSettings) -> list[dict[str, Any]]:
    """One row per trial: number, state, value, steps, duration, retry origin, run folder, params."""
    space = parse_space(settings.space)
    rows = []
    for trial in study.get_trials(deepcopy=False):
        duration = trial.duration.total_seconds() if trial.duration is not None else math.nan
        row = {
            "trial": trial.number,
            "state": trial.state.name.lower() + (" (diverged)" if "failure" in trial.user_attrs else ""),
            settings.metric: trial.value if trial.value is not None else _last_value(trial),
            "steps": trial.user_attrs.get("steps", max(trial.intermediate_values, default="")),
            "seconds": round(duration, 1) if math.isfinite(duration) else "",
            "retry_of": trial.system_attrs.get("failed_trial", ""),
            "run": trial.user_attrs.get("run_dir", ""),
        }
        row.update({f"param {k}": _cell(v) for k, v in values_of(trial.params, space).items()})
        rows.append(row)
    return rows


def _last_value(trial) -> float | str:
    """A pruned or failed trial's last reported value (the value it was judged on)."""
    if not trial.intermediate_values:
        return ""
    return trial.intermediate_values[max(trial.intermediate_values)]


def _cell(value: Any) -> Any:
    if isinstance(value, float):
        return float(f"{value:.6g}")
    return value if isinstance(value, int | str) else yaml.safe_dump(value, default_flow_style=True).strip()


def trials_markdown(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "No trials yet.\n"
    header = list(dict.fromkeys(key for row in rows for key in row))
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for row in rows:
        cells = []
        for key in header:
            value = row.get(key, "")
            cells.append(f"{value:.4g}" if isinstance(value, float) else str(value))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_trials_table(rows: list[dict[str, Any]], folder: Path) -> None:
    header = list(dict.fromkeys(key for row in rows for key in row))
    stream = io.StringIO()
    writer = csv.DictWriter(stream, fieldnames=header)
    writer.writeheader()
    writer.writerows(rows)
    write_text(folder / "trials.csv", stream.getvalue())
    write_text(folder / "trials.md", trials_markdown(rows))


def write_plots(study, folder: Path) -> dict[str, str]:
    """Every plot as HTML and PNG under ``folder/plots``; returns ``name -> "ok"`` or why it was skipped."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna.visualization as plotly_plots
    import optuna.visualization.matplotlib as mpl_plots
    from plotly.offline import get_plotlyjs

    plots = folder / PLOTS_DIR
    write_text(plots / "plotly.min.js", get_plotlyjs())
    status = {}
    for name, function in PLOTS.items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # optuna's ExperimentalWarning for the matplotlib plots
                figure = getattr(plotly_plots, function)(study)
                axes = getattr(mpl_plots, function)(study)
        except (ValueError, RuntimeError, ZeroDivisionError) as error:
            status[name] = f"skipped: {str(error).splitlines()[0]}"
            continue
        write_text(plots / f"{name}.html", figure.to_html(include_plotlyjs="directory"))
        axis = axes.flat[0] if hasattr(axes, "flat") else axes
        mpl_figure = axis.figure
        mpl_figure.set_size_inches(9, 5)
        mpl_figure.tight_layout()
        with atomic_path(plots / f"{name}.png") as temporary:
            mpl_figure.savefig(temporary, dpi=110)
        plt.close(mpl_figure)
        status[name] = "ok"
    return status


def best_config(study, settings: SweepSettings, name: str) -> tuple[dict[str, Any], Any] | None:
    """The base config with the best trial's values (and ``best`` kept by the sweep's metric), and that
    trial; None before any trial completed."""
    from optuna.trial import TrialState

    from gan_enhance.train.config import merge_config

    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        return None
    trial = study.best_trial
    config = merge_config(settings.base, values_of(trial.params, parse_space(settings.space)))
    config.update(
        {
            "name": f"{name}_best",
            "Trainer.best_metric": settings.metric,
            "Trainer.best_mode": best_mode(settings.direction),
        }
    )
    return config, trial


def write_report(study, settings: SweepSettings, folder: str | Path, comparison: str = "") -> str:
    """Write the table, plots, best config and ``summary.md`` into ``folder``; returns the summary text."""
    folder = Path(folder)
    rows = trial_rows(study, settings)
    write_trials_table(rows, folder)
    plots = write_plots(study, folder)
    lines = [
        f"# Sweep {study.study_name}",
        "",
        f"Objective: {settings.direction} `{settings.metric}` (best validation value within "
        f"{settings.max_steps} steps); pruner {settings.pruner}, sampler {settings.sampler} (seed {settings.seed}).",
        "",
        trials_markdown(rows),
    ]
    best = best_config(study, settings, study.study_name)
    if best is not None:
        config, trial = best
        path = folder / BEST_CONFIG
        header = (
            f"# Sweep {study.study_name}: trial {trial.number}, {settings.metric} = {trial.value:.6g}.\n"
            f"# gan-enhance train --args.load {path}\n"
        )
        write_text(path, header + yaml.safe_dump(config, sort_keys=True))
        chosen = ", ".join(
            f"`{k}` = {_cell(v)}" for k, v in values_of(trial.params, parse_space(settings.space)).items()
        )
        lines += [f"Best: trial {trial.number}, {settings.metric} = {trial.value:.6g}: {chosen}.", ""]
        lines += [f"Its config, ready for training: `{path}`.", ""]
    else:
        lines += ["No trial has completed yet.", ""]
    lines += ["## Plots", ""]
    for name, state in plots.items():
        entry = f"{PLOTS_DIR}/{name}.png, {PLOTS_DIR}/{name}.html" if state == "ok" else state
        lines.append(f"- {name}: {entry}")
    if comparison:
        lines += ["", "## Paired comparison of the top trials", "", comparison]
    text = "\n".join(lines) + "\n"
    write_text(folder / "summary.md", text)
    return text
