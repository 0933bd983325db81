"""`kubeloop compile`: every pipeline as KFP IR YAML and Kubernetes manifests, and the monitor's CronJob."""

from __future__ import annotations

import argparse
from typing import Any

from cli.common import command
from components.common.config_loader import load_config


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


def add_parsers(sub: Any) -> None:
    """The compile subcommand."""
    comp = command(
        sub,
        "compile",
        "compile pipelines to IR YAML and Kubernetes manifests",
        "kubeloop compile --out manifests/pipelines --monitor-out manifests/monitor",
    )
    comp.add_argument("--out", required=True, help="output folder")
    comp.add_argument("--config", help="compile this config (default: the shipped CPU and GPU variants)")
    comp.add_argument("--monitor-out", help="also write the drift monitor's CronJob manifests to this folder")
    comp.add_argument("overrides", nargs="*", help="key=value overrides of --config")
    comp.set_defaults(func=cmd_compile)
