"""Every command's help reads the same way: one line of purpose, every argument explained, an
example that names the command, and the exit codes."""

from __future__ import annotations

import argparse

from cli.main import build_parser
from scripts.docs_reference import subcommands


def test_every_command_has_a_purpose_an_example_and_the_exit_codes() -> None:
    commands = subcommands(build_parser())
    assert len(commands) >= 17
    for name, parser in commands.items():
        assert parser.description and "\n" not in parser.description.strip(), name
        epilog = parser.epilog or ""
        assert epilog.startswith(f"example:\n  kubeloop {name}"), (name, epilog)
        assert "exit codes: 0 done, 1 the work failed" in epilog, name


def test_every_argument_says_what_it_is() -> None:
    unexplained = [
        f"{name} {action.dest}"
        for name, parser in subcommands(build_parser()).items()
        for action in parser._actions
        if not isinstance(action, argparse._HelpAction) and not action.help
    ]
    assert not unexplained, unexplained
