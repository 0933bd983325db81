"""manifests/base: shipped as generated, valid for Kubernetes and the CRDs, restricted, least privilege."""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path
from typing import Any

import kopf
import pytest
import yaml

from components.deploy.cluster import ApplyError
from operators import handlers
from operators.manifests import write_base
from operators.rollout_runner import Retry, SpecProblem
from tests.conftest import REPO, tool
from tests.k8s import assert_restricted, pod_spec, validate_rendered

BASE = REPO / "manifests" / "base"


@pytest.fixture(scope="module")
def built() -> list[dict[str, Any]]:
    """`kubectl kustomize manifests/base`: what `kubectl apply -k` would send."""
    out = subprocess.run(
        [tool("kubectl"), "kustomize", str(BASE)], capture_output=True, text=True, timeout=120, check=True
    ).stdout
    return [o for o in yaml.safe_load_all(out) if o]


def test_the_shipped_base_is_what_compile_writes(tmp_path: Path) -> None:
    written = write_base(tmp_path)
    assert sorted(p.name for p in written) == sorted(p.name for p in BASE.iterdir())
    for path in written:
        assert path.read_text() == (BASE / path.name).read_text(), f"run `make compile`: {path.name} changed"


def test_every_object_validates_against_kubernetes_and_its_crd(built: list[dict[str, Any]]) -> None:
    validate_rendered(built)
    kinds = {obj["kind"] for obj in built}
    assert {
        "CustomResourceDefinition",
        "Deployment",
        "Role",
        "NetworkPolicy",
        "KopfPeering",
    } <= kinds
    assert {"Pipeline", "PipelineVersion", "Namespace", "RoleBinding", "ServiceAccount"} <= kinds


def test_every_pod_is_restricted_and_asks_for_resources(built: list[dict[str, Any]]) -> None:
    pods = [(obj, pod) for obj in built if (pod := pod_spec(obj)) is not None]
    assert len(pods) == 1  # the operator (monitor CronJobs come from RetrainPolicies: tested there)
    for obj, pod in pods:
        assert_restricted(pod, f"{obj['kind']}/{obj['metadata']['name']}")


def test_rbac_is_namespaced_with_no_wildcards_and_no_secrets(built: list[dict[str, Any]]) -> None:
    assert not [o for o in built if o["kind"] in ("ClusterRole", "ClusterRoleBinding")]
    (role,) = [o for o in built if o["kind"] == "Role"]
    for rule in role["rules"]:
        for field in ("apiGroups", "resources", "verbs"):
            assert "*" not in rule[field], rule
        assert "secrets" not in rule["resources"]
        if "seldondeployments" in rule["resources"]:
            assert "delete" not in rule["verbs"]  # the operator never deletes a serving deployment


def test_each_replica_draws_its_own_peering_priority(monkeypatch: pytest.MonkeyPatch) -> None:
    """kopf pauses every replica when two share a priority; the default would be 0 for all."""
    monkeypatch.delenv("KUBELOOP_OPERATOR_PRIORITY", raising=False)
    drawn = set()
    for _ in range(20):
        settings = kopf.OperatorSettings()
        handlers.configure(settings)
        drawn.add(settings.peering.priority)
    assert len(drawn) >= 19 and min(drawn) > 0
    monkeypatch.setenv("KUBELOOP_OPERATOR_PRIORITY", "7")
    settings = kopf.OperatorSettings()
    handlers.configure(settings)
    assert settings.peering.priority == 7


def test_the_operator_is_single_active_and_wired_to_both_resources() -> None:
    settings = kopf.OperatorSettings()
    handlers.configure(settings)
    assert settings.peering.mandatory and settings.peering.name == handlers.PEERING
    assert settings.scanning.disabled and settings.persistence.finalizer == handlers.FINALIZER
    assert settings.posting.level == logging.INFO
    registry = kopf.get_default_registry()
    changing = {h.id for h in registry._changing.get_all_handlers()}
    spawning = {h.id for h in registry._spawning.get_all_handlers()}
    assert {"rollout_changed", "rollout_deleted", "policy_changed", "policy_deleted"} <= changing
    assert {"rollout_tick", "policy_changed"} <= spawning


def test_errors_are_sorted_into_permanent_and_temporary() -> None:
    def failing(exc: Exception) -> Any:
        def call() -> None:
            raise exc

        return call

    with pytest.raises(kopf.PermanentError, match="fix spec.candidate"):
        handlers.sorted_errors(failing(SpecProblem("fix spec.candidate")))
    with pytest.raises(kopf.TemporaryError, match="not yet") as retried:
        handlers.sorted_errors(failing(Retry("not yet", delay=15)))
    assert retried.value.delay == 15
    with pytest.raises(kopf.TemporaryError, match="RBAC"):
        handlers.sorted_errors(failing(ApplyError("403: RBAC forbids it")))
    assert handlers.sorted_errors(lambda: "ok") == "ok"
    assert not handlers.rollout_owns_deployment({})  # the create handler starts it
    assert handlers.rollout_owns_deployment({"phase": "Progressing"})
    assert handlers.rollout_owns_deployment({"phase": "Promoted", "applied": False})
    assert not handlers.rollout_owns_deployment({"phase": "RolledBack", "applied": True})
    assert not handlers.rollout_owns_deployment({"phase": "Failed"})
