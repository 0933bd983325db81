"""`kubeloop run`, `validate` and `recalibrate`: the training DAG, the data gate, the recalibrate DAG."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from cli.common import EXIT_FAILED, OVERRIDES_HELP, command, config_from_args, new_console, print_report


def cmd_run(args: argparse.Namespace) -> int:
    """Validate the config, make the dataset if needed, run the DAG, print the summary."""
    config = config_from_args(args)
    from components.common.store import open_store
    from pipelines.local import materialize_dataset, new_run_id, run_training
    from pipelines.output_filter import quiet_executor_dumps

    console = new_console()
    store = open_store(args.store or config.store)
    if materialize_dataset(config):
        console.print(f"generated dataset {config.dataset.path}")
    run_id = args.run_id or new_run_id()
    console.print(f"[bold]run {run_id}[/bold]: {config.name}, store {store.uri}")
    started = time.monotonic()
    with quiet_executor_dumps(enabled=not args.verbose):
        result = run_training(config, store, run_id, parent_run=args.parent_run, trigger=args.trigger)
    return print_report(
        console, config, store, result, f"kubeloop run {run_id} ({time.monotonic() - started:.1f} s)"
    )


TARGETS = ("target_recall", "target_specificity")


def recalibration_overrides(overrides: list[str]) -> list[str]:
    """`target_recall=0.97` is short for calibration.target_recall=0.97, and clears the other target."""
    out = []
    for text in overrides:
        key, _, value = text.partition("=")
        if key in TARGETS:
            other = next(t for t in TARGETS if t != key)
            out += [f"calibration.{key}={value}", f"calibration.{other}=null"]
        else:
            out.append(text)
    return out


def cmd_recalibrate(args: argparse.Namespace) -> int:
    """Move a registered version's operating point and register it as a new version (no training)."""
    args.overrides = recalibration_overrides(args.overrides)
    config = config_from_args(args)
    from components.common.store import open_store
    from pipelines.local import new_run_id, run_recalibration
    from pipelines.output_filter import quiet_executor_dumps

    console = new_console()
    store = open_store(args.store or config.store)
    run_id = args.run_id or new_run_id()
    console.print(f"[bold]recalibrate {config.name} v{args.model}[/bold] (run {run_id}, store {store.uri})")
    started = time.monotonic()
    with quiet_executor_dumps(enabled=not args.verbose):
        result = run_recalibration(config, store, run_id, args.model)
    title = f"kubeloop recalibrate {run_id} ({time.monotonic() - started:.1f} s)"
    return print_report(console, config, store, result, title)


def cmd_validate(args: argparse.Namespace) -> int:
    """Run the data gate on a file outside any pipeline; exit 1 when an error check fails."""
    from pathlib import Path

    from components.common.data import DataReadError, local_path
    from components.common.store import open_store
    from components.validate_data.gallery import GALLERY_FILE
    from components.validate_data.gate import check
    from components.validate_data.report import data_docs_html

    config = config_from_args(args)
    source = args.data or config.dataset.path
    modality = config.dataset.make_modality()
    try:
        with local_path(source) as path:
            frame = modality.gate_table(modality.read(path, source))
    except DataReadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    gate = check(frame, config, open_store(args.store or config.store), modality)
    report = gate.report(source)
    print(report, end="")
    if args.report:
        out = Path(args.report)
        out.mkdir(parents=True, exist_ok=True)
        (out / "report.md").write_text(report, encoding="utf-8")
        (out / "data_docs.html").write_text(data_docs_html(gate.ge_result), encoding="utf-8")
        (out / GALLERY_FILE).write_text(gate.gallery(source), encoding="utf-8")
        print(f"report: {out / 'report.md'}, data docs: {out / 'data_docs.html'}, ", end="")
        print(f"gallery: {out / GALLERY_FILE}")
    return EXIT_FAILED if gate.blocked else 0


def add_parsers(sub: Any) -> None:
    """The run, validate and recalibrate subcommands."""
    run = command(
        sub,
        "run",
        "run the training pipeline locally (kfp.local)",
        "kubeloop run --config examples/screening/config.yaml training.epochs=5",
    )
    run.add_argument("--config", required=True, help="project YAML")
    run.add_argument("--store", help="folder or s3://bucket/prefix (default: the config's store)")
    run.add_argument("--run-id", default="", help="default: a new time-stamped id")
    run.add_argument("--parent-run", default="", help="run this one follows from (lineage)")
    run.add_argument("--trigger", default="manual", help="why this run started (lineage)")
    run.add_argument(
        "--verbose",
        action="store_true",
        help="also show kfp's executor input dumps and the tracebacks of failed steps",
    )
    run.add_argument(
        "--force-promote",
        action="store_true",
        help="register even if a gate check fails (needs --reason; recorded in lineage and the card)",
    )
    run.add_argument("--reason", help="why the gate is overridden (with --force-promote)")
    run.add_argument("overrides", nargs="*", metavar="key=value", help="e.g. training.epochs=3")
    run.set_defaults(func=cmd_run)

    check = command(
        sub,
        "validate",
        "run the data gate on a file (exit 1 on failure)",
        "kubeloop validate --config examples/screening/config.yaml --data new_exams.csv --report gate/",
    )
    check.add_argument("--config", required=True, help="project YAML (its validation section)")
    check.add_argument("--data", help="CSV/Parquet path or s3:// URI (default: dataset.path)")
    check.add_argument(
        "--report", help="folder for report.md, Great Expectations' data docs and the gate's gallery"
    )
    check.add_argument("--store", help="store whose production model's profile is the reference")
    check.add_argument("overrides", nargs="*", metavar="key=value", help=OVERRIDES_HELP)
    check.set_defaults(func=cmd_validate)

    recal = command(
        sub,
        "recalibrate",
        "move a registered model's operating point; registers a version with the same weights",
        "kubeloop recalibrate --config examples/screening/config.yaml --model 2 target_recall=0.97",
    )
    recal.add_argument("--config", required=True, help="project YAML (name, store, evaluation gate)")
    recal.add_argument("--model", required=True, metavar="VERSION", help="registered version to start from")
    recal.add_argument("--store", help="folder or s3://bucket/prefix (default: the config's store)")
    recal.add_argument("--run-id", default="", help="default: a new time-stamped id")
    recal.add_argument(
        "--verbose",
        action="store_true",
        help="also show kfp's executor input dumps and the tracebacks of failed steps",
    )
    recal.add_argument("--force-promote", action="store_true", help="register even if a gate check fails")
    recal.add_argument("--reason", help="why the gate is overridden (with --force-promote)")
    recal.add_argument("overrides", nargs="*", metavar="key=value", help="e.g. target_recall=0.97")
    recal.set_defaults(func=cmd_recalibrate)
