"""``gan-enhance evaluate``: score enhanced audio against clean references, or recordings without one."""

from __future__ import annotations

import sys

from gan_enhance.cli._args import DescriptionDefaultsHelpFormatter, number
from gan_enhance.cli._args import parser as make_parser
from gan_enhance.errors import ConfigError

HELP = "score enhanced files (or systems run over degraded files) against clean ones, or recordings alone"

DESCRIPTION = """\
Score audio and write one CSV table per system (a row per file), summary.md, spectrogram figures and
(for systems run here) their audio.

With clean references (--clean) every metric is available: SI-SDR, PESQ, STOI, log-spectral and mel
distances, clipping, loudness, and DNSMOS. Without them (--no-reference), for recordings that have no
clean version, only the no-reference DNSMOS metrics: dnsmos_sig (speech), dnsmos_bak (background
noise), dnsmos_ovrl (overall), dnsmos_p808. DNSMOS runs Microsoft's models shipped inside the speechmos
package (no download), on audio resampled to 16 kHz, averaged over 9.01 s windows every second.

Every PATH may be a folder or a single audio file. Files in folders are matched by relative path
without extension (clean/a/b.wav <-> enhanced/a/b.flac); a single file is matched to a single
reference file whatever its name."""

EPILOG = """\
examples:
  # an enhanced folder against the clean one
  gan-enhance evaluate --clean data/clean --enhanced ours=out/enhanced --degraded data/noisy --out results
  # baselines and an exported model run over a degraded folder first
  gan-enhance evaluate --clean data/clean --degraded data/noisy \\
      --system identity --system spectral-gating --system ours=model:exports/denoise --out results
  # degrade the clean folder on the fly with a seeded task preset
  gan-enhance evaluate --clean data/clean --task denoise --seed 0 --system identity --out results
  # one file against its reference
  gan-enhance evaluate --clean ref.wav --enhanced ours=enhanced.wav --out results
  # field recordings without clean versions: DNSMOS of the recordings and of a model's outputs
  gan-enhance evaluate --no-reference field=recordings/ --system ours=model:exports/denoise --out results

systems (--system): identity | spectral-gating[:stationary] | resample[:RATE] | model:DIR,
  each optionally NAME=SYSTEM
quality plug-ins (--quality): utmos:PATH/model.pt, or NAME:PATH from --quality-module (local files only)
"""


def build_parser():
    parser = make_parser("evaluate", DESCRIPTION)
    parser.formatter_class = DescriptionDefaultsHelpFormatter
    parser.epilog = EPILOG
    inputs = parser.add_argument_group("what to score")
    inputs.add_argument(
        "--clean",
        default="",
        metavar="PATH",
        help="clean reference folder (or file); without references use --no-reference",
    )
    inputs.add_argument(
        "--no-reference",
        default="",
        metavar="[NAME=]PATH",
        help="recordings with no clean version, scored as they are (table NAME.csv, default NAME: the "
        "folder's or file's name) and given to --system; no-reference metrics (DNSMOS) only",
    )
    inputs.add_argument(
        "--enhanced",
        action="append",
        default=[],
        metavar="[NAME=]PATH",
        help="enhanced folder (or file) to score, matched to the clean files or recordings; repeatable "
        "(default NAME: the folder's or file's name)",
    )
    inputs.add_argument(
        "--degraded",
        default="",
        metavar="PATH",
        help="degraded inputs matched to the clean files: run through --system, estimate the input's "
        "band limit, shown in the figures",
    )
    inputs.add_argument(
        "--system",
        action="append",
        default=[],
        metavar="SPEC",
        help="a system run over the degraded inputs (or the recordings); repeatable; see 'systems' below",
    )
    inputs.add_argument(
        "--task",
        default="",
        metavar="PRESET",
        help="degrade the clean files on the fly with this task preset (e.g. denoise; the presets are "
        "those of gan-enhance degrade) instead of --degraded",
    )
    inputs.add_argument("--seed", type=int, default=0, help="seed of the on-the-fly degradation (--task)")
    inputs.add_argument(
        "--noise-dir",
        action="append",
        default=[],
        metavar="DIR",
        help="noise folder for --task; repeatable (default: synthetic noise)",
    )
    inputs.add_argument(
        "--rir-dir",
        action="append",
        default=[],
        metavar="DIR",
        help="room impulse responses for --task; repeatable (default: synthetic rooms)",
    )
    scoring = parser.add_argument_group("how to score")
    scoring.add_argument(
        "--metrics",
        default="",
        metavar="NAMES",
        help="comma-separated metric names (default: all of si_sdr, pesq_wb, pesq_nb, stoi, estoi, lsd, "
        "lsd_low, lsd_high, mel_distance, stft_distance, clip_rate, loudness_diff, dnsmos_sig, "
        "dnsmos_bak, dnsmos_ovrl, dnsmos_p808; with --no-reference the four dnsmos_* ones)",
    )
    scoring.add_argument(
        "--quality",
        action="append",
        default=[],
        metavar="NAME:PATH",
        help="a no-reference quality plug-in and its local model file, e.g. utmos:models/utmos.pt; "
        "repeatable",
    )
    scoring.add_argument(
        "--quality-module",
        action="append",
        default=[],
        metavar="MODULE",
        help="Python module to import first, registering more --quality plug-ins; repeatable",
    )
    scoring.add_argument(
        "--cutoff-hz",
        type=float,
        default=0.0,
        help="the inputs' band limit in Hz for lsd_low and lsd_high; 0 estimates it per degraded file",
    )
    scoring.add_argument(
        "--jobs", type=number(int, 1), default=1, help="processes computing the metrics (1: in this process)"
    )
    scoring.add_argument("--device", default="cpu", help="where model systems run: cpu or cuda")
    scoring.add_argument(
        "--chunk-seconds",
        type=float,
        default=0.0,
        help="length of the chunks a model system enhances at a time; 0 uses the enhancer's default",
    )
    outputs = parser.add_argument_group("what to write")
    outputs.add_argument(
        "--out", required=True, metavar="DIR", help="folder for NAME.csv, summary.md, spectrograms/, audio/"
    )
    outputs.add_argument(
        "--spectrograms",
        type=int,
        default=3,
        help="number of files (the first ones) with a spectrogram figure",
    )
    outputs.add_argument(
        "--no-save-audio",
        action="store_true",
        help="do not write the systems' outputs (and degraded inputs made with --task) under audio/",
    )
    return parser


def _default_name(path: str) -> str:
    import os

    base = os.path.basename(os.path.abspath(path))
    return os.path.splitext(base)[0] if os.path.isfile(path) else base


def _named_paths(values: list[str]) -> dict[str, str]:
    """``[NAME=]PATH`` values -> name -> path (default name: the folder's name, or the file's stem)."""
    from gan_enhance.evaluate.systems import check_system_name

    named = {}
    for value in values:
        name, sep, path = value.partition("=")
        if not sep:
            name, path = _default_name(value), value
        check_system_name(name, value)
        if name in named:
            raise ConfigError(f"two inputs are named '{name}'; name them with NAME=PATH")
        named[name] = path
    return named


def _check_inputs(args) -> None:
    if bool(args.clean) == bool(args.no_reference):
        raise ConfigError("give either --clean PATH (clean references) or --no-reference PATH (recordings)")
    if args.no_reference:
        if args.degraded or args.task:
            raise ConfigError(
                "--no-reference recordings are the systems' inputs themselves: drop --degraded/--task"
            )
        return
    if not args.enhanced and not args.system:
        raise ConfigError("nothing to score: give --enhanced PATH and/or --system SPEC")
    if args.system and not (args.degraded or args.task):
        raise ConfigError("--system needs inputs to run on: give --degraded PATH or --task PRESET")
    if args.degraded and args.task:
        raise ConfigError("give either --degraded or --task, not both")
    if args.task and args.enhanced:
        raise ConfigError("--enhanced folders cannot be paired with inputs degraded on the fly (--task)")


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    _check_inputs(args)

    from gan_enhance.evaluate import runner
    from gan_enhance.evaluate.metrics import DEFAULT_METRICS, NO_REFERENCE_METRICS, check_metric_names
    from gan_enhance.evaluate.quality import build_quality_model
    from gan_enhance.evaluate.systems import build_system

    reference = bool(args.clean)
    named = [m.strip() for m in args.metrics.split(",") if m.strip()]
    metrics = check_metric_names(
        named or (DEFAULT_METRICS if reference else list(NO_REFERENCE_METRICS)), reference
    )
    quality = [build_quality_model(spec, args.quality_module) for spec in args.quality]
    enhanced = _named_paths(args.enhanced)
    recordings = _named_paths([args.no_reference]) if args.no_reference else {}
    reference_rate = _reference_rate(runner.matched_keys(args.clean, [])[0].values()) if reference else 0
    systems = [build_system(spec, reference_rate, args.device, args.chunk_seconds) for spec in args.system]
    names = [s.name for s in systems] + list(enhanced) + list(recordings)
    if len(set(names)) != len(names):
        raise ConfigError(f"system names must differ, got {', '.join(names)}; name them with NAME=SPEC")
    if recordings:
        ((name, path),) = recordings.items()
        items = runner.recording_items(path, name, enhanced)
    elif args.task:
        from gan_enhance.evaluate.tasks import task_degrader

        items = runner.degraded_items(
            args.clean, task_degrader(args.task, args.seed, args.noise_dir, args.rir_dir)
        )
    else:
        items = runner.folder_items(args.clean, args.degraded, enhanced)
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
