"""The `kubeloop` command line: init, loop, run, compile, deploy, serve, monitor, retrain, submit, config."""

from __future__ import annotations

import argparse
import sys

from cli import compile, config, init, loop, monitor, registry, rollout, run, serve, submit
from cli.common import EXIT_CODES, EXIT_USAGE
from components.common.config_loader import ConfigError
from components.common.store import StoreAccessError

GROUPS = (init, run, rollout, serve, compile, registry, config, monitor, submit, loop)
"""The command groups, in the order `kubeloop --help` lists their subcommands."""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(
        prog="kubeloop",
        description="Validate, train, calibrate, evaluate, register, serve, watch and retrain "
        "classification models, on this machine or on Kubernetes.",
        epilog="example:\n  kubeloop init --data exams.csv --label y && kubeloop run --config config.yaml\n\n"
        f"{EXIT_CODES}\n`kubeloop COMMAND --help` for each command; docs/reference/cli.md for all of them",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for group in GROUPS:
        group.add_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `kubeloop` console script.

    Args:
        argv: The arguments after the program name (default: sys.argv[1:]).

    Returns:
        The exit code: 0 on success, 1 when the work failed, 2 for a usage or config error.
    """
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # argparse ends a positional list at the first option: `rollout step --config C key=value`
    # leaves key=value over; it belongs to the overrides.
    if extra and hasattr(args, "overrides") and all("=" in e and not e.startswith("-") for e in extra):
        args.overrides = [*args.overrides, *extra]
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return int(args.func(args))
    except (ConfigError, StoreAccessError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
