"""The command-line dispatcher: listing, unknown commands, bad flags, the module entry point."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

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


@pytest.mark.parametrize("command", ["enhance", "export", "preprocess", "degrade", "inspect", "synth"])
def test_help_explains_every_option_in_plain_text(command, capsys, monkeypatch):
    parsers = []
    print_help = argparse.ArgumentParser.print_help
    monkeypatch.setattr(
        argparse.ArgumentParser,
        "print_help",
        lambda self, file=None: (parsers.append(self), print_help(self)),
    )
    with pytest.raises(SystemExit) as exited:
        main([command, "--help"])
    assert exited.value.code == 0
    text = capsys.readouterr().out
    assert text.startswith(f"usage: gan-enhance {command}")
    for markup in ("``", ":class:", ":func:", ":meth:", ":mod:"):
        assert markup not in text
    for empty in ("(default: None)", "(default: False)", "(default: [])", "(default: )"):
        assert empty not in text
    if command == "enhance":
        assert "(default: 0)" in text  # --threads: a zero default is shown
    (parser,) = parsers
    undocumented = [action.option_strings or action.dest for action in parser._actions if not action.help]
    assert undocumented == []


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (
            ["enhance", "model", "in.wav", "--output", "out", "--chunk-seconds", "0"],
            "--chunk-seconds: 0 is not > 0",
        ),
        (
            ["enhance", "model", "in.wav", "--output", "out", "--batch-size", "-3"],
            "--batch-size: -3 is not >= 0",
        ),
        (["enhance", "model", "in.wav", "--output", "out", "--threads", "-1"], "--threads: -1 is not >= 0"),
        (["preprocess", "--clean", "c", "--items", "0", "--output", "o"], "--items: 0 is not >= 1"),
        (["evaluate", "--no-reference", "d", "--out", "o", "--jobs", "0"], "--jobs: 0 is not >= 1"),
        (["compare", "a.csv", "b.csv", "--resamples", "0"], "--resamples: 0 is not >= 1"),
    ],
)
def test_out_of_range_numbers_get_one_line_naming_the_option(arguments, message, capsys):
    """Before any file is read: a chunk of 0 s used to surface as a traceback from inside the enhancer."""
    with pytest.raises(SystemExit) as stop:
        main(arguments)
    assert stop.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error == f"gan-enhance {arguments[0]}: error: argument {message}"
