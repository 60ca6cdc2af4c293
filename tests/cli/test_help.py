"""`gsch --help` and every subcommand's help run, every flag says what it is for, and every
command names its handler."""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Iterator

import pytest

from gsch.cli import build_parser, main


def _parsers(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, (*path, name))


def _has_subcommands(parser: argparse.ArgumentParser) -> bool:
    return any(isinstance(a, argparse._SubParsersAction) for a in parser._actions)


PARSERS = dict(_parsers(build_parser()))
COMMANDS = [path for path, parser in PARSERS.items() if path and not _has_subcommands(parser)]


def _name(path: tuple[str, ...]) -> str:
    return " ".join(("gsch", *path))


def test_the_command_line_has_the_commands_the_readme_documents() -> None:
    assert [" ".join(path) for path in COMMANDS] == [
        "demo", "serve", "agent", "submit", "get", "plan", "explain", "cancel",
        "streams apply", "streams migrate", "bus init", "bus add", "bus remove", "bus list",
        "projections rebuild", "audit", "declare", "snapshot", "expired show", "bench",
        "experiment",
    ]  # fmt: skip


def test_gsch_help_runs_as_a_program() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "gsch", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: gsch")
    for path in COMMANDS:
        assert path[0] in result.stdout


@pytest.mark.parametrize("path", list(PARSERS), ids=_name)
def test_help_of_every_command_runs(
    path: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main([*path, "--help"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: {_name(path)} ")


@pytest.mark.parametrize("path", list(PARSERS), ids=_name)
def test_every_flag_has_help_showing_its_default(path: tuple[str, ...]) -> None:
    for action in PARSERS[path]._actions:
        if isinstance(action, argparse._SubParsersAction) or action.help == argparse.SUPPRESS:
            continue  # subcommands are checked on their own; hidden flags are for gsch itself
        what = f"{_name(path)} {'/'.join(action.option_strings) or action.dest}"
        assert action.help, f"{what} has no help"
        if action.default not in (None, False, argparse.SUPPRESS):
            assert "%(default)s" in action.help, f"{what} does not show its default"


@pytest.mark.parametrize("path", COMMANDS, ids=_name)
def test_every_command_names_its_handler(path: tuple[str, ...]) -> None:
    assert callable(PARSERS[path].get_default("handler"))
