"""Shared argparse set-up for subcommands (argparse lives only in the cli layer)."""

from __future__ import annotations

import argparse


def parser(command: str, description: str) -> argparse.ArgumentParser:
    """An ``ArgumentParser`` whose usage and errors read ``gan-enhance <command> ...``."""
    return argparse.ArgumentParser(
        prog=f"gan-enhance {command}",
        description=description,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
