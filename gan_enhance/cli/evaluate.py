"""``gan-enhance evaluate``: score enhanced audio against clean references."""

from __future__ import annotations

import sys

from gan_enhance.cli._args import parser as make_parser
from gan_enhance.errors import ConfigError

HELP = "score enhanced files (or systems run over degraded files) against clean ones; CSV + markdown"

EPILOG = """\
examples:
  # an enhanced folder against the clean one (files matched by relative path without extension)
  gan-enhance evaluate --clean data/clean --enhanced ours=out/enhanced --degraded data/noisy --out results
  # baselines and an exported model run over a degraded folder first
  gan-enhance evaluate --clean data/clean --degraded data/noisy \\
      --system identity --system spectral-gating --system ours=model:exports/denoise --out results
  # degrade the clean folder on the fly with a seeded task preset
  gan-enhance evaluate --clean data/clean --task denoise --seed 0 --system identity --out results

systems: identity | spectral-gating[:stationary] | resample[:RATE] | model:DIR, optionally NAME=SYSTEM
quality plug-ins: dnsmos:PATH/sig_bak_ovr.onnx[,personalized] | utmos:PATH/model.pt (local files only)
"""


def build_parser():
    from argparse import RawDescriptionHelpFormatter

    parser = make_parser("evaluate", HELP)
    parser.formatter_class = RawDescriptionHelpFormatter
    parser.epilog = EPILOG
    parser.add_argument("--clean", required=True, help="folder of clean reference files")
    parser.add_argument(
        "--out", required=True, help="folder for <system>.csv, summary.md, spectrograms/, audio/"
    )
    parser.add_argument(
        "--enhanced", action="append", default=[], metavar="[NAME=]DIR", help="an enhanced folder"
    )
    parser.add_argument(
        "--degraded", default="", help="folder of degraded inputs (for systems, cutoff, figures)"
    )
    parser.add_argument("--system", action="append", default=[], metavar="SPEC", help="a system to run")
    parser.add_argument("--task", default="", help="degrade the clean files on the fly with this task preset")
    parser.add_argument("--seed", type=int, default=0, help="seed of the on-the-fly degradation")
    parser.add_argument(
        "--noise-dir", action="append", default=[], help="noise folder for --task (default synthetic)"
    )
    parser.add_argument(
        "--rir-dir", action="append", default=[], help="impulse responses for --task (default synthetic)"
    )
    parser.add_argument("--metrics", default="", help="comma-separated metric names")
    parser.add_argument(
        "--quality", action="append", default=[], metavar="NAME:PATH", help="no-reference plug-in"
    )
    parser.add_argument("--quality-module", action="append", default=[], help="module registering plug-ins")
    parser.add_argument(
        "--spectrograms", type=int, default=3, help="number of files with a spectrogram figure"
    )
    parser.add_argument("--no-save-audio", action="store_true", help="do not write the systems' outputs")
    parser.add_argument(
        "--cutoff-hz", type=float, default=0.0, help="input band limit (0: estimate per file)"
    )
    parser.add_argument("--jobs", type=int, default=1, help="processes computing the metrics")
    parser.add_argument("--device", default="cpu", help="where models run")
    parser.add_argument("--chunk-seconds", type=float, default=0.0, help="model chunk length (0: default)")
    return parser


def _named_folders(values: list[str]) -> dict[str, str]:
    import os

    from gan_enhance.evaluate.systems import check_system_name

    folders = {}
    for value in values:
        name, sep, folder = value.partition("=")
        if not sep:
            name, folder = os.path.basename(os.path.abspath(value)), value
        check_system_name(name, value)
        if name in folders:
            raise ConfigError(f"two enhanced folders are named '{name}'; name them with NAME=DIR")
        folders[name] = folder
    return folders


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    if not args.enhanced and not args.system:
        raise ConfigError("nothing to score: give --enhanced DIR and/or --system SPEC")
    if args.system and not (args.degraded or args.task):
        raise ConfigError("--system needs inputs to run on: give --degraded DIR or --task PRESET")
    if args.degraded and args.task:
        raise ConfigError("give either --degraded or --task, not both")
    if args.task and args.enhanced:
        raise ConfigError("--enhanced folders cannot be paired with inputs degraded on the fly (--task)")

    from gan_enhance.evaluate import runner
    from gan_enhance.evaluate.metrics import DEFAULT_METRICS, check_metric_names
    from gan_enhance.evaluate.quality import build_quality_model
    from gan_enhance.evaluate.systems import build_system

    metrics = check_metric_names([m.strip() for m in args.metrics.split(",") if m.strip()] or DEFAULT_METRICS)
    quality = [build_quality_model(spec, args.quality_module) for spec in args.quality]
    reference_rate = _reference_rate(runner.matched_keys(args.clean, [])[0].values())
    systems = [build_system(spec, reference_rate, args.device, args.chunk_seconds) for spec in args.system]
    names = [s.name for s in systems] + list(_named_folders(args.enhanced))
    if len(set(names)) != len(names):
        raise ConfigError(f"system names must differ, got {', '.join(names)}; name them with NAME=SPEC")
    if args.task:
        from gan_enhance.evaluate.tasks import task_degrader

        items = runner.degraded_items(
            args.clean, task_degrader(args.task, args.seed, args.noise_dir, args.rir_dir)
        )
    else:
        items = runner.folder_items(args.clean, args.degraded, _named_folders(args.enhanced))
    failed = []

    def report_error(key: str, message: str) -> None:
        # One line per file that cannot be scored (the message names it); the other files go on.
        failed.append(key)
        print(f"gan-enhance evaluate: error: {message}", file=sys.stderr, flush=True)

    tables = runner.evaluate_items(
        items,
        systems,
        args.out,
        metrics=metrics,
        quality_models=quality,
        spectrograms=args.spectrograms,
        save_audio=not args.no_save_audio,
        cutoff_hz=args.cutoff_hz,
        jobs=args.jobs,
        progress=lambda key: print(f"scored {key}", file=sys.stderr),
        on_error=report_error,
    )
    print(runner.summary_text(tables))
    print(
        f"wrote {', '.join(f'{n}.csv' for n in tables)} and {runner.SUMMARY_FILE} to {args.out}",
        file=sys.stderr,
    )
    if failed:
        print(f"gan-enhance evaluate: {len(failed)} file(s) could not be scored", file=sys.stderr)
    return 1 if failed else 0


def _reference_rate(clean_paths) -> int:
    """The rate of the first readable clean file (the ``resample`` system's default target); 0 if none
    is readable (each unreadable file is then reported when its turn comes)."""
    from gan_enhance.audio import audio_info
    from gan_enhance.errors import AudioFileError

    for path in clean_paths:
        try:
            return audio_info(path).sample_rate
        except AudioFileError:
            continue
    return 0
