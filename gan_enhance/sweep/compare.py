"""Paired comparison of a sweep's top trials on the fixed validation set, so "best" is not noise.

Each of the top trials' ``best`` generator enhances every item of the validation set the trials were
scored on (the same seeded, degraded examples), each output is scored per item against its clean
reference (:func:`gan_enhance.evaluate.metrics.compute_metrics`), and every trial is compared with the
best one by :func:`gan_enhance.evaluate.compare.compare_systems` (bootstrap CI, paired t-test and
Wilcoxon, Holm-corrected): a ``tie`` row says the validation set cannot tell the two apart.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from gan_enhance.atomic import write_text
from gan_enhance.sweep.objective import trial_config, trial_run_name
from gan_enhance.sweep.space import parse_space, values_of
from gan_enhance.sweep.study import SweepSettings

log = logging.getLogger("gan_enhance.sweep")
COMPARE_DIR = "compare"
DEFAULT_METRICS = ("si_sdr", "mel_distance", "pesq_wb", "stoi")


def top_trials(study, settings: SweepSettings, count: int) -> list:
    """The ``count`` best complete trials, best first."""
    from optuna.trial import TrialState

    complete = [
        t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if t.value is not None
    ]
    return sorted(complete, key=lambda t: t.value, reverse=settings.direction == "maximize")[:count]


def score_trial(run_dir: Path, dataset, out_sample_rate: int, metrics: list[str], name: str) -> list[dict]:
    """Per-item scores of a run's ``best`` generator on ``dataset`` (items ``{"x": (1, T_in), "y": (1, T)}``)."""
    import torch

    from gan_enhance.checkpoint_io import find_checkpoint, generator_from_checkpoint
    from gan_enhance.evaluate.metrics import compute_metrics

    generator, _ = generator_from_checkpoint(find_checkpoint(run_dir, "best"))
    rows = []
    with torch.inference_mode():
        for index in range(len(dataset)):
            item = dataset[index]
            y_hat = generator(item["x"][None]).float()[0]
            scores = compute_metrics(y_hat, item["y"], out_sample_rate, list(metrics))
            rows.append({"file": f"val_{index:04d}", "system": name, **scores})
    return rows


def validation_set(config: dict[str, Any]):
    """The fixed validation dataset of a run config and its output rate (as the trainer builds it)."""
    from gan_enhance.train.builders import read_experiment
    from gan_enhance.train.data import build_datasets
    from gan_enhance.train.distributed import DistInfo

    experiment = read_experiment(config)
    _, val = build_datasets(experiment.data, DistInfo())
    return val, experiment.out_sample_rate


def compare_top(
    study,
    settings: SweepSettings,
    sweep_dir: str | Path,
    top: int = 3,
    metrics: list[str] | tuple[str, ...] = DEFAULT_METRICS,
    alpha: float = 0.05,
) -> str:
    """Score the top trials and compare each with the best; writes ``compare/`` and returns the markdown
    (a one-line note when fewer than two trials completed)."""
    from gan_enhance.evaluate.compare import compare_systems, comparison_markdown
    from gan_enhance.evaluate.metrics import check_metric_names
    from gan_enhance.evaluate.report import write_scores_csv

    check_metric_names(list(metrics))
    trials = top_trials(study, settings, top)
    if len(trials) < 2:
        return "Fewer than two trials completed: nothing to compare.\n"
    sweep_dir = Path(sweep_dir)
    space = parse_space(settings.space)
    tables: dict[str, list[dict]] = {}
    dataset = None
    for trial in trials:
        run_dir = Path(trial.user_attrs.get("run_dir") or sweep_dir / "trials" / trial_run_name(trial.number))
        if dataset is None:  # every trial validates on the same set; build it once, from the best trial
            config = trial_config(settings, values_of(trial.params, space), sweep_dir, run_dir.name)
            dataset, rate = validation_set(config)
        name = f"trial_{trial.number}"
        log.info("scoring %s (%s) on %d validation items", name, run_dir, len(dataset))
        tables[name] = score_trial(run_dir, dataset, rate, list(metrics), name)
        write_scores_csv(str(sweep_dir / COMPARE_DIR / f"{name}.csv"), tables[name])
    results = compare_systems(tables, list(metrics), alpha=alpha)
    text = (
        f"Top {len(trials)} trials, each against the best ({next(iter(tables))}), on the {len(dataset)} "
        f"validation items.\n\n" + comparison_markdown(results, alpha)
    )
    write_text(sweep_dir / COMPARE_DIR / "comparison.md", text)
    return text
