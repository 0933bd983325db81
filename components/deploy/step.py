"""The deploy step: roll the version register just wrote out, as `deployment` says.

Locally it writes the rollout record and the SeldonDeployment to the store (what `kubeloop
serve` follows); compiled for a cluster it also applies the SeldonDeployment with the
Kubernetes API. Skipped unless `deployment.auto_deploy`. A rollout still in progress is left
alone: the new version waits, and the step says how to deploy it later.
"""

from __future__ import annotations

from typing import Any

from components.common.step import StepContext
from components.deploy.rollout_store import deploy, load


def run(ctx: StepContext, version: str, apply_to_cluster: bool) -> str:
    """Deploy `version`; returns what happened (skipped, waiting, or the rollout's phase)."""
    config = ctx.config
    if not config.deployment.auto_deploy:
        ctx.notes.append("deployment.auto_deploy is false: `kubeloop deploy --model VERSION` rolls it out")
        return _record(ctx, {"outcome": "skipped", "version": version})
    try:
        current = load(ctx.store, config.name)
    except ValueError:
        current = None
    if current is not None and current.phase == "progressing":
        ctx.notes.append(
            f"v{current.candidate} is still rolling out ({current.strategy}, {current.weight}%); "
            f"v{version} waits: `kubeloop deploy --model {version}` once that rollout is decided"
        )
        return _record(ctx, {"outcome": "waiting", "version": version, "rolling_out": current.candidate})
    rollout = deploy(ctx.store, config, version)
    record: dict[str, Any] = {
        "outcome": rollout.phase,
        "version": version,
        "strategy": rollout.strategy,
        "production": rollout.production,
        "weight": rollout.weight,
    }
    if apply_to_cluster:
        from components.deploy.cluster import apply_stored

        record["cluster"] = apply_stored(ctx.store, config.name)
    ctx.metrics["candidate_weight"] = float(rollout.weight)
    return _record(ctx, record)


def _record(ctx: StepContext, record: dict[str, Any]) -> str:
    ctx.store.write_json(ctx.key("deploy.json"), record)
    return str(record["outcome"])
