"""``gan-enhance compare``: paired statistics between systems scored by ``gan-enhance evaluate``."""

from __future__ import annotations

import importlib
import os

from gan_enhance.cli._args import DescriptionDefaultsHelpFormatter, number
from gan_enhance.cli._args import parser as make_parser
from gan_enhance.errors import ConfigError

HELP = "paired comparison of score tables: which system is better, B - A with bootstrap CI, t-test, Wilcoxon"

DESCRIPTION = """\
Compare systems scored on the same files by gan-enhance evaluate. The first table is the baseline A;
every other table is a system B compared with it, metric by metric, on the files both scored:
the difference B - A (positive: B scored higher) with its 95% bootstrap interval, the paired t-test,
the Wilcoxon signed-rank test, the effect size d_z, and a verdict in words (B better, A better, or no
significant difference) read through each metric's direction."""

EPILOG = """\
example:
  # identity is the baseline A; ours and spectral-gating are each compared with it
  gan-enhance compare eval/identity.csv eval/ours.csv eval/spectral-gating.csv --out eval
"""


def build_parser():
    parser = make_parser("compare", DESCRIPTION)
    parser.formatter_class = DescriptionDefaultsHelpFormatter
    parser.epilog = EPILOG
    parser.add_argument(
        "tables",
        nargs="+",
        metavar="[NAME=]CSV",
        help="score tables written by gan-enhance evaluate, the baseline A first; NAME defaults to the "
        "table's system column (or its file name)",
    )
    parser.add_argument(
        "--metrics",
        default="",
        metavar="NAMES",
        help="comma-separated metrics to compare (default: every metric the tables share)",
    )
    parser.add_argument(
        "--alpha", type=float, default=0.05, help="significance level below which a verdict names a winner"
    )
    parser.add_argument(
        "--test",
        choices=["wilcoxon", "ttest"],
        default="wilcoxon",
        help="test whose p-value decides the verdict",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap resampling")
    parser.add_argument("--resamples", type=number(int, 1), default=10000, help="bootstrap resamples")
    parser.add_argument(
        "--quality-module",
        action="append",
        default=[],
        metavar="MODULE",
        help="module registering quality plug-ins, so their columns' directions are known; repeatable",
    )
    parser.add_argument(
        "--out",
        default="",
        metavar="DIR",
        help="folder for comparison.md and comparison.csv (default: print only)",
    )
    return parser


def _system_name(rows: list[dict], path: str) -> str:
    names = {row.get("system") for row in rows if row.get("system")}
    return names.pop() if len(names) == 1 else os.path.splitext(os.path.basename(path))[0]


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    if len(args.tables) < 2:
        raise ConfigError("compare needs at least two score tables: the baseline A first, then the systems B")
    if not 0 < args.alpha < 1:
        raise ConfigError(f"--alpha must lie in (0, 1), got {args.alpha}")

    from gan_enhance.evaluate.compare import compare_systems, comparison_markdown
    from gan_enhance.evaluate.report import read_scores_csv

    for module in args.quality_module:
        try:
            importlib.import_module(module)
        except ImportError as error:
            raise ConfigError(f"cannot import quality plug-in module '{module}' ({error})") from None

    tables = {}
    for value in args.tables:
        name, sep, path = value.partition("=")
        if not sep or not name or os.path.exists(value):
            name, path = "", value
        rows = read_scores_csv(path)
        name = name or _system_name(rows, path)
        if name in tables:
            raise ConfigError(f"two tables are both called '{name}'; name them with NAME=CSV")
        tables[name] = rows
    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()] or None
    results = compare_systems(tables, metrics, args.alpha, args.test, args.seed, args.resamples)
    text = comparison_markdown(results, args.alpha, args.test)
    print(text)
    if args.out:
        from gan_enhance.atomic import write_text

        os.makedirs(args.out, exist_ok=True)
        write_text(os.path.join(args.out, "comparison.md"), text)
        _write_rows(os.path.join(args.out, "comparison.csv"), [r.as_row() for r in results])
    return 0


def _write_rows(path: str, rows: list[dict]) -> None:
    import csv

    from gan_enhance.atomic import atomic_path

    with atomic_path(path) as temporary, open(temporary, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
