"""RetrainPolicy reconcile, pure: the project config a policy means, the objects it owns, its status.

A policy is the monitoring section of a project's config, written as a resource: the
operator merges its spec over the config in the named ConfigMap, and owns what runs it:
the monitor CronJob with its resolved config (both garbage-collected with the policy
through ownerReferences) and, with spec.retraining.schedule, a KFP recurring run (deleted
by the finalizer). The monitor writes its watermark and decisions to the store; the
status mirrors them, so `kubectl get retrainpolicies` shows the last check and run.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import yaml

from components.common.config import KubeloopConfig
from components.common.config_loader import ConfigError, validate_mapping
from components.monitor.cronjob import config_map, cron_job
from operators.crds import API_VERSION
from operators.rollout import SpecError

FIELDS: dict[str, dict[str, str]] = {
    "drift": {
        "window": "window",
        "lateSeconds": "late_seconds",
        "minRows": "min_rows",
        "driftShare": "drift_share",
        "predictionDrift": "prediction_drift",
    },
    "trigger": {
        "on": "on",
        "cooldownMinutes": "cooldown_minutes",
        "maxRunsPerDay": "max_runs_per_day",
        "dryRun": "dry_run",
    },
    "retraining": {
        "trafficWindow": "traffic_window",
        "trafficShare": "traffic_share",
        "deploy": "deploy",
        "split": "split",
        "schedule": "schedule",
        "warmStart": "warm_start",
    },
}


def monitoring_section(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The config's `monitoring` keys the spec sets (camelCase to the config's names)."""
    section: dict[str, Any] = {}
    drift = spec.get("drift") or {}
    for key, name in FIELDS["drift"].items():
        if key in drift:
            section[name] = drift[key]
    if "features" in drift:
        section["features"] = copy.deepcopy(drift["features"])
    if "predictors" in (spec.get("logs") or {}):
        section["predictors"] = list(spec["logs"]["predictors"])
    if "schedule" in (spec.get("check") or {}):
        section["schedule"] = spec["check"]["schedule"]
    trigger = {
        name: (spec.get("trigger") or {})[key]
        for key, name in FIELDS["trigger"].items()
        if key in (spec.get("trigger") or {})
    }
    retraining = spec.get("retraining") or {}
    if retraining.get("pipelineVersion"):
        trigger["pipeline_version"] = retraining["pipelineVersion"]
    if retraining.get("experiment"):
        trigger["experiment"] = retraining["experiment"]
    if trigger:
        section["trigger"] = trigger
    moved = {name: retraining[key] for key, name in FIELDS["retraining"].items() if key in retraining}
    if moved:
        section["retraining"] = moved
    return section


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        out[key] = (
            _merge(out[key], value)
            if isinstance(value, Mapping) and isinstance(out.get(key), dict)
            else value
        )
    return out


def policy_config(spec: Mapping[str, Any], config_text: str, source: str) -> KubeloopConfig:
    """The project config with the policy's monitoring settings (and store) over it.

    Raises:
        SpecError: The ConfigMap's YAML or the merged config is invalid, or names another model;
            the message lists every problem and where it comes from.
    """
    try:
        raw = yaml.safe_load(config_text) or {}
    except yaml.YAMLError as exc:
        raise SpecError(f"{source} is not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise SpecError(f"{source} must hold a mapping (name:, dataset:, ...)")
    raw = _merge(raw, {"monitoring": monitoring_section(spec)})
    if spec.get("store"):
        raw["store"] = spec["store"]
    try:
        config = validate_mapping(raw, f"{source} with spec.* of the RetrainPolicy")
    except ConfigError as exc:
        raise SpecError(str(exc)) from None
    if config.name != spec.get("model"):
        raise SpecError(
            f"{source} configures {config.name!r}, but spec.model is {spec.get('model')!r}: make them agree"
        )
    if "://" not in config.store:
        raise SpecError(
            f"the store {config.store!r} is a local folder; on a cluster set spec.store (s3://bucket/prefix)"
        )
    return config


def owner_reference(body: Mapping[str, Any]) -> dict[str, Any]:
    """Makes an object garbage-collected with the policy."""
    return {
        "apiVersion": API_VERSION,
        "kind": "RetrainPolicy",
        "name": body["metadata"]["name"],
        "uid": body["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def owned_objects(body: Mapping[str, Any], config: KubeloopConfig, image: str) -> list[dict[str, Any]]:
    """The monitor's ConfigMap and CronJob for this policy, owned by it."""
    spec = body["spec"]
    namespace = body["metadata"]["namespace"]
    objects = [
        config_map(config, namespace),
        cron_job(config, namespace, spec["kfpHost"], (spec.get("check") or {}).get("image") or image),
    ]
    objects[1]["spec"]["suspend"] = bool(spec.get("suspend", False))
    for obj in objects:
        obj["metadata"]["ownerReferences"] = [owner_reference(body)]
        obj["metadata"]["labels"]["kubeloop.dev/retrainpolicy"] = body["metadata"]["name"]
    return objects


def status_from_monitor(
    state: Any, decision: Mapping[str, Any] | None, cron_job_name: str, recurring_run: str | None
) -> dict[str, Any]:
    """The policy's status fields from the monitor's state and its last decision."""
    status: dict[str, Any] = {"cronJob": cron_job_name}
    if recurring_run:
        status["recurringRun"] = recurring_run
    if state.watermark is not None:
        status["lastCheckAt"] = state.watermark.isoformat(timespec="seconds")
    if decision:
        status["lastWindow"] = decision["window"]
        status["lastVerdict"] = decision["action"]
        status["lastReason"] = decision["reason"]
        status["lastFindings"] = list(decision.get("findings") or [])
    if state.trigger.runs:
        run = state.trigger.runs[-1]
        status["lastTriggeredRun"] = run["run_id"]
        status["lastTriggeredStatus"] = "dry_run" if run.get("dry_run") else run.get("status", "")
        if run.get("time"):
            status["lastTriggeredAt"] = run["time"]
    return status
