"""``gan-enhance listen-results``: aggregate listening-test answer files per system."""

from __future__ import annotations

import os

from gan_enhance.cli._args import parser as make_parser

HELP = "aggregate listening-test answers (JSON/CSV): MUSHRA means with 95% CIs, A/B preference rates"


def build_parser():
    parser = make_parser("listen-results", HELP)
    parser.add_argument("answers", nargs="+", help="answer files, or folders holding them")
    parser.add_argument(
        "--key",
        default="",
        help="the key file gan-enhance listen wrote (OUT-key.json): which system is which",
    )
    parser.add_argument(
        "--screen",
        action="store_true",
        help="BS.1534-3 post-screening: exclude listeners who rate the hidden reference below 90 or the "
        "mid or low anchor above 90 in more than 15%% of trials (each exclusion is printed with its counts)",
    )
    parser.add_argument(
        "--ci",
        choices=["t", "bootstrap"],
        default="t",
        help="MUSHRA 95%% interval: t interval clipped to 0-100, or percentile bootstrap",
    )
    parser.add_argument("--out", default="", help="folder for listening_results.md/.json")
    return parser


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    import json

    from gan_enhance.errors import DataError
    from gan_enhance.evaluate.listening import results

    files = results.collect_answer_files(args.answers)
    # The key may sit among the answers; it is not one.
    files = [path for path in files if not args.key or not os.path.samefile(path, args.key)]
    answer_sets = [results.read_answers(path) for path in files]
    tests = {a.test_id for a in answer_sets}
    if len(tests) > 1:
        raise DataError(
            f"the answer files come from different tests ({', '.join(sorted(tests))}); aggregate each apart"
        )
    results.attach_systems(answer_sets, args.key)
    excluded = []
    if args.screen:
        answer_sets, excluded = results.screen(answer_sets)
        for line in results.screening_lines(excluded):
            print(f"excluded {line}")
        if not answer_sets:
            raise DataError("post-screening excluded every listener (see the reasons above)")
    mushra, ab = results.aggregate_mushra(answer_sets, ci=args.ci), results.aggregate_ab(answer_sets)
    warnings = results.unplayed_lines(answer_sets)
    text = results.results_markdown(mushra, ab, len(answer_sets), excluded, tuple(warnings))
    print(text)
    if args.out:
        from gan_enhance.atomic import write_text

        os.makedirs(args.out, exist_ok=True)
        write_text(os.path.join(args.out, "listening_results.md"), text)
        summary = {"mushra": mushra, "ab": ab, "excluded": excluded, "warnings": warnings}
        write_text(os.path.join(args.out, "listening_results.json"), json.dumps(summary, indent=1) + "\n")
    return 0
