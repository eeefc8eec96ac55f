"""The ``gan-enhance`` command line.

Each subcommand is a module ``gan_enhance.cli.<name>`` (dashes become underscores) with a one-line
``HELP`` string and ``main(argv: list[str]) -> int``. Subcommand modules keep their top-level imports
light (heavy imports go inside ``main``) so listing the commands stays fast. Adding a command means adding
a module; nothing here changes.
"""

from __future__ import annotations

import difflib
import importlib
import pkgutil
import sys

from gan_enhance.errors import GanEnhanceError
from gan_enhance.version import __version__

PROG = "gan-enhance"


def available_commands() -> dict[str, str]:
    """Command name -> one-line help, for every subcommand module in this package."""
    commands = {}
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        if hasattr(module, "main"):
            commands[info.name.replace("_", "-")] = getattr(module, "HELP", "")
    return dict(sorted(commands.items()))


def usage() -> str:
    lines = [
        f"usage: {PROG} <command> [options]   ({PROG} <command> --help for its options)",
        "",
        "commands:",
    ]
    commands = available_commands()
    width = max((len(name) for name in commands), default=0)
    lines += [f"  {name.ljust(width)}  {text}" for name, text in commands.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Dispatch ``argv`` (default ``sys.argv[1:]``) to a subcommand and return its exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        print(usage(), file=sys.stderr)
        return 2
    command, rest = argv[0], argv[1:]
    if command in ("-h", "--help", "help"):
        print(usage())
        return 0
    if command == "--version":
        print(f"{PROG} {__version__}")
        return 0
    commands = available_commands()
    if command not in commands:
        close = difflib.get_close_matches(command, list(commands), n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        print(f"{PROG}: unknown command '{command}'.{hint} Commands: {', '.join(commands)}", file=sys.stderr)
        return 2
    module = importlib.import_module(f"{__name__}.{command.replace('-', '_')}")
    try:
        return int(module.main(rest) or 0)
    except GanEnhanceError as error:
        print(f"{PROG} {command}: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG} {command}: interrupted", file=sys.stderr)
        return 130
