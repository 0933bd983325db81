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
from operators.crds import API_VERSION, monitoring_field, policy_fields
from operators.rollout import SpecError
from operators.spec_schema import config_value

FIELDS = policy_fields()
"""Spec group -> camelCase name -> dotted path under the config's `monitoring` (derived from it)."""


def monitoring_section(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The config's `monitoring` keys the spec sets (camelCase to the config's names)."""
    section: dict[str, Any] = {}
    for group, names in FIELDS.items():
        given = spec.get(group) or {}
        for key, path in names.items():
            if key not in given:
                continue
            owner, name = monitoring_field(path)
            *parents, _ = path.split(".")
            target = section
            for parent in parents:
                target = target.setdefault(parent, {})
            target[name] = config_value(owner.model_fields[name].annotation, copy.deepcopy(given[key]))
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
