"""The command-line dispatcher: listing, unknown commands, bad flags, the module entry point."""

from __future__ import annotations

import subprocess
import sys

from gan_enhance.cli import available_commands, main


def test_no_arguments_prints_usage_and_fails(capsys):
    assert main([]) == 2
    assert "usage: gan-enhance" in capsys.readouterr().err


def test_help_lists_every_command_module(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in available_commands():
        assert name in out


def test_unknown_command_suggests_a_close_one(capsys):
    commands = available_commands()
    assert main(["definitely-not-a-command"]) == 2
    assert "unknown command 'definitely-not-a-command'" in capsys.readouterr().err
    if commands:
        name = next(iter(commands))
        assert main([name + "x"]) == 2
        assert f"Did you mean '{name}'" in capsys.readouterr().err


def test_version_through_python_dash_m():
    result = subprocess.run(
        [sys.executable, "-m", "gan_enhance", "--version"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0
    assert result.stdout.startswith("gan-enhance ")
