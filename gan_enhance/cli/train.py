"""``gan-enhance train``: train a model from a config in ``conf/`` (under ``torchrun`` for several GPUs)."""

from __future__ import annotations

import os
import sys

from gan_enhance.cli._args import parser

HELP = "train a generator/discriminator pair from a conf/ YAML file (argbind style keys)"

DESCRIPTION = """\
Train from a YAML config (argbind style: --args.load conf/stage1_16k.yml) with any key overridden on the
command line as --Key value, e.g. --Trainer.max_steps 1000 --name my_run
--HiFiPlusPlus.upsample_channels 64 (lists: --Key "[8, 8, 2, 2]" or --Key 8 8 2 2). Dict-valued keys
(lambdas) merge at every layer ($include, the including file, the command line): --lambdas "{mel/loss: 20}"
changes that weight and keeps the others (0 turns a loss off); --lambdas.mel/loss 20 sets one entry
without quoting; a dict with the entry $replace: true replaces instead of merging (single quotes keep
the shell off the $: --lambdas '{$replace: true, mel/loss: 20}'). Every key is checked before training: a key nothing reads is an error. --args.save writes the merged config and exits. The
resolved config is written to <runs_dir>/<name>/config.yml; --resume continues that run from
checkpoints/latest. Several GPUs or nodes: torchrun --nproc_per_node N -m gan_enhance train ...
"""


def main(argv: list[str]) -> int:
    arguments = parser("train", DESCRIPTION)
    arguments.allow_abbrev = False
    arguments.add_argument("--args.load", dest="config", required=True, help="YAML config (conf/<stage>.yml)")
    arguments.add_argument("--resume", action="store_true", help="continue the run from checkpoints/latest")
    arguments.add_argument(
        "--args.save", dest="save", default="", help="write the merged config (with overrides) here and exit"
    )
    arguments.add_argument("--check", action="store_true", help="check the config and exit without training")
    options, rest = arguments.parse_known_args(argv)

    import logging

    import yaml

    from gan_enhance.train.builders import read_experiment
    from gan_enhance.train.config import load_config, merge_config, parse_overrides
    from gan_enhance.train.preflight import check_run

    rank = int(os.environ.get("RANK", "0"))
    logging.basicConfig(
        level=logging.INFO if rank == 0 else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%Y-%m-%d %H:%M:%S",
    )
    config = merge_config(load_config(options.config), parse_overrides(rest))
    if options.save:
        with open(options.save, "w") as handle:
            yaml.safe_dump(config, handle, sort_keys=True)
        return 0
    experiment = read_experiment(config)
    if options.check:
        check_run(experiment)
        print(f"{options.config}: config OK (generator {experiment.generator}, run {experiment.name})")
        return 0

    from gan_enhance.train.run import run_training

    result = run_training(config, resume=options.resume)
    if result.interrupted:
        if rank == 0:
            print(
                f"stopped by signal {result.interrupted} at step {result.step}; checkpoints/latest is "
                "written; continue with --resume",
                file=sys.stderr,
            )
        # 128 + signal, as a shell reports a process the signal ended: scripts see the stage unfinished.
        return 128 + result.interrupted
    if rank == 0:
        best = "" if result.best is None else f", best {experiment.trainer.best_metric} {result.best:.4g}"
        reason = " (early stop)" if result.stopped_early else ""
        print(f"finished at step {result.step}{reason}{best}")
    return 0
