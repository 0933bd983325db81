"""RetrainPolicy reconciles on recorded bodies: owned CronJob and config, scheduled retraining, status."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from components.common.kfp_client import RETRAINING_PIPELINE, TOKEN_ENV, TOKEN_PATH_ENV, kfp_client
from components.common.store import LocalStore
from components.monitor.monitor import monitor_pass
from operators.crds import retrain_policy_crd
from operators.retrain_runner import finalize_policy, run_policy
from operators.rollout_runner import Retry, SpecProblem
from tests.conftest import REPO
from tests.k8s import apply_defaults, crd_schema, validate_custom
from tests.kfp_api import FakeKfpApi
from tests.monitor_fixtures import RecordingLauncher, log_lines, register_production, write_log
from tests.operator_fakes import FakeCluster

NS = "kubeloop"
EXAMPLE = REPO / "examples" / "cluster" / "retrainpolicy.yaml"
SCREENING = REPO / "examples" / "screening" / "config.yaml"


@pytest.fixture()
def api(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[FakeKfpApi]:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv(TOKEN_PATH_ENV, str(tmp_path / "no-token"))
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    with FakeKfpApi() as server:
        server.add_pipeline(RETRAINING_PIPELINE)
        yield server


def policy(api: FakeKfpApi, **spec: Any) -> dict[str, Any]:
    body = yaml.safe_load(EXAMPLE.read_text())
    body["spec"].update(kfpHost=api.url, **spec)
    body = apply_defaults(body, crd_schema(retrain_policy_crd()))
    assert validate_custom(body, retrain_policy_crd()) == []
    return dict(body)


def world(api: FakeKfpApi, **spec: Any) -> FakeCluster:
    cluster = FakeCluster()
    cluster.add(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "screening-config", "namespace": NS},
            "data": {"config.yaml": SCREENING.read_text()},
        }
    )
    cluster.add(policy(api, **spec))
    return cluster


def reconcile(cluster: FakeCluster, api: FakeKfpApi, store: LocalStore, now: datetime | None = None) -> Any:
    body = cluster.body("RetrainPolicy", NS, "screening")
    return run_policy(body, cluster, lambda uri: store, kfp_client, now=now)


def test_the_policy_owns_a_valid_monitor_cronjob_with_its_settings(api: FakeKfpApi, tmp_path: Path) -> None:
    cluster = world(api)
    store = LocalStore(tmp_path / "store")
    status = reconcile(cluster, api, store)
    job = cluster.get("batch/v1", "CronJob", NS, "screening-monitor")
    config_map = cluster.get("v1", "ConfigMap", NS, "screening-monitor-config")
    assert job is not None and config_map is not None
    for obj in (job, config_map):
        kubernetes_validate.validate(obj, "1.35", strict=True)
        (owner,) = obj["metadata"]["ownerReferences"]
        assert owner["kind"] == "RetrainPolicy" and owner["uid"] == "uid-screening" and owner["controller"]
    assert job["spec"]["schedule"] == "5 * * * *" and job["spec"]["suspend"] is False
    args = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--host") + 1] == api.url
    monitoring = yaml.safe_load(config_map["data"]["config.yaml"])["monitoring"]
    assert monitoring["drift_share"] == 0.3 and monitoring["min_rows"] == 200
    assert monitoring["features"]["age"] == {"test": "wasserstein", "threshold": 0.15, "ignore": False}
    assert monitoring["trigger"]["max_runs_per_day"] == 2 and monitoring["retraining"]["deploy"] == "shadow"
    (recurring,) = api.state.recurring_runs.values()
    assert recurring["trigger"] == {"cron_schedule": {"cron": "0 0 3 * * 1"}}
    assert recurring["runtime_config"]["parameters"] == {"trigger": "schedule"}
    assert (
        status["recurringRun"] == recurring["recurring_run_id"] and status["cronJob"] == "screening-monitor"
    )
    assert validate_custom(cluster.body("RetrainPolicy", NS, "screening"), retrain_policy_crd()) == []
    cluster.taken()
    reconcile(cluster, api, store)  # again: nothing changes anywhere
    assert cluster.taken() == [] and len(api.called("POST", "/recurringruns")) == 1


def test_a_new_schedule_replaces_the_recurring_run_and_none_removes_it(
    api: FakeKfpApi, tmp_path: Path
) -> None:
    cluster = world(api)
    store = LocalStore(tmp_path / "store")
    first = reconcile(cluster, api, store)["recurringRun"]
    body = cluster.body("RetrainPolicy", NS, "screening")
    body["spec"]["retraining"]["schedule"] = "0 4 * * 2"
    cluster.add(body)
    second = reconcile(cluster, api, store)["recurringRun"]
    assert second != first and list(api.state.recurring_runs) == [second]
    assert api.state.recurring_runs[second]["trigger"]["cron_schedule"]["cron"] == "0 0 4 * * 2"
    body = cluster.body("RetrainPolicy", NS, "screening")
    del body["spec"]["retraining"]["schedule"]
    cluster.add(body)
    reconcile(cluster, api, store)
    assert api.state.recurring_runs == {}
    assert cluster.body("RetrainPolicy", NS, "screening")["status"]["recurringRun"] is None
    cluster.taken()
    reconcile(cluster, api, store)
    assert cluster.taken() == []


def test_the_status_shows_the_monitors_last_check_and_triggered_run(api: FakeKfpApi, tmp_path: Path) -> None:
    from components.common.config_loader import load_config

    cluster = world(api)
    store = LocalStore(tmp_path / "store")
    version = register_production(store)
    start = datetime(2026, 11, 20, 8, tzinfo=UTC)
    for hour, scanner in enumerate(["A", "B"]):
        at = start + timedelta(hours=hour)
        write_log(store, at, log_lines(at, 600, version, scanner, seed=hour)[0])
    config = load_config(SCREENING, ["monitoring.late_seconds=0"])
    monitor_pass(store, config, RecordingLauncher(), now=start + timedelta(hours=2))
    status = reconcile(cluster, api, store)
    assert status["lastCheckAt"] == "2026-11-20T10:00:00+00:00" and status["lastVerdict"] == "trigger"
    assert status["lastTriggeredRun"] == "retrain-screening-20261120t090000z"
    assert "data_drift" in status["lastFindings"] and status["lastTriggeredStatus"] == "started"
    assert validate_custom(cluster.body("RetrainPolicy", NS, "screening"), retrain_policy_crd()) == []


def test_a_missing_configmap_is_waited_for_and_a_bad_config_refused(api: FakeKfpApi, tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    cluster = world(api, config={"configMap": "not-yet", "key": "config.yaml"})
    with pytest.raises(Retry, match="create configmap not-yet --from-file=config.yaml="):
        reconcile(cluster, api, store)
    ready = cluster.body("RetrainPolicy", NS, "screening")["status"]["conditions"][0]
    assert ready["reason"] == "ConfigMapMissing" and ready["status"] == "False"
    cluster = world(api, model="other")
    with pytest.raises(SpecProblem, match="configures 'screening', but spec.model is 'other'"):
        reconcile(cluster, api, store)
    cluster = world(api)
    body = cluster.body("RetrainPolicy", NS, "screening")
    del body["spec"]["store"]
    cluster.add(body)
    with pytest.raises(SpecProblem, match="local folder; on a cluster set spec.store"):
        reconcile(cluster, api, store)
    (event,) = [w.body for w in cluster.writes if w.verb == "event"]
    assert event["type"] == "Warning" and event["reason"] == "InvalidConfig"
    assert cluster.get("batch/v1", "CronJob", NS, "screening-monitor") is None  # nothing half made


def test_deleting_the_policy_deletes_its_recurring_run(api: FakeKfpApi, tmp_path: Path) -> None:
    cluster = world(api)
    reconcile(cluster, api, LocalStore(tmp_path / "store"))
    body = cluster.body("RetrainPolicy", NS, "screening")
    assert finalize_policy(body, kfp_client).startswith("deleted recurring run")
    assert api.state.recurring_runs == {}
    assert finalize_policy(body, kfp_client).startswith("deleted")  # already gone: still fine
    api.fail("DELETE", f"/recurringruns/{body['status']['recurringRun']}", status=503)
    with pytest.raises(Retry, match="answered 503"):
        finalize_policy(body, kfp_client)


def test_an_unreachable_kfp_api_is_retried_with_the_reason(api: FakeKfpApi, tmp_path: Path) -> None:
    cluster = world(api)
    api.fail("GET", "/recurringruns", status=503)
    with pytest.raises(Retry, match="answered 503"):
        reconcile(cluster, api, LocalStore(tmp_path / "store"))
    ready = cluster.body("RetrainPolicy", NS, "screening")["status"]["conditions"][0]
    assert ready["reason"] == "PipelinesUnavailable"
    assert json.dumps(cluster.get("batch/v1", "CronJob", NS, "screening-monitor"))  # the monitor is in place
