"""Carrying out a RetrainPolicy: the owned monitor CronJob, the scheduled retraining, the status."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from components.common.config import KubeloopConfig
from components.common.images import IMAGE
from components.common.kfp_client import api_error, create_recurring_run, kfp_client, recurring_run
from components.common.monitoring_config import duration_seconds
from components.common.store import NotFoundError, Store, open_store
from operators.cluster import Cluster
from operators.retrain import SpecError, owned_objects, policy_config, status_from_monitor
from operators.rollout import condition, with_condition
from operators.rollout_runner import Retry, refuse, waiting

KIND = "RetrainPolicy"
KfpFactory = Callable[[str], Any]


def run_policy(
    body: Mapping[str, Any],
    cluster: Cluster,
    stores: Callable[[str], Store] = open_store,
    kfp: KfpFactory = kfp_client,
    image: str = IMAGE,
    now: datetime | None = None,
) -> dict[str, Any]:
    """One reconcile of a RetrainPolicy; safe to repeat. Returns the status it wrote.

    Raises:
        SpecProblem: The spec or its config cannot work (status and Event say why).
        Retry: The ConfigMap, the store or the KFP API is not there yet.
    """
    now = now or datetime.now(UTC)
    namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
    spec = body.get("spec") or {}
    previous = dict(body.get("status") or {})
    ref = spec.get("config") or {}
    config_name, key = str(ref.get("configMap", "")), str(ref.get("key") or "config.yaml")
    found = cluster.get("v1", "ConfigMap", namespace, config_name)
    if found is None:
        raise waiting(
            cluster,
            body,
            "ConfigMapMissing",
            f"ConfigMap {namespace}/{config_name} does not exist yet: kubectl -n {namespace} create "
            f"configmap {config_name} --from-file={key}=PATH/TO/config.yaml (or fix spec.config.configMap)",
            now,
        )
    text = (found.get("data") or {}).get(key)
    if text is None:
        keys = ", ".join(sorted(found.get("data") or {})) or "none"
        raise refuse(
            cluster, body, "ConfigKeyMissing", f"ConfigMap {config_name} has no key {key} (keys: {keys})", now
        )
    try:
        config = policy_config(spec, text, f"ConfigMap {namespace}/{config_name}[{key}]")
    except SpecError as exc:
        raise refuse(cluster, body, "InvalidConfig", str(exc), now) from None
    objects = owned_objects(body, config, image)
    for obj in objects:
        cluster.apply(obj)
    recurring = _recurring_run(body, config, kfp, previous.get("recurringRun"), cluster, now)
    try:
        monitor = _monitor_status(stores(config.store), config)
    except (OSError, RuntimeError, ValueError) as exc:
        raise waiting(cluster, body, "StoreUnavailable", f"cannot read {config.store}: {exc}", now) from None
    status = status_from_monitor(*monitor, objects[1]["metadata"]["name"], recurring)
    conditions = with_condition(
        previous.get("conditions") or [], condition("SpecValid", True, "Accepted", "spec is valid", now)
    )
    ready = "monitor CronJob in place" + (", scheduled retraining in place" if recurring else "")
    status["conditions"] = with_condition(conditions, condition("Ready", True, "Monitoring", ready, now))
    if body["metadata"].get("generation") is not None:
        status["observedGeneration"] = body["metadata"]["generation"]
    dropped = bool(previous.get("recurringRun")) and not recurring
    if any(previous.get(k) != v for k, v in status.items()) or dropped:
        if dropped:
            status["recurringRun"] = None  # a merge patch removes the key
        cluster.patch_status(KIND, namespace, name, status)
    return status


def _monitor_status(store: Store, config: KubeloopConfig) -> tuple[Any, dict[str, Any] | None]:
    from components.monitor.check import window_prefix
    from components.monitor.monitor import load_state
    from components.monitor.traffic import Window

    state = load_state(store, config.name)
    if state.watermark is None:
        return state, None
    window = Window(
        state.watermark - timedelta(seconds=duration_seconds(config.monitoring.window)), state.watermark
    )
    try:
        decision = json.loads(store.read_text(f"{window_prefix(config.name, window)}/decision.json"))
    except NotFoundError:
        decision = None
    return state, decision


def _recurring_run(
    body: Mapping[str, Any],
    config: KubeloopConfig,
    kfp: KfpFactory,
    current: str | None,
    cluster: Cluster,
    now: datetime,
) -> str | None:
    """Make the KFP recurring run match spec.retraining.schedule; its id (None without a schedule)."""
    host = body["spec"]["kfpHost"]
    cron = config.monitoring.retraining.schedule
    if not cron and not current:
        return None
    try:
        client = kfp(host)
        if not cron:
            _delete_recurring(client, str(current))
            return None
        return ensure_recurring_run(client, config, cron)
    except Exception as exc:  # noqa: BLE001 - API and network errors: retry later, and say so
        reason = api_error(exc, host)
        if reason is None and not isinstance(exc, ValueError):
            raise
        raise waiting(cluster, body, "PipelinesUnavailable", reason or str(exc), now) from None


def ensure_recurring_run(client: Any, config: KubeloopConfig, cron: str) -> str:
    """The id of the recurring retraining run with this schedule, created (or replaced) as needed."""
    job = recurring_run(config, "retraining", cron)
    flt = json.dumps(
        {"predicates": [{"operation": "EQUALS", "key": "display_name", "stringValue": job["job_name"]}]}
    )
    existing = client.list_recurring_runs(filter=flt, page_size=10).recurring_runs or []
    for found in existing:
        schedule = getattr(getattr(found.trigger, "cron_schedule", None), "cron", None)
        if schedule == job["cron_expression"] and found.status != "DISABLED":
            return str(found.recurring_run_id)
        client.delete_recurring_run(found.recurring_run_id)  # an old schedule: replaced below
    return create_recurring_run(client, config, job, config.monitoring.trigger.pipeline_version)


def _delete_recurring(client: Any, recurring_run_id: str) -> None:
    from kfp_server_api.exceptions import ApiException

    try:
        client.delete_recurring_run(recurring_run_id)
    except ApiException as exc:
        if exc.status != 404:
            raise


def finalize_policy(body: Mapping[str, Any], kfp: KfpFactory = kfp_client) -> str:
    """On delete: remove the recurring run (the CronJob and ConfigMap go with their owner).

    Raises:
        Retry: The KFP API cannot be reached; the finalizer stays until it can.
    """
    current = (body.get("status") or {}).get("recurringRun")
    if not current:
        return "nothing to clean up outside the cluster"
    host = body["spec"]["kfpHost"]
    try:
        _delete_recurring(kfp(host), str(current))
    except Exception as exc:  # noqa: BLE001 - keep the finalizer until the API answers
        reason = api_error(exc, host)
        if reason is None:
            raise
        raise Retry(f"cannot delete recurring run {current}: {reason}") from None
    return f"deleted recurring run {current}"
