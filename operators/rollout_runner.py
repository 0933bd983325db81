"""Carrying out a ModelRollout plan: status first, then the SeldonDeployment, then the stages.

The decision is written to the status before anything follows it, so an operator that dies
in between finds the decision on restart and converges the cluster to it; applying what is
already there writes nothing. Errors are sorted for kopf: `SpecProblem` (fix the spec; an
Event and a False condition say how) and `Retry` (the cluster or the store may recover).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from components.common.registry import Registry
from components.common.store import Store, open_store
from components.deploy.rollout import Rollout
from components.deploy.rollout_store import analyse_logs
from components.deploy.seldondeployment import render_seldondeployment, settings_of
from operators.cluster import Cluster
from operators.rollout import RolloutPlan, SpecError, condition, parse_spec, reconcile, with_condition

SDEP_API = "machinelearning.seldon.io/v1"
KIND = "ModelRollout"
StoreOpener = Callable[[str], Store]


class SpecProblem(Exception):
    """The resource cannot work as written (kopf.PermanentError)."""


class Retry(Exception):
    """Something outside the spec is not there yet or failed; try again after `delay` seconds."""

    def __init__(self, message: str, delay: float = 60.0) -> None:
        super().__init__(message)
        self.delay = delay


def _where(body: Mapping[str, Any]) -> tuple[str, str]:
    return body["metadata"]["namespace"], body["metadata"]["name"]


def refuse(
    cluster: Cluster, body: Mapping[str, Any], reason: str, message: str, now: datetime
) -> SpecProblem:
    """Mark the spec invalid (status, condition, Event); the error for the handler to raise."""
    namespace, name = _where(body)
    status = dict(body.get("status") or {})
    conditions = with_condition(
        status.get("conditions") or [], condition("SpecValid", False, reason, message, now)
    )
    conditions = with_condition(conditions, condition("Ready", False, reason, message, now))
    if conditions != status.get("conditions"):  # said once, not again at every timer tick
        patch: dict[str, Any] = {"conditions": conditions}
        if body["kind"] == KIND:
            patch["phase"] = "Failed"
            patch["lastReason"] = message
        cluster.patch_status(body["kind"], namespace, name, patch)
        cluster.event(dict(body), "Warning", reason, message)
    return SpecProblem(message)


def waiting(cluster: Cluster, body: Mapping[str, Any], reason: str, message: str, now: datetime) -> Retry:
    """Say in the Ready condition what is awaited; the error for the handler to raise."""
    namespace, name = _where(body)
    conditions = with_condition(
        (body.get("status") or {}).get("conditions") or [], condition("Ready", False, reason, message, now)
    )
    if conditions != (body.get("status") or {}).get("conditions"):
        cluster.patch_status(body["kind"], namespace, name, {"conditions": conditions})
    return Retry(message)


def run_rollout(
    body: Mapping[str, Any],
    cluster: Cluster,
    stores: StoreOpener = open_store,
    now: datetime | None = None,
) -> RolloutPlan:
    """One reconcile of a ModelRollout; safe to repeat at any point.

    Raises:
        SpecProblem: The spec, or the SeldonDeployment it names, cannot work.
        Retry: The SeldonDeployment or the store is not reachable yet.
    """
    now = now or datetime.now(UTC)
    namespace, name = _where(body)
    status = dict(body.get("status") or {})
    try:
        spec = parse_spec(body.get("spec") or {})
    except SpecError as exc:
        raise refuse(cluster, body, "InvalidSpec", str(exc), now) from None
    live = cluster.get(SDEP_API, "SeldonDeployment", namespace, spec.seldon_deployment)
    if live is None:
        raise waiting(
            cluster,
            body,
            "SeldonDeploymentMissing",
            f"SeldonDeployment {namespace}/{spec.seldon_deployment} does not exist yet: the training "
            "pipeline's deploy step creates it (deployment.auto_deploy), or fix spec.seldonDeployment",
            now,
        )
    try:
        model, settings = settings_of(live)
    except ValueError as exc:
        raise refuse(cluster, body, "ForeignSeldonDeployment", str(exc), now) from None
    if model != spec.model:
        message = (
            f"SeldonDeployment {spec.seldon_deployment} serves {model}, not {spec.model}: fix spec.model"
        )
        raise refuse(cluster, body, "ModelMismatch", message, now)
    uri = spec.store or settings.store_uri
    try:
        store = stores(uri)
        registry = Registry(store)
        versions = registry.versions(model)
        production = registry.champion(model)
    except (OSError, RuntimeError) as exc:
        raise waiting(
            cluster, body, "StoreUnavailable", f"cannot read the registry in {uri}: {exc}", now
        ) from None
    if spec.candidate not in versions:
        known = ", ".join(versions) or "none"
        message = (
            f"{model} has no ready version {spec.candidate} in {uri} (ready: {known}): fix spec.candidate"
        )
        raise refuse(cluster, body, "UnknownVersion", message, now)

    def judge(rollout: Rollout) -> Any:
        return analyse_logs(store, model, rollout, spec.analysis, now)

    plan = reconcile(spec, status, production, now, judge, body["metadata"].get("generation"))
    if plan.status != status:
        cluster.patch_status(KIND, namespace, name, plan.status)
    if plan.converge:
        _converge(cluster, plan, spec.seldon_deployment, namespace, registry, settings, model)
        if plan.superseded:
            registry.set_stage(model, plan.superseded, "archived", reason=f"superseded by v{spec.candidate}")
        if not plan.status.get("applied"):
            plan.status["applied"] = True
            cluster.patch_status(KIND, namespace, name, {"applied": True})
    for kind, reason, message in plan.events:
        cluster.event(dict(body), kind, reason, message)
    return plan


def _converge(
    cluster: Cluster,
    plan: RolloutPlan,
    sdep_name: str,
    namespace: str,
    registry: Registry,
    settings: Any,
    model: str,
) -> None:
    from components.deploy.rollout import apply_stages

    predictors = plan.rollout.predictors()
    if predictors:
        sdep = render_seldondeployment(sdep_name, namespace, model, predictors, settings)
        cluster.apply(sdep)
    stage = registry.stage_of(model, plan.rollout.candidate)
    wanted = {"promoted": "production", "rolled_back": "archived"}.get(plan.rollout.phase)
    if wanted is None or stage != wanted:
        apply_stages(registry, plan.rollout)


def finalize_rollout(body: Mapping[str, Any], cluster: Cluster, stores: StoreOpener = open_store) -> str:
    """On delete: a rollout still in progress gives the deployment back to production.

    Returns what was done, for the log. A finished rollout owns nothing any more.
    """
    namespace, _ = _where(body)
    status = dict(body.get("status") or {})
    if status.get("phase") != "Progressing":
        return f"nothing to clean up ({status.get('phase') or 'never started'})"
    try:
        spec = parse_spec(body.get("spec") or {})
    except SpecError:
        return "nothing to clean up (invalid spec)"
    live = cluster.get(SDEP_API, "SeldonDeployment", namespace, spec.seldon_deployment)
    if live is None:
        return f"SeldonDeployment {spec.seldon_deployment} is gone"
    model, settings = settings_of(live)
    production = status.get("production")
    if production:
        sdep = render_seldondeployment(
            spec.seldon_deployment, namespace, model, [_main(str(production))], settings
        )
        cluster.apply(sdep)
    registry = Registry(stores(spec.store or settings.store_uri))
    if registry.stage_of(model, str(status["candidate"])) in ("canary", "shadow"):
        registry.set_stage(
            model, str(status["candidate"]), "archived", reason="ModelRollout deleted before a verdict"
        )
    cluster.event(
        dict(body), "Normal", "Aborted", f"v{status['candidate']} removed; v{production} serves all traffic"
    )
    return f"v{status['candidate']} removed from {spec.seldon_deployment}"


def _main(version: str) -> Any:
    from components.deploy.seldondeployment import Predictor

    return Predictor("main", version)
