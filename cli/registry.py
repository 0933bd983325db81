"""`kubeloop models` and `kubeloop stage`: the registered versions and their stages."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from cli.common import EXIT_FAILED, EXIT_USAGE, command, new_console


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
    console = new_console()
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


def add_parsers(sub: Any) -> None:
    """The models and stage subcommands."""
    models = command(
        sub, "models", "list registered model versions", "kubeloop models screening --store .kubeloop"
    )
    models.add_argument("name", nargs="?", help="one model (default: all)")
    models.add_argument("--store", default=".kubeloop", help="folder or s3://bucket/prefix")
    models.set_defaults(func=cmd_models)

    stage = command(
        sub,
        "stage",
        "move a model version to a stage",
        "kubeloop stage screening 2 production --reason 'approved by the screening board'",
    )
    stage.add_argument("name", help="the registered model")
    stage.add_argument("version", help="its version number")
    stage.add_argument(
        "stage", choices=["production", "canary", "shadow", "archived"], help="the stage it moves to"
    )
    stage.add_argument("--reason", default="", help="recorded in the stage history")
    stage.add_argument("--store", default=".kubeloop", help="folder or s3://bucket/prefix")
    stage.set_defaults(func=cmd_stage)
