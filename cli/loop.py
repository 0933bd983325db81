"""`kubeloop loop`: run the closed loop's stages in order, then print the summary and the index's path."""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cli.common import command, new_console
from components.common.config_loader import load_config
from loop.engine import EXPECTED, SCENARIOS, Loop, run_loop

WORK = Path(".kubeloop") / "loops"
"""Where a loop on an object store keeps this machine's side (logs, generated traffic)."""


def split_scenario(overrides: list[str], given: str | None) -> tuple[str, list[str]]:
    """`scenario=NAME` among the key=value arguments names the scenario; the rest are config overrides."""
    scenario = given or "drift"
    rest = []
    for text in overrides:
        key, _, value = text.partition("=")
        if key == "scenario":
            scenario = value
        else:
            rest.append(text)
    return scenario, rest


def cmd_loop(args: argparse.Namespace) -> int:
    """Run the scenario; exit 0 when its rollout ended as the scenario expects."""
    from loop.report import mirror_index, summary_table, write_index

    scenario, overrides = split_scenario(args.overrides, args.scenario)
    if scenario not in SCENARIOS:
        print(f"error: unknown scenario {scenario!r}; use one of {', '.join(SCENARIOS)}", file=sys.stderr)
        return 2
    config = load_config(args.config, overrides)
    name = f"{datetime.now(UTC).strftime('%Y%m%d-%H%M%S')}-{scenario}"
    store = args.store or f"{config.store.rstrip('/')}/loops/{name}"
    # Logs of the processes this machine runs and the generated traffic stay on this machine.
    remote = "://" in store
    work = WORK / name if remote else Path(store)
    console = new_console()
    console.print(
        f"[bold]kubeloop loop[/bold] {config.name}, scenario {scenario}: store {store} "
        f"(time compressed: monitor windows of {config.loop.window})"
    )
    if remote:
        console.print(f"logs and generated traffic: {work}")
    loop = Loop(
        args.config,
        overrides,
        store,
        work,
        scenario,
        lambda line: console.print(line, markup=False),
        args.verbose,
    )
    started = time.monotonic()
    phase = run_loop(loop)
    loop.record.seconds = round(time.monotonic() - started, 1)
    index = write_index(loop.record, loop.store)
    console.print(summary_table(loop.record))
    console.print(f"registry: {_stages(loop.record.stages)}")
    console.print(f"index of the loop: {index}")
    if remote:
        console.print(f"a copy here, with what it links to: {mirror_index(loop.record, loop.store, work)}")
    if phase is None:
        console.print(f"[red]the loop stopped[/red]: {loop.record.error}")
        return 1
    if phase != EXPECTED[scenario]:
        console.print(
            f"[red]the rollout ended {phase}; scenario {scenario} expects {EXPECTED[scenario]}[/red]"
        )
        return 1
    console.print(f"[green]scenario {scenario}: the candidate was {phase.replace('_', ' ')}[/green]")
    return 0


def _stages(stages: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in stages.items() if v)


def add_parsers(sub: Any) -> None:
    """The loop subcommand."""
    loop = command(
        sub,
        "loop",
        "the closed loop on 127.0.0.1: train, serve, drift, retrain, shadow and canary rollout",
        "kubeloop loop --config examples/screening/config.yaml scenario=bad_candidate",
    )
    loop.add_argument("--config", required=True, help="project YAML (its loop section sets the scenario)")
    loop.add_argument(
        "--store",
        help="folder or s3://bucket/prefix for this loop (default: <store>/loops/<time>-<scenario>); "
        "one where `kubeloop run` trained the model makes that version the first (no training)",
    )
    loop.add_argument("--scenario", choices=SCENARIOS, help="drift (default) or bad_candidate")
    loop.add_argument("--verbose", action="store_true", help="also show kfp's executor input dumps")
    loop.add_argument("overrides", nargs="*", metavar="key=value", help="scenario=bad_candidate, config keys")
    loop.set_defaults(func=cmd_loop)
