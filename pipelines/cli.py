"""The `kubeloop` command line: loop, run, compile, deploy, serve, monitor, retrain, submit, config."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

import yaml

from components.common.config import KubeloopConfig
from components.common.config_loader import ConfigError, load_config

EXIT_FAILED, EXIT_USAGE = 1, 2


def _console() -> Any:
    from rich.console import Console

    # Piped output (CI logs, scripts) gets wide lines rather than truncated columns.
    return Console(highlight=False, width=None if sys.stdout.isatty() else 200)


def _load(args: argparse.Namespace) -> KubeloopConfig:
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


def _report(console: Any, config: KubeloopConfig, store: Any, result: Any, title: str) -> int:
    """The summary table, the steps' notes, and where the model card or the reports are."""
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


def cmd_run(args: argparse.Namespace) -> int:
    """Validate the config, make the dataset if needed, run the DAG, print the summary."""
    config = _load(args)
    from components.common.store import open_store
    from pipelines.local import materialize_dataset, new_run_id, run_training
    from pipelines.output_filter import quiet_executor_dumps

    console = _console()
    store = open_store(args.store or config.store)
    if materialize_dataset(config):
        console.print(f"generated dataset {config.dataset.path}")
    run_id = args.run_id or new_run_id()
    console.print(f"[bold]run {run_id}[/bold]: {config.name}, store {store.uri}")
    started = time.monotonic()
    with quiet_executor_dumps(enabled=not args.verbose):
        result = run_training(config, store, run_id, parent_run=args.parent_run, trigger=args.trigger)
    return _report(
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
    config = _load(args)
    from components.common.store import open_store
    from pipelines.local import new_run_id, run_recalibration
    from pipelines.output_filter import quiet_executor_dumps

    console = _console()
    store = open_store(args.store or config.store)
    run_id = args.run_id or new_run_id()
    console.print(f"[bold]recalibrate {config.name} v{args.model}[/bold] (run {run_id}, store {store.uri})")
    started = time.monotonic()
    with quiet_executor_dumps(enabled=not args.verbose):
        result = run_recalibration(config, store, run_id, args.model)
    title = f"kubeloop recalibrate {run_id} ({time.monotonic() - started:.1f} s)"
    return _report(console, config, store, result, title)


def cmd_validate(args: argparse.Namespace) -> int:
    """Run the data gate on a file outside any pipeline; exit 1 when an error check fails."""
    from pathlib import Path

    from components.common.data import DataReadError, local_path, read_table
    from components.common.store import open_store
    from components.validate_data.checks import validate_frame
    from components.validate_data.infer import infer_columns
    from components.validate_data.reference import reference_profile
    from components.validate_data.report import bad_row_sample, data_docs_html, render_report

    config = _load(args)
    source = args.data or config.dataset.path
    try:
        with local_path(source) as path:
            frame = read_table(path)
    except DataReadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    rules = config.validation
    reference = reference_profile(open_store(args.store or config.store), config)
    inferred = infer_columns(frame, config.dataset)
    results, ge_result = validate_frame(frame, inferred.dataset, rules, reference)
    report = render_report(
        source,
        len(frame),
        results,
        bad_row_sample(frame, results, rules),
        reference["source"] if reference else None,
        inferred.decisions,
    )
    print(report, end="")
    if args.report:
        out = Path(args.report)
        out.mkdir(parents=True, exist_ok=True)
        (out / "report.md").write_text(report, encoding="utf-8")
        (out / "data_docs.html").write_text(data_docs_html(ge_result), encoding="utf-8")
        print(f"report: {out / 'report.md'}, data docs: {out / 'data_docs.html'}")
    return EXIT_FAILED if any(r.blocking for r in results) else 0


def cmd_compile(args: argparse.Namespace) -> int:
    """Compile every pipeline (IR YAML + Kubernetes manifests)."""
    from pipelines.compile import compile_all, write_monitor

    if args.overrides and not args.config:
        print("overrides need --config: kubeloop compile --out DIR --config PATH key=value ...")
        return 2
    for path in compile_all(args.out, args.config, args.overrides):
        print(path)
    if args.monitor_out:
        for path in write_monitor(args.monitor_out, args.config, args.overrides):
            print(path)
    if args.config and "://" not in load_config(args.config, args.overrides).dataset.path:
        print(
            "warning: dataset.path is a local file, which pods cannot read; "
            "override it with dataset.path=s3://bucket/key (or pass it as a run parameter)"
        )
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    """List registered versions with stage, time, runs and key metrics."""
    from rich.table import Table

    from components.common.registry import Registry
    from components.common.store import open_store

    registry = Registry(open_store(args.store))
    names = [args.name] if args.name else registry.models()
    if not names:
        print(f"no models registered in {registry.store.uri}")
        return 0
    console = _console()
    for name in names:
        versions = registry.versions(name)
        if not versions:
            print(f"model '{name}' has no versions in {registry.store.uri}")
            return EXIT_FAILED
        table = Table(title=f"{name} ({registry.store.uri})")
        for column in (
            "version",
            "stage",
            "created",
            "run",
            "parent run",
            "trigger",
            "recall",
            "precision",
            "roc_auc",
            "ece",
            "threshold",
        ):
            table.add_column(column)
        for version, info in versions.items():
            m = info.get("metrics", {})
            table.add_row(
                version,
                registry.stage_of(name, version) or "-",
                info.get("created", ""),
                info.get("run_id", ""),
                info.get("parent_run") or "-",
                info.get("trigger", ""),
                *(f"{m[k]:.4f}" if k in m else "-" for k in ("recall", "precision", "roc_auc", "ece")),
                f"{info['threshold']:.4g}" if "threshold" in info else "-",
            )
        console.print(table)
    return 0


def cmd_stage(args: argparse.Namespace) -> int:
    """Move a version to a stage (production, canary, shadow, archived)."""
    from components.common.registry import Registry
    from components.common.store import open_store

    registry = Registry(open_store(args.store))
    try:
        stages = registry.set_stage(args.name, args.version, args.stage, reason=args.reason)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print({k: v for k, v in stages.items() if k != "history"})
    return 0


def _print_rollout(rollout: Any) -> None:
    print(
        f"{rollout.model}: v{rollout.candidate} {rollout.strategy} beside "
        f"v{rollout.production or '-'}: {rollout.phase}, candidate traffic {rollout.weight}%"
    )


def cmd_deploy(args: argparse.Namespace) -> int:
    """Start rolling out a registered version (local mode: state and SeldonDeployment in the store)."""
    config = _load(args)
    from components.common.store import open_store
    from components.deploy.rollout_store import deploy

    store = open_store(args.store or config.store)
    try:
        rollout = deploy(store, config, args.model, args.strategy)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    _print_rollout(rollout)
    print(f"SeldonDeployment: {store.uri}/deployments/{config.name}/seldondeployment.json")
    return _apply_to_cluster(args, store, config)


def _apply_to_cluster(args: argparse.Namespace, store: Any, config: KubeloopConfig) -> int:
    """With --cluster: apply the store's SeldonDeployment through the Kubernetes API."""
    if not getattr(args, "cluster", False):
        return 0
    from components.deploy.cluster import ApplyError, apply_stored

    try:
        applied = apply_stored(store, config.name, args.context)
    except ApplyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        print(
            "a rollout stays recorded in the store: `kubeloop rollout apply --cluster` retries",
            file=sys.stderr,
        )
        return EXIT_FAILED
    print(f"cluster: SeldonDeployment {applied['namespace']}/{applied['name']} {applied['action']}")
    return 0


def cmd_rollout(args: argparse.Namespace) -> int:
    """status: the analysis' verdict now; step: apply it; promote/rollback: decide by hand."""
    config = _load(args)
    from components.common.store import open_store
    from components.deploy.analysis import Verdict
    from components.deploy.rollout_store import analyse, load, step

    store = open_store(args.store or config.store)
    if args.action == "apply":
        args.cluster = True
        return _apply_to_cluster(args, store, config)
    try:
        if args.action == "status":
            rollout = load(store, config.name)
            _print_rollout(rollout)
            if rollout.phase == "progressing":
                verdict = analyse(store, config, rollout)
                print(f"analysis: {verdict.decision}")
                for line in verdict.reasons:
                    print(f"  {line}")
            return 0
        reason = [f"by hand: {args.reason or 'no reason given'}"]
        given = None  # step: the analysis decides
        if args.action == "promote":
            given = Verdict("promote", reason)
        elif args.action == "rollback":
            given = Verdict("rollback", reason)
        rollout, action, verdict = step(store, config, given)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(f"{action}: " + "; ".join(verdict.reasons))
    _print_rollout(rollout)
    return _apply_to_cluster(args, store, config)


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve the model locally: predictors and the gateway, following the rollout in the store."""
    import signal
    import socket
    import tempfile
    import threading
    from pathlib import Path

    from components.common.store import LocalStore, open_store
    from components.deploy.local_serving import LocalServing
    from pipelines.serve_local import follow, state_key

    config = _load(args)
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", args.port))
        except OSError as exc:
            print(
                f"error: the gateway cannot listen on 127.0.0.1:{args.port} ({exc}): pass --port",
                file=sys.stderr,
            )
            return EXIT_FAILED
    store = open_store(args.store or config.store)
    log_dir = store.root / "serving" if isinstance(store, LocalStore) else Path(tempfile.mkdtemp())
    try:
        serving = LocalServing(log_dir, port=args.port, drain_seconds=args.drain_seconds)
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    mode = f"analysis every {config.deployment.analysis.interval_seconds:g}s" if args.auto else "manual steps"
    print(f"serving {config.name} from {store.uri} on 127.0.0.1:{args.port} ({mode})", flush=True)
    try:
        follow(store, config, serving, stop, args.poll, args.auto, say=lambda line: print(line, flush=True))
    finally:
        print("stopping: predictors flush their request logs", flush=True)
        serving.close()
        store.delete(state_key(config.name))
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    """Print the fully resolved config (every default written out) and its hash."""
    config = _load(args)
    print(yaml.safe_dump(config.resolved(), sort_keys=False), end="")
    print(f"# config hash sha256:{config.digest()}")
    return 0


def _cluster_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--cluster",
        action="store_true",
        help="also apply the SeldonDeployment with the Kubernetes API (in-cluster account or kubeconfig)",
    )
    parser.add_argument("--context", help="kubeconfig context (default: the current one)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(prog="kubeloop", description="Kubernetes-native ML loop.")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the training pipeline locally (kfp.local)")
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

    check = sub.add_parser("validate", help="run the data gate on a file (exit 1 on failure)")
    check.add_argument("--config", required=True, help="project YAML (its validation section)")
    check.add_argument("--data", help="CSV/Parquet path or s3:// URI (default: dataset.path)")
    check.add_argument("--report", help="folder for report.md and Great Expectations' data docs")
    check.add_argument("--store", help="store whose production model's profile is the reference")
    check.add_argument("overrides", nargs="*", metavar="key=value")
    check.set_defaults(func=cmd_validate)

    recal = sub.add_parser(
        "recalibrate",
        help="move a registered model's operating point; registers a version with the same weights",
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

    dep = sub.add_parser(
        "deploy", help="start rolling out a registered version (shadow, canary, replace or shadow-canary)"
    )
    dep.add_argument("--config", required=True, help="project YAML (deployment section)")
    dep.add_argument("--model", required=True, metavar="VERSION", help="registered version to roll out")
    dep.add_argument(
        "--strategy",
        choices=["shadow", "canary", "replace", "shadow-canary"],
        help="default: deployment.strategy",
    )
    dep.add_argument("--store", help="folder or s3://bucket/prefix (default: the config's store)")
    _cluster_options(dep)
    dep.add_argument("overrides", nargs="*", metavar="key=value")
    dep.set_defaults(func=cmd_deploy)

    roll = sub.add_parser(
        "rollout", help="status | step (apply the analysis) | promote | rollback | apply (to the cluster)"
    )
    roll.add_argument("action", choices=["status", "step", "promote", "rollback", "apply"])
    _cluster_options(roll)
    roll.add_argument("--config", required=True, help="project YAML (deployment.analysis thresholds)")
    roll.add_argument("--store", help="folder or s3://bucket/prefix (default: the config's store)")
    roll.add_argument("--reason", help="why, for a promote or rollback by hand (kept in the history)")
    roll.add_argument("overrides", nargs="*", metavar="key=value")
    roll.set_defaults(func=cmd_rollout)

    srv = sub.add_parser(
        "serve", help="serve locally: one microservice per predictor and the gateway, following the rollout"
    )
    srv.add_argument("--config", required=True, help="project YAML (deployment section)")
    srv.add_argument("--store", help="folder or s3://bucket/prefix (default: the config's store)")
    srv.add_argument("--port", type=int, default=8080, help="gateway port on 127.0.0.1 (default 8080)")
    srv.add_argument(
        "--auto",
        action="store_true",
        help="analyse the logs and step the rollout every deployment.analysis.interval_seconds",
    )
    srv.add_argument("--poll", type=float, default=1.0, help="seconds between checks of the deployment")
    srv.add_argument(
        "--drain-seconds", type=float, default=2.0, help="how long a replaced predictor keeps running"
    )
    srv.add_argument("overrides", nargs="*", metavar="key=value")
    srv.set_defaults(func=cmd_serve)

    comp = sub.add_parser("compile", help="compile pipelines to IR YAML and Kubernetes manifests")
    comp.add_argument("--out", required=True, help="output folder")
    comp.add_argument("--config", help="compile this config (default: the shipped CPU and GPU variants)")
    comp.add_argument("--monitor-out", help="also write the drift monitor's CronJob manifests to this folder")
    comp.add_argument("overrides", nargs="*", help="key=value overrides of --config")
    comp.set_defaults(func=cmd_compile)

    models = sub.add_parser("models", help="list registered model versions")
    models.add_argument("name", nargs="?", help="one model (default: all)")
    models.add_argument("--store", default=".kubeloop", help="folder or s3://bucket/prefix")
    models.set_defaults(func=cmd_models)

    stage = sub.add_parser("stage", help="move a model version to a stage")
    stage.add_argument("name")
    stage.add_argument("version")
    stage.add_argument("stage", choices=["production", "canary", "shadow", "archived"])
    stage.add_argument("--reason", default="", help="recorded in the stage history")
    stage.add_argument("--store", default=".kubeloop", help="folder or s3://bucket/prefix")
    stage.set_defaults(func=cmd_stage)

    show = sub.add_parser("config", help="validate a config and print it fully resolved")
    show.add_argument("--config", required=True)
    show.add_argument("overrides", nargs="*", metavar="key=value")
    show.set_defaults(func=cmd_config)

    from pipelines import loop_cli, monitor_cli, submit

    monitor_cli.add_parsers(sub)
    submit.add_parsers(sub)
    loop_cli.add_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `kubeloop` console script."""
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
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
