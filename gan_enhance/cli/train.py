"""``gan-enhance train``: train a model from a config in ``conf/`` (under ``torchrun`` for several GPUs)."""

from __future__ import annotations

import os
import shlex
import sys

from gan_enhance.cli._args import flag_parser, help_parser

HELP = "train a generator/discriminator pair from a conf/ YAML file (argbind keys, --help lists them)"

DESCRIPTION = """\
Train from a YAML config (--args.load conf/stage1_16k.yml) with any key overridden on the command line as
--Key value, e.g. --Trainer.max_steps 1000 --name my_run --HiFiPlusPlus.upsample_channels 64 (lists:
--Key "[8, 8, 2, 2]" or --Key 8 8 2 2; values are YAML). Every config section is bound with argbind under
its prefix, as listed below; --generator/Optimizer.lr and --discriminator/Optimizer.lr (likewise
Scheduler) set one side. Dict-valued keys (lambdas) merge at every layer ($include, the including file,
the command line): --lambdas.mel/loss 20 sets one weight and keeps the others (0 turns a loss off);
--lambdas "{mel/loss: 20}" does the same; a dict with the entry $replace: true replaces instead of
merging (single quotes keep the shell off the $: --lambdas '{$replace: true, mel/loss: 20}').
$include is recursive (a path is looked for next to the including file, then in the working directory,
then in the project's checkout, so conf/ and recipes/ configs include by their repository path). Every
key is checked before training: all keys nothing reads are reported at once, each with the closest known
key. The resolved config is written to <runs_dir>/<name>/config.yml; --resume continues that run from
checkpoints/latest. Several GPUs or nodes: torchrun --nproc_per_node N -m gan_enhance train ...
"""

USAGE = (
    "gan-enhance train --args.load CONFIG [--Section.key VALUE ...] [--args.save PATH] [--args.debug] "
    "[--check] [--resume]"
)
METAVARS = {"args.load": "CONFIG", "args.save": "PATH", "args.debug": "LEVEL"}
FLAGS = {
    "args.load": "YAML config to train from (conf/<stage>.yml); $include is recursive",
    "args.save": "write the merged config (files and command line) to this path and exit",
    "args.debug": "print, through argbind, every config section with the values it receives",
}


def main(argv: list[str]) -> int:
    arguments = flag_parser("train", DESCRIPTION, FLAGS)
    arguments.usage = USAGE
    arguments.add_argument("--resume", action="store_true", help="continue the run from checkpoints/latest")
    arguments.add_argument("--check", action="store_true", help="check the config and exit without training")
    options, rest = arguments.parse_known_args(argv)
    if options.help:
        parser = help_parser(arguments.prog, DESCRIPTION)
        parser.usage = USAGE
        for action in parser._actions:  # argbind's own wording of its three flags, replaced by ours
            action.help = FLAGS.get(action.dest, action.help)
            action.metavar = METAVARS.get(action.dest, action.metavar)
        parser.add_argument("--resume", action="store_true", help="continue the run from checkpoints/latest")
        parser.add_argument("--check", action="store_true", help="check the config and exit without training")
        parser.print_help()
        return 0
    if not options.load:
        arguments.error("the following arguments are required: --args.load")

    import logging

    import yaml

    from gan_enhance.atomic import write_text
    from gan_enhance.train.builders import read_experiment
    from gan_enhance.train.config import DEBUG_KEY, load_config, merge_config, parse_overrides
    from gan_enhance.train.preflight import check_run

    rank = int(os.environ.get("RANK", "0"))
    logging.basicConfig(
        level=logging.INFO if rank == 0 else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%Y-%m-%d %H:%M:%S",
    )
    config = merge_config(load_config(options.load), parse_overrides(rest))
    if options.save:
        write_text(options.save, yaml.safe_dump(config, sort_keys=True))
        return 0
    debug = {DEBUG_KEY: True} if options.debug and rank == 0 else {}
    if options.check:
        experiment = read_experiment({**config, **debug})
        check_run(experiment)
        print(f"{options.load}: config OK (generator {experiment.generator}, run {experiment.name})")
        return 0
    experiment = read_experiment(config)

    from gan_enhance.train.run import CONFIG_FILE, run_training

    result = run_training({**config, **debug}, resume=options.resume)
    if result.interrupted:
        if rank == 0:
            saved = os.path.join(experiment.runs_dir, experiment.name, CONFIG_FILE)
            print(
                f"stopped by signal {result.interrupted} at step {result.step}; checkpoints/latest is "
                f"written; continue with: gan-enhance train --args.load {shlex.quote(saved)} --resume",
                file=sys.stderr,
            )
        # 128 + signal, as a shell reports a process the signal ended: scripts see the stage unfinished.
        return 128 + result.interrupted
    if rank == 0:
        best = "" if result.best is None else f", best {experiment.trainer.best_metric} {result.best:.4g}"
        reason = " (early stop)" if result.stopped_early else ""
        print(f"finished at step {result.step}{reason}{best}")
    return 0
