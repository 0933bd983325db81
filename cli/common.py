"""What every command group shares: exit codes, the console, config loading and the run summary."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from components.common.config import KubeloopConfig
from components.common.config_loader import load_config

EXIT_FAILED, EXIT_USAGE = 1, 2
EXIT_CODES = "exit codes: 0 done, 1 the work failed (a gate, a step, an API), 2 a usage or config error"


def command(sub: Any, name: str, purpose: str, example: str, **options: Any) -> argparse.ArgumentParser:
    """A subcommand whose help reads like every other's: one line of purpose, the arguments,
    an example, the exit codes."""
    parser: argparse.ArgumentParser = sub.add_parser(
        name,
        help=purpose,
        description=purpose[0].upper() + purpose[1:] + ".",
        epilog=f"example:\n  {example}\n\n{EXIT_CODES}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        **options,
    )
    return parser


OVERRIDES_HELP = "config overrides: dotted keys, YAML values (training.epochs=5)"
CONFIG_HELP = "the project's YAML config"


def new_console() -> Any:
    """A rich Console: the terminal's width, or wide lines when the output is piped."""
    from rich.console import Console

    # Piped output (CI logs, scripts) gets wide lines rather than truncated columns.
    return Console(highlight=False, width=None if sys.stdout.isatty() else 200)


def config_from_args(args: argparse.Namespace) -> KubeloopConfig:
    """Load `--config` with the command's key=value overrides (and --force-promote's, when given).

    Raises:
        ConfigError: The file or an override is invalid; the message names every field at fault.
    """
    overrides = list(args.overrides)
    if getattr(args, "force_promote", False):
        # JSON is YAML: a quoted reason survives colons and quotes in the text.
        reason = json.dumps(args.reason or "")
        overrides += ["evaluation.force_promote=true", f"evaluation.force_reason={reason}"]
    return load_config(args.config, overrides)


def _key_metrics(metrics: dict[str, Any]) -> str:
    # The smoke test's losses stay in status.json and the KFP metrics; its time shows here.
    shown = {k: v for k, v in metrics.items() if not k.startswith("smoke_") or k == "smoke_seconds"}
    return "  ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in shown.items())


def print_report(console: Any, config: KubeloopConfig, store: Any, result: Any, title: str) -> int:
    """Print the summary table, the steps' notes, and where the model card or the reports are.

    Args:
        console: The rich Console to print on.
        config: The run's config (its model name).
        store: The run's artifact store.
        result: The local run's `RunResult`.
        title: The table's title.

    Returns:
        The exit code: 0 when the run registered a version, else EXIT_FAILED.
    """
    from rich.table import Table

    table = Table(title=title)
    for column in ("step", "status", "seconds", "key metrics"):
        table.add_column(column)
    for step in result.steps:
        style = "green" if step["status"] == "succeeded" else "red"
        table.add_row(
            step["step"],
            f"[{style}]{step['status']}[/{style}]",
            f"{step['seconds']:.1f}",
            _key_metrics(step.get("metrics", {})),
        )
    console.print(table)
    for step in result.steps:
        for note in step.get("notes", []):
            console.print(f"{step['step']}: {note}")
    console.print(f"artifacts: {store.uri}/runs/{result.run_id}/")
    if result.succeeded:
        registered = next(s for s in result.steps if s["step"] == "register")
        version = registered["metrics"].get("version")
        console.print(
            f"[green]registered {config.name} version {version}[/green] "
            f"({store.uri}/models/{config.name}/{version}/card.html)"
        )
        return 0
    failed = result.failed_step
    if failed:
        console.print(f"[red]stopped at {failed['step']}[/red]: {failed.get('reason')}")
        console.print("nothing was registered; reports are under the step's folder above")
    else:
        console.print(f"[red]pipeline failed[/red]: {result.error}")
    return EXIT_FAILED
