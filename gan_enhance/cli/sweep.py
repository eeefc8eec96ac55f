"""``gan-enhance sweep``: hyper-parameter search over any config key with Optuna (docs/sweeps.md)."""

from __future__ import annotations

import os
import sys

from gan_enhance.cli._args import parser

HELP = "hyper-parameter sweep (Optuna): trials are ordinary runs, pruned on their validation curves"

DESCRIPTION = """\
Search a base config (the YAML `train` takes, with --Key value overrides) over a search space file
(conf/sweep/lr.yml: `Optimizer.lr: {log_uniform: [1e-4, 1e-2]}`, `Trainer.batch_size: {choice: [8, 16]}`,
any config key, loss weights as lambdas.<key>). Each trial is an ordinary run folder
<out>/trials/trial_NNNN (resume, fine-tune, export it like any run), trained for Trainer.max_steps and
scored by the best validation value of --metric; the pruner stops trials whose validation curve is behind.
The study lives in --storage (default: SQLite <out>/study.db); rerunning the same command resumes it, and
`gan-enhance sweep --out DIR --worker` (or --storage postgresql://... --study NAME --worker on other
machines) adds workers that share it. A worker that dies leaves its trial to be retried, resuming from its
checkpoint; under torchrun (torchrun --nproc_per_node N -m gan_enhance sweep --out DIR --worker) every
trial trains on all N processes. At the end: <out>/summary.md (trials table, the choice), trials.csv, plots/*.png|html,
best_config.yml (ready for `gan-enhance train --args.load`), and compare/comparison.md (the top trials
compared pairwise on the validation set). --report rewrites these from the study without training.
"""


def build_parser():
    arguments = parser("sweep", DESCRIPTION)
    arguments.allow_abbrev = False
    add = arguments.add_argument
    add("--args.load", dest="config", default="", help="base config (conf/<stage>.yml); not with --worker")
    add("--space", default="", help="search space YAML (conf/sweep/*.yml); not with --worker")
    add("--out", default="", help="sweep folder (trials, study.db, reports); default exp/sweeps/<study>")
    add("--study", default="", help="study name (default: the --out folder's name)")
    add("--storage", default="", help="Optuna storage URL (default sqlite:///<out>/study.db)")
    add("--metric", default="mel/loss", help="validation metric to optimise (mel/loss, metric/sisdr, ...)")
    add("--direction", default="auto", choices=["auto", "minimize", "maximize"],
        help="auto: the metric's own (metric/pesq up, metric/mel_distance down), losses down")  # fmt: skip
    add("--trials", type=int, default=8, help="finished trials (complete or pruned) the study should reach")
    add("--pruner", default="median", choices=["median", "hyperband", "none"], help="stops trials behind")
    add("--startup-trials", type=int, default=2, help="median pruner: trials finished before any is pruned")
    add("--warmup-steps", type=int, default=0, help="median pruner: steps before a trial can be pruned")
    add("--sampler", default="tpe", choices=["tpe", "random"], help="how values are drawn")
    add("--seed", type=int, default=0, help="sampler seed")
    add("--worker", action="store_true", help="join the existing study (settings come from the storage)")
    add("--trials-here", type=int, default=0, help="stop this process after this many trials (0: no limit)")
    add("--report", action="store_true", help="only write the report from the study; train nothing")
    add("--compare-top", type=int, default=3, help="trials in the paired comparison (0: skip it)")
    add("--compare-metrics", default="si_sdr,mel_distance,pesq_wb,stoi", help="per-item metrics compared")
    add("--heartbeat", type=int, default=60, help="seconds between a running trial's heartbeats")
    add("--grace", type=int, default=0, help="seconds without heartbeat before a trial is retried (0: 2x)")
    add("--max-retry", type=int, default=3, help="times one trial may be retried")
    return arguments


def main(argv: list[str]) -> int:
    options, rest = build_parser().parse_known_args(argv)

    import logging

    from gan_enhance.errors import ConfigError
    from gan_enhance.sweep.launch import TrialChannel, follow_trials, launched, rank

    logging.basicConfig(
        level=logging.INFO if rank() == 0 else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%Y-%m-%d %H:%M:%S",
    )
    if options.worker and options.report:
        raise ConfigError("--worker runs trials and --report writes the report: give one of them")
    joining = options.worker or options.report
    if joining and (options.config or options.space or rest):
        raise ConfigError(
            "--worker/--report take the sweep's settings from its storage: drop --args.load, --space and overrides"
        )
    if not joining and not (options.config and options.space):
        raise ConfigError(
            "a new sweep needs --args.load BASE.yml and --space SPACE.yml (or --worker / --report)"
        )
    if not (options.out or options.study):
        raise ConfigError("name the sweep: --out DIR (its folder) and/or --study NAME")
    if launched():
        if not options.worker:
            raise ConfigError(
                "under torchrun, run workers: start the sweep first, then torchrun ... sweep --worker"
            )
        channel = TrialChannel()
        if rank() > 0:  # rank 0 is the Optuna worker; the others train each of its trials with it
            return follow_trials(channel)
    else:
        channel = None
    study_name = options.study or os.path.basename(os.path.normpath(options.out))
    out = options.out or os.path.join("exp", "sweeps", study_name)

    from gan_enhance.sweep.objective import TrialInterrupted
    from gan_enhance.sweep.study import load_study, open_storage, storage_url

    storage = open_storage(
        storage_url(out, options.storage), options.heartbeat, options.grace, options.max_retry
    )
    if joining:
        study, settings = load_study(storage, study_name)
    else:
        study, settings = _start(options, rest, storage, study_name)
    if options.report:
        _report(study, settings, out, options)
        return 0

    from gan_enhance.sweep.worker import run_worker

    try:
        ran = run_worker(study, settings, out, options.trials_here, channel)
    except TrialInterrupted as stop:
        print(
            f"stopped by signal {stop.signal_number}; its trial is queued again: rerun to resume",
            file=sys.stderr,
        )
        return 128 + stop.signal_number
    print(f"{ran} trial(s) ran here; the study has {len(study.trials)} trial(s)")
    if not options.worker:
        _report(study, settings, out, options)
    return 0


def _start(options, rest: list[str], storage, study_name: str):
    import yaml

    from gan_enhance.sweep.objective import check_base
    from gan_enhance.sweep.space import check_space, load_space
    from gan_enhance.sweep.study import SweepSettings, create_study, default_direction
    from gan_enhance.train.config import load_config, merge_config, parse_overrides

    base = merge_config(load_config(options.config), parse_overrides(rest))
    direction = default_direction(options.metric) if options.direction == "auto" else options.direction
    check_base(base, options.metric, direction)
    space = load_space(options.space)
    check_space(space, base, options.space)
    with open(options.space, encoding="utf-8") as handle:
        raw_space = yaml.safe_load(handle)
    settings = SweepSettings(
        base=base,
        space=raw_space,
        metric=options.metric,
        direction=direction,
        trials=options.trials,
        pruner=options.pruner,
        startup_trials=options.startup_trials,
        warmup_steps=options.warmup_steps,
        sampler=options.sampler,
        seed=options.seed,
    )
    print(
        f"sweep {study_name}: {direction} {options.metric} over {', '.join(d.key for d in space)}; {options.trials} trials"
    )
    return create_study(settings, storage, study_name), settings


def _report(study, settings, out: str, options) -> None:
    from gan_enhance.sweep.compare import compare_top
    from gan_enhance.sweep.report import write_report

    comparison = ""
    if options.compare_top >= 2:
        metrics = [m.strip() for m in options.compare_metrics.split(",") if m.strip()]
        comparison = compare_top(study, settings, out, options.compare_top, metrics)
    print(write_report(study, settings, out, comparison))
