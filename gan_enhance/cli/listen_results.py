"""``gan-enhance listen-results``: aggregate listening-test answer files per system."""

from __future__ import annotations

import os

from gan_enhance.cli._args import parser as make_parser

HELP = "aggregate listening-test answers (JSON/CSV): MUSHRA means with 95% CIs, A/B preference rates"


def build_parser():
    parser = make_parser("listen-results", HELP)
    parser.add_argument("answers", nargs="+", help="answer files, or folders holding them")
    parser.add_argument("--screen", action="store_true", help="BS.1534-3 post-screening of listeners")
    parser.add_argument("--out", default="", help="folder for listening_results.md/.json")
    return parser


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    import json

    from gan_enhance.errors import DataError
    from gan_enhance.evaluate.listening import results

    answer_sets = [results.read_answers(path) for path in results.collect_answer_files(args.answers)]
    tests = {a.test_id for a in answer_sets}
    if len(tests) > 1:
        raise DataError(
            f"the answer files come from different tests ({', '.join(sorted(tests))}); aggregate each apart"
        )
    excluded = []
    if args.screen:
        answer_sets, excluded = results.screen(answer_sets)
        if not answer_sets:
            raise DataError("post-screening excluded every listener")
    mushra, ab = results.aggregate_mushra(answer_sets), results.aggregate_ab(answer_sets)
    text = results.results_markdown(mushra, ab, len(answer_sets), excluded)
    print(text)
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "listening_results.md"), "w", encoding="utf-8") as handle:
            handle.write(text)
        with open(os.path.join(args.out, "listening_results.json"), "w", encoding="utf-8") as handle:
            json.dump({"mushra": mushra, "ab": ab, "excluded": excluded}, handle, indent=1)
    return 0
