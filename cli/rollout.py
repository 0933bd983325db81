"""`kubeloop deploy` and `kubeloop rollout`: start, step, decide and apply a rollout."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from cli.common import EXIT_FAILED, OVERRIDES_HELP, command, config_from_args
from components.common.config import KubeloopConfig


def _print_rollout(rollout: Any) -> None:
    print(
        f"{rollout.model}: v{rollout.candidate} {rollout.strategy} beside "
        f"v{rollout.production or '-'}: {rollout.phase}, candidate traffic {rollout.weight}%"
    )


def cmd_deploy(args: argparse.Namespace) -> int:
    """Start rolling out a registered version (local mode: state and SeldonDeployment in the store)."""
    config = config_from_args(args)
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
    config = config_from_args(args)
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


def _cluster_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--cluster",
        action="store_true",
        help="also apply the SeldonDeployment with the Kubernetes API (in-cluster account or kubeconfig)",
    )
    parser.add_argument("--context", help="kubeconfig context (default: the current one)")


def add_parsers(sub: Any) -> None:
    """The deploy and rollout subcommands."""
    dep = command(
        sub,
        "deploy",
        "start rolling out a registered version (shadow, canary, replace or shadow-canary)",
        "kubeloop deploy --config examples/screening/config.yaml --model 2 --strategy shadow-canary",
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
    dep.add_argument("overrides", nargs="*", metavar="key=value", help=OVERRIDES_HELP)
    dep.set_defaults(func=cmd_deploy)

    roll = command(
        sub,
        "rollout",
        "status | step (apply the analysis) | promote | rollback | apply (to the cluster)",
        "kubeloop rollout status --config examples/screening/config.yaml",
    )
    roll.add_argument(
        "action",
        choices=["status", "step", "promote", "rollback", "apply"],
        help="status: show it; step: apply the analysis; promote, rollback: by hand; apply: to the cluster",
    )
    _cluster_options(roll)
    roll.add_argument("--config", required=True, help="project YAML (deployment.analysis thresholds)")
    roll.add_argument("--store", help="folder or s3://bucket/prefix (default: the config's store)")
    roll.add_argument("--reason", help="why, for a promote or rollback by hand (kept in the history)")
    roll.add_argument("overrides", nargs="*", metavar="key=value", help=OVERRIDES_HELP)
    roll.set_defaults(func=cmd_rollout)
