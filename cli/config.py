"""`kubeloop config`: validate a config and print it fully resolved, with its hash."""

from __future__ import annotations

import argparse
from typing import Any

import yaml

from cli.common import OVERRIDES_HELP, command, config_from_args


def cmd_config(args: argparse.Namespace) -> int:
    """Print the fully resolved config (every default written out) and its hash."""
    config = config_from_args(args)
    print(yaml.safe_dump(config.resolved(), sort_keys=False), end="")
    print(f"# config hash sha256:{config.digest()}")
    return 0


def add_parsers(sub: Any) -> None:
    """The config subcommand."""
    show = command(
        sub,
        "config",
        "validate a config and print it fully resolved",
        "kubeloop config --config examples/screening/config.yaml training.epochs=5",
    )
    show.add_argument("--config", required=True, help="the project's YAML config")
    show.add_argument("overrides", nargs="*", metavar="key=value", help=OVERRIDES_HELP)
    show.set_defaults(func=cmd_config)
