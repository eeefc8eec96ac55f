"""Shared argparse set-up for subcommands (argparse lives only in the cli layer)."""

from __future__ import annotations

import argparse
from typing import Any


class DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Each option's help with its default, except where the default says nothing (None, off, empty)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        default = action.default
        # `is`: 0 == False, and a default of 0 is worth showing
        if action.required or default is None or default is False or default in ("", []):
            return action.help or ""
        return super()._get_help_string(action)


class DescriptionDefaultsHelpFormatter(argparse.RawDescriptionHelpFormatter, DefaultsHelpFormatter):
    """:class:`DefaultsHelpFormatter` that keeps the description's and epilog's line breaks (tables, lists)."""


def number(kind: type, minimum: float, strict: bool = False):
    """An argparse ``type``: a ``kind`` (int or float) of at least ``minimum`` (above it with ``strict``),
    so a bad value gets argparse's one-line error naming the option, not a traceback later."""

    def parse(text: str):
        value = kind(text)  # a ValueError reads "invalid int value: 'x'"
        if value < minimum or (strict and value == minimum):
            raise argparse.ArgumentTypeError(f"{text} is not {'>' if strict else '>='} {minimum:g}")
        return value

    parse.__name__ = kind.__name__
    return parse


def parser(command: str, description: str) -> argparse.ArgumentParser:
    """An ``ArgumentParser`` whose usage and errors read ``gan-enhance <command> ...``."""
    return argparse.ArgumentParser(
        prog=f"gan-enhance {command}", description=description, formatter_class=DefaultsHelpFormatter
    )


def flag_parser(command: str, description: str, flags: dict[str, str]) -> argparse.ArgumentParser:
    """A parser of argbind's ``--args.load``/``--args.save``/``--args.debug`` (``flags``: their help), for
    ``parse_known_args``: everything else on the line is left for the config overrides.

    ``-h``/``--help`` only sets ``help`` (the command prints argbind's generated help); abbreviations are
    off, so ``--args.lo`` is never taken for ``--args.load``. ``--args.debug`` takes an optional level
    (argbind's ``--args.debug 1``).
    """
    arguments = argparse.ArgumentParser(
        prog=f"gan-enhance {command}", description=description, add_help=False, allow_abbrev=False
    )
    arguments.add_argument("-h", "--help", action="store_true", help="list every config key and exit")
    arguments.add_argument("--args.load", dest="load", default="", help=flags["args.load"])
    arguments.add_argument("--args.save", dest="save", default="", help=flags["args.save"])
    arguments.add_argument(
        "--args.debug", dest="debug", type=int, nargs="?", const=1, default=0, help=flags["args.debug"]
    )
    return arguments


class ArgbindHelpFormatter(argparse.RawTextHelpFormatter):
    """argbind's layout (its help lines kept as written), each config key followed by its default as YAML."""

    def _get_help_string(self, action: argparse.Action) -> str:
        from gan_enhance.train.binding import REQUIRED, ConfigValue

        text = action.help or ""
        if isinstance(action.type, ConfigValue) and text != argparse.SUPPRESS:
            default = "required" if action.default is REQUIRED else _yaml_text(action.default)
            default = default.replace("%", "%%")  # argparse %-formats the help
            text = f"{text}\n(default: {default})" if text else f"(default: {default})"
        return text


def _yaml_text(value: Any) -> str:
    import yaml

    return yaml.safe_dump(value, default_flow_style=True, width=1000).strip().removesuffix("...").strip()


def help_parser(prog: str, description: str) -> argparse.ArgumentParser:
    """argbind's generated parser of every config section (``--Trainer.max_steps`` ...), for ``--help``.

    Built from :func:`gan_enhance.train.binding.source_sections`, so printing it imports neither torch nor
    the models. It has argbind's ``--args.load``, ``--args.save`` and ``--args.debug`` too.
    """
    import argbind

    from gan_enhance.train.binding import GROUP, ConfigValue, bound_function, source_sections

    for spec in source_sections():
        bound_function(spec)
    parser = argbind.build_parser(group=GROUP)
    parser.prog, parser.description, parser.formatter_class = prog, description, ArgbindHelpFormatter
    for action in parser._actions:  # argparse's metavar would repeat the key in capitals
        if isinstance(action.type, ConfigValue):
            action.metavar = action.type.metavar
    return parser
