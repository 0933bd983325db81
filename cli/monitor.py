"""`kubeloop monitor`, `kubeloop retrain` and `kubeloop schedule`: the monitoring half of the loop."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from cli.common import EXIT_FAILED, OVERRIDES_HELP, command, config_from_args, new_console, print_report
from components.common.config import KubeloopConfig
from components.common.kfp_client import api_error, create_recurring_run, kfp_client, recurring_run
from components.common.monitoring_config import duration_seconds

WAIT_POLL_SECONDS = 2.0


def _duration(text: str) -> int:
    """argparse type of --every: seconds of 90s, 10m, 1h or 7d."""
    try:
        return duration_seconds(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _launcher(args: argparse.Namespace, config: KubeloopConfig, store: Any) -> Any:
    from components.common.store import LocalStore
    from components.monitor.launch import KfpLauncher, LocalLauncher

    if args.host:
        trigger = config.monitoring.trigger
        return KfpLauncher(kfp_client(args.host), trigger.experiment, trigger.pipeline_version)
    log_dir = store.root / "monitor-runs" if isinstance(store, LocalStore) else Path(".kubeloop/monitor-runs")
    overrides = [*args.overrides, *([f"store={args.store}"] if args.store else [])]
    return LocalLauncher(store, config.name, str(Path(args.config).resolve()), overrides, log_dir)


def cmd_monitor(args: argparse.Namespace) -> int:
    """Check closed traffic windows once, or every --every, and act on what they show."""
    from components.common.store import open_store
    from components.monitor.monitor import monitor_pass

    if args.dry_run:
        args.overrides = [*args.overrides, "monitoring.trigger.dry_run=true"]
    config = config_from_args(args)
    store = open_store(args.store or config.store)
    launcher = _launcher(args, config, store)
    every = args.every or 0
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    print(f"monitoring {config.name} in {store.uri}: windows of {config.monitoring.window}", flush=True)
    while True:
        try:
            result = monitor_pass(store, config, launcher, progress=lambda line: print(line, flush=True))
        except Exception as exc:  # noqa: BLE001 - a failed pass is reported; --every tries again
            reason = api_error(exc, args.host) if args.host else None
            if reason is None and not isinstance(exc, ValueError | RuntimeError | OSError):
                raise
            print(f"error: {reason or exc}", file=sys.stderr)
            if not every:
                return EXIT_FAILED
            # What was decided is in the store: a run recorded but not started starts next pass.
            print(f"next pass in {every} s", file=sys.stderr, flush=True)
            if stop.wait(every):
                return EXIT_FAILED
            continue
        if result.waiting:
            print(result.waiting, flush=True)
        if args.wait:
            for run_id in result.started:
                _wait(launcher, run_id, stop)
        if not every or stop.wait(every):
            return 0


def _wait(launcher: Any, run_id: str, stop: threading.Event) -> None:
    print(f"waiting for {run_id}", flush=True)
    while launcher.status(run_id) == "running" and not stop.wait(WAIT_POLL_SECONDS):
        pass
    print(f"{run_id}: {launcher.status(run_id)}", flush=True)


def cmd_retrain(args: argparse.Namespace) -> int:
    """Run the retraining DAG locally; write its outcome where the monitor looks for it."""
    from components.common.store import open_store
    from components.monitor.launch import OUTCOME_FILE
    from pipelines.local import new_run_id, run_retraining
    from pipelines.output_filter import quiet_executor_dumps

    config = config_from_args(args)
    store = open_store(args.store or config.store)
    run_id = args.run_id or new_run_id()
    console = new_console()
    console.print(
        f"[bold]retrain {config.name}[/bold] (run {run_id}, trigger {args.trigger}, store {store.uri})"
    )
    started = time.monotonic()
    try:
        with quiet_executor_dumps(enabled=not args.verbose):
            result = run_retraining(config, store, run_id, args.evidence, args.trigger)
    except BaseException:
        store.write_json(f"runs/{run_id}/{OUTCOME_FILE}", {"state": "failed", "reason": "interrupted"})
        raise
    version = next((s["metrics"].get("version") for s in result.steps if s["step"] == "register"), None)
    failed = result.failed_step
    store.write_json(
        f"runs/{run_id}/{OUTCOME_FILE}",
        {
            "state": "succeeded" if result.succeeded else "failed",
            "version": version,
            "failed_step": failed["step"] if failed else None,
            "reason": (failed or {}).get("reason") or result.error,
        },
    )
    return print_report(
        console, config, store, result, f"kubeloop retrain {run_id} ({time.monotonic() - started:.1f} s)"
    )


def cmd_schedule(args: argparse.Namespace) -> int:
    """Create (with --host) or print the KFP recurring run of scheduled retraining or monitoring."""

    config = config_from_args(args)
    default = (
        config.monitoring.retraining.schedule if args.pipeline == "retraining" else config.monitoring.schedule
    )
    cron = args.cron or default
    if not cron:
        print(
            "error: no schedule: pass --cron '0 3 * * 1' or set monitoring.retraining.schedule",
            file=sys.stderr,
        )
        return EXIT_FAILED
    try:
        spec = recurring_run(config, args.pipeline, cron)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    if not args.host:
        print(json.dumps(spec, indent=2))
        print("(not created: pass --host URL of the Kubeflow Pipelines API to create it)")
        return 0
    try:
        created = create_recurring_run(kfp_client(args.host), config, spec)
    except Exception as exc:  # noqa: BLE001 - API and network errors become one readable line
        reason = api_error(exc, args.host)
        if reason is None and not isinstance(exc, ValueError):
            raise
        print(f"error: {reason or exc}", file=sys.stderr)
        return EXIT_FAILED
    print(f"created recurring run {created} ({spec['job_name']}, {cron})")
    return 0


def add_parsers(sub: Any) -> None:
    """The monitor, retrain and schedule subcommands."""
    mon = command(
        sub,
        "monitor",
        "check logged traffic for drift and trigger retraining",
        "kubeloop monitor --config examples/screening/config.yaml --once",
    )
    mon.add_argument("--config", required=True, help="project YAML")
    mon.add_argument("--store", help="folder or s3://bucket/prefix (default: the config's store)")
    when = mon.add_mutually_exclusive_group()
    when.add_argument("--once", action="store_true", help="one pass over the closed windows (the default)")
    when.add_argument(
        "--every", metavar="DURATION", type=_duration, help="a pass every DURATION (e.g. 10m) until stopped"
    )
    mon.add_argument("--dry-run", action="store_true", help="record what would start; start nothing")
    mon.add_argument("--wait", action="store_true", help="wait for the retraining runs a pass starts (local)")
    mon.add_argument("--host", help="Kubeflow Pipelines API: start retraining there instead of locally")
    mon.add_argument("overrides", nargs="*", metavar="key=value", help=OVERRIDES_HELP)
    mon.set_defaults(func=cmd_monitor)

    ret = command(
        sub,
        "retrain",
        "run the retraining pipeline locally (reference data + labeled traffic)",
        "kubeloop retrain --config examples/screening/config.yaml --trigger drift",
    )
    ret.add_argument("--config", required=True, help="project YAML")
    ret.add_argument("--store", help="folder or s3://bucket/prefix (default: the config's store)")
    ret.add_argument("--run-id", default="", help="default: a new time-stamped id")
    ret.add_argument("--trigger", default="manual", help="why it started (lineage): drift, schedule, manual")
    ret.add_argument(
        "--evidence", default="", help="JSON evidence recorded in lineage (the monitor passes it)"
    )
    ret.add_argument("--verbose", action="store_true", help="also show kfp's executor input dumps")
    ret.add_argument("overrides", nargs="*", metavar="key=value", help=OVERRIDES_HELP)
    ret.set_defaults(func=cmd_retrain)

    sch = command(
        sub,
        "schedule",
        "create the KFP recurring run of retraining or monitoring",
        "kubeloop schedule --config examples/screening/config.yaml --cron '0 3 * * 1' --host http://localhost:8888",
    )
    sch.add_argument("--config", required=True, help="project YAML")
    sch.add_argument(
        "--pipeline",
        choices=("retraining", "monitoring"),
        default="retraining",
        help="what the recurring run runs (default: retraining)",
    )
    sch.add_argument(
        "--cron", help="5-field cron (default: monitoring.retraining.schedule or monitoring.schedule)"
    )
    sch.add_argument("--host", help="Kubeflow Pipelines API URL (without it: print the request)")
    sch.add_argument("overrides", nargs="*", metavar="key=value", help=OVERRIDES_HELP)
    sch.set_defaults(func=cmd_schedule)
