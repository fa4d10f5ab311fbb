"""The command line explains itself: a version, help text on every option, an example on every
command (argparse objects walked, so a new option without help fails here)."""

from __future__ import annotations

import argparse

import pytest

from ddpnas._version import __version__
from ddpnas.cli.main import build_parser, main


def _commands(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ("ddpnas",)
) -> list[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every command that runs (the leaves of the subcommand tree) with its words."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        return [(path, parser)]
    return [
        leaf
        for action in subs
        for name, child in action.choices.items()
        for leaf in _commands(child, (*path, name))
    ]


COMMANDS = _commands(build_parser())


def test_every_command_is_walked() -> None:
    names = {" ".join(path[1:]) for path, _ in COMMANDS}
    assert {"search", "generate", "imagenet search", "imagenet standin", "report readme"} <= names
    assert {"nb201 lookup", "retrain", "launch", "genotype", "report timing"} <= names


@pytest.mark.parametrize("path, parser", COMMANDS, ids=[" ".join(p[1:]) for p, _ in COMMANDS])
def test_every_option_has_help_and_the_command_an_example(
    path: tuple[str, ...], parser: argparse.ArgumentParser
) -> None:
    for action in parser._actions:
        if not isinstance(action, argparse._HelpAction):
            assert action.help, f"{' '.join(path)} {action.option_strings or action.dest}"
    epilog = parser.epilog or ""
    assert "example" in epilog and " ".join(path) in epilog, f"{' '.join(path)}: no example"


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.strip() == f"ddpnas {__version__}"
