"""``gan-enhance listen``: build a blind MUSHRA + A/B listening-test page that runs from disk, and the
key file (kept by the experimenter) that says which system each stimulus is."""

from __future__ import annotations

import math
import os

from gan_enhance.cli._args import parser as make_parser
from gan_enhance.errors import ConfigError

HELP = "build a blind, self-contained MUSHRA and A/B listening-test page (open index.html, no server)"


def build_parser():
    parser = make_parser("listen", HELP)
    parser.add_argument("--reference", required=True, help="folder of clean reference files")
    parser.add_argument(
        "--system",
        action="append",
        default=[],
        required=True,
        metavar="[NAME=]DIR",
        help="a folder of a system's outputs (e.g. evaluate's audio/<system>); repeat per system",
    )
    parser.add_argument(
        "--out", required=True, help="folder served to listeners: index.html and its audio, nothing else"
    )
    parser.add_argument(
        "--key",
        default="",
        help="where the key (which system each stimulus is) goes; default OUT-key.json beside OUT, "
        "never inside it: keep it away from listeners",
    )
    parser.add_argument("--trials", type=int, default=0, help="number of items (0: all shared items)")
    parser.add_argument(
        "--seed",
        type=int,
        default=None,
        help="seed of item choice, orders, A/B sides and file names (default: a secret one, kept in the key; "
        "a listener who knows the seed could rebuild the order)",
    )
    parser.add_argument("--anchor-hz", type=float, default=3500.0, help="low-anchor cutoff (0: no anchor)")
    parser.add_argument(
        "--mid-anchor-hz",
        type=float,
        default=0.0,
        help="mid-anchor cutoff; ITU-R BS.1534-3 recommends a 7000 Hz mid anchor besides the low one (0: none)",
    )
    parser.add_argument("--loudness", type=float, default=-23.0, help="stimulus loudness in LUFS")
    parser.add_argument("--no-loudness-match", action="store_true", help="keep the stimuli's own levels")
    parser.add_argument(
        "--max-seconds", type=float, default=0.0, help="cut stimuli to this length (0: whole)"
    )
    parser.add_argument("--ab", action="append", default=[], metavar="A:B", help="A/B pair")
    parser.add_argument("--no-ab", action="store_true", help="MUSHRA only")
    parser.add_argument("--title", default="Listening test", help="page title")
    return parser


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    from gan_enhance.evaluate.listening.build import ListeningSettings, build_listening_test

    systems = {}
    for value in args.system:
        name, sep, folder = value.partition("=")
        if not sep:
            name, folder = os.path.basename(os.path.normpath(value)), value
        if name in systems:
            raise ConfigError(f"two systems are named '{name}'; name them with NAME=DIR")
        systems[name] = folder
    settings = ListeningSettings(
        trials=args.trials,
        seed=args.seed,
        anchor_hz=args.anchor_hz,
        mid_anchor_hz=args.mid_anchor_hz,
        loudness_lufs=math.nan if args.no_loudness_match else args.loudness,
        max_seconds=args.max_seconds,
        ab_pairs=("none",) if args.no_ab else tuple(args.ab),
        title=args.title,
    )
    page, key = build_listening_test(args.reference, systems, args.out, settings, key_path=args.key)
    print(f"open {os.path.abspath(page)} in a browser; listeners send back the answer files they download")
    print(f"key: {key} (keep it away from listeners; gan-enhance listen-results ANSWERS --key {key})")
    return 0
