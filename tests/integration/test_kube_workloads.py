"""What the steps and the operator write through the Kubernetes Python client, on a real API server.

The deploy step's SeldonDeployment apply (create, unchanged, patch, a real conflict with a
concurrent writer, a refusal with its hint), the operator's `KubeCluster` (ConfigMaps,
CronJobs, the status subresource), and the train step's PyTorchJob for `training.nodes > 1`,
created and followed while this test plays the Training Operator and sets its status.
The shared upstream CRDs (Seldon v1.18.2, PyTorchJob v1) validate every object.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.kubecluster import ControlPlane

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
NAMESPACE = "workloads"
SELDON = ("machinelearning.seldon.io", "v1", NAMESPACE, "seldondeployments")


@pytest.fixture(scope="module")
def cluster(kube_cluster: ControlPlane) -> Iterator[ControlPlane]:
    kube_cluster.install_prerequisites()
    kube_cluster.apply_kustomization(REPO / "manifests" / "overlays" / "dev")
    kube_cluster.kubectl("create", "namespace", NAMESPACE)
    yield kube_cluster


@pytest.fixture
def api(cluster: ControlPlane, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The CustomObjectsApi the steps build (components.common.cluster), from KUBECONFIG."""
    from components.common.cluster import custom_objects_api

    monkeypatch.setenv("KUBECONFIG", str(cluster.kubeconfig))
    return custom_objects_api()


def _sdep(weight: int, name: str = "screening") -> dict[str, Any]:
    from components.deploy.seldondeployment import render_seldondeployment, rollout_predictors

    return render_seldondeployment(
        name, NAMESPACE, "screening", rollout_predictors("canary", "3", "4", weight)
    )


def _traffic(live: dict[str, Any]) -> dict[str, int]:
    return {p["name"]: p.get("traffic", 0) for p in live["spec"]["predictors"]}


def test_a_seldondeployment_is_created_left_alone_and_patched(api: Any) -> None:
    from components.deploy.cluster import apply_seldondeployment

    action, live = apply_seldondeployment(api, _sdep(10))
    assert action == "created" and _traffic(live) == {"main": 90, "canary": 10}
    assert apply_seldondeployment(api, _sdep(10))[0] == "unchanged"
    action, live = apply_seldondeployment(api, _sdep(50))
    assert action == "patched" and _traffic(live) == {"main": 50, "canary": 50}
    action, live = apply_seldondeployment(api, _sdep(100))  # the canary leaves: a merge patch replaces lists
    stored = api.get_namespaced_custom_object(*SELDON, "screening")
    assert action == "patched" and _traffic(stored) == {"main": 100}
    assert stored["spec"] == _sdep(100)["spec"]


class _RacingApi:
    """The real client, plus a second writer that changes the object between our read and our
    patch, once: the server answers the stale patch with a real 409."""

    def __init__(self, api: Any) -> None:
        self.api = api
        self.raced = 0

    def get_namespaced_custom_object(self, *args: Any) -> Any:
        live = self.api.get_namespaced_custom_object(*args)
        if not self.raced:
            self.raced += 1
            other = {"metadata": {"annotations": {"other-writer": "was-here"}}}
            self.api.patch_namespaced_custom_object(*args, other)
        return live

    def __getattr__(self, name: str) -> Any:
        return getattr(self.api, name)


def test_a_conflicting_write_is_decided_again_on_a_fresh_read(api: Any) -> None:
    from components.deploy.cluster import apply_seldondeployment

    apply_seldondeployment(api, _sdep(10, "raced"))
    racing = _RacingApi(api)
    waits: list[float] = []
    action, live = apply_seldondeployment(racing, _sdep(50, "raced"), sleep=waits.append)
    assert racing.raced == 1 and len(waits) == 1  # one 409, then the write on a fresh read
    assert action == "patched" and _traffic(live) == {"main": 50, "canary": 50}
    assert live["metadata"]["annotations"]["other-writer"] == "was-here"  # the other write kept


def test_an_object_the_server_refuses_gets_a_readable_error(api: Any) -> None:
    from components.deploy.cluster import ApplyError, apply_seldondeployment

    bad = _sdep(10, "refused")
    bad["spec"]["predictors"][0]["traffic"] = "ninety"  # the CRD says integer
    with pytest.raises(ApplyError, match=r"422 .*rejected the object.*traffic"):
        apply_seldondeployment(api, bad)


def test_the_operators_cluster_writes_configmaps_cronjobs_and_status(cluster: ControlPlane, api: Any) -> None:
    from operators.cluster import KubeCluster

    kube = KubeCluster()
    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "resolved", "namespace": "kubeloop"},
        "data": {"config.yaml": "name: screening\n"},
    }
    assert kube.get("v1", "ConfigMap", "kubeloop", "resolved") is None
    assert kube.apply(config_map) == "created"
    assert kube.apply(config_map) == "unchanged"
    config_map["data"]["config.yaml"] = "name: screening\nseed: 7\n"
    assert kube.apply(config_map) == "patched"
    assert kube.get("v1", "ConfigMap", "kubeloop", "resolved")["data"] == config_map["data"]  # type: ignore[index]
    assert kube.delete("v1", "ConfigMap", "kubeloop", "resolved") is True
    assert kube.delete("v1", "ConfigMap", "kubeloop", "resolved") is False

    from components.common.config_loader import load_config
    from components.monitor.cronjob import cron_job

    config = load_config(REPO / "examples" / "screening" / "config.yaml", ["store=s3://kubeloop"])
    job = cron_job(config, "kubeloop", "http://kfp:8888", "ghcr.io/kubeloop/kubeloop:0.1.0")
    assert kube.apply(job) == "created"
    assert kube.apply(job) == "unchanged"  # the server's defaults do not read as a change

    rollout = {
        "apiVersion": "kubeloop.dev/v1alpha1",
        "kind": "ModelRollout",
        "metadata": {"name": "status-check", "namespace": "kubeloop"},
        "spec": {"model": "screening", "seldonDeployment": "screening", "candidate": "2"},
    }
    cluster.kubectl("apply", "--server-side", "-f", "-", stdin=json.dumps(rollout))
    kube.patch_status("ModelRollout", "kubeloop", "status-check", {"phase": "Progressing", "weight": 10})
    read = kube.get("kubeloop.dev/v1alpha1", "ModelRollout", "kubeloop", "status-check")
    assert read is not None and read["status"]["phase"] == "Progressing" and read["status"]["weight"] == 10
    table = cluster.kubectl("-n", "kubeloop", "get", "mro", "status-check").splitlines()
    assert "Progressing" in table[1] and "10" in table[1].split()


def _pytorchjob(run_id: str) -> dict[str, Any]:
    from components.common.training_config import TrainingConfig
    from components.train.pytorchjob import render_pytorchjob

    return render_pytorchjob(
        TrainingConfig(nodes=2),
        run_id=run_id,
        namespace=NAMESPACE,
        image="ghcr.io/kubeloop/kubeloop-cuda:0.1.0",
        store_uri="s3://kubeloop",
        spec_key=f"runs/{run_id}/train/job/spec.json",
    )


def _follow(job: dict[str, Any], messages: list[str]) -> tuple[threading.Thread, list[BaseException]]:
    from components.train.pytorchjob import run_pytorchjob

    errors: list[BaseException] = []

    def run() -> None:
        try:
            run_pytorchjob(job, log=messages.append, timeout_s=60, poll_s=0.2)
        except BaseException as error:  # handed to the test thread
            errors.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, errors


def _set_status(api: Any, name: str, *conditions: tuple[str, str]) -> None:
    """What the Training Operator writes: conditions on the status subresource."""
    status = {"conditions": [{"type": t, "status": "True", "reason": t, "message": m} for t, m in conditions]}
    api.patch_namespaced_custom_object_status(
        "kubeflow.org", "v1", NAMESPACE, "pytorchjobs", name, {"status": status}
    )


def _wait_for(condition: Any, what: str) -> None:
    import time

    deadline = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


@pytest.mark.parametrize("outcome", ["Succeeded", "Failed"])
def test_the_train_steps_pytorchjob_is_created_and_followed(
    api: Any, monkeypatch: pytest.MonkeyPatch, outcome: str
) -> None:
    job = _pytorchjob(f"20261207-{outcome.lower()}")
    name = job["metadata"]["name"]
    messages: list[str] = []
    thread, errors = _follow(job, messages)

    def created() -> bool:
        try:
            api.get_namespaced_custom_object("kubeflow.org", "v1", NAMESPACE, "pytorchjobs", name)
            return True
        except Exception:
            return False

    _wait_for(created, "the PyTorchJob")
    live = api.get_namespaced_custom_object("kubeflow.org", "v1", NAMESPACE, "pytorchjobs", name)
    assert set(live["spec"]["pytorchReplicaSpecs"]) == {"Master", "Worker"}
    _set_status(api, name, ("Created", "2 pods created"), ("Running", "rank 0 at epoch 1"))
    _wait_for(lambda: any("Running" in m for m in messages), "the Running message")
    _set_status(api, name, ("Created", "x"), ("Running", "y"), (outcome, f"job {outcome.lower()}"))
    thread.join(timeout=30)
    assert not thread.is_alive()
    if outcome == "Succeeded":
        assert errors == []
    else:
        assert len(errors) == 1 and "failed: job failed" in str(errors[0])


def test_a_retried_step_follows_the_job_it_already_created(api: Any) -> None:
    job = _pytorchjob("20261207-retried")
    name = job["metadata"]["name"]
    api.create_namespaced_custom_object("kubeflow.org", "v1", NAMESPACE, "pytorchjobs", job)
    _set_status(api, name, ("Succeeded", "done before the retry looked"))
    messages: list[str] = []
    thread, errors = _follow(job, messages)  # a 409 on create: the job is followed, not duplicated
    thread.join(timeout=30)
    assert not thread.is_alive() and errors == [] and any("done before" in m for m in messages)
