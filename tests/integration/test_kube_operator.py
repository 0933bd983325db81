"""The operator as a real process (`kopf run`) against the real API server, as its own ServiceAccount.

The operator authenticates with a TokenRequest token of `kubeloop-operator` and has exactly
the RBAC of manifests/base; the store is an S3 server on 127.0.0.1 holding the registry and
the request logs. The test writes served traffic into the store and plays Seldon (nothing
runs the predictors); the operator reads it, judges, and patches the SeldonDeployment, the
ModelRollout's status and the registry, as on a cluster. Rollouts are looked at every second
(KUBELOOP_ROLLOUT_TICK_SECONDS) with a 2 s analysis interval, so a walk takes seconds.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.kubecluster import ControlPlane

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
NS = "kubeloop"
OPERATOR = "system:serviceaccount:kubeloop:kubeloop-operator"
WAIT_S = 60.0
"""The longest any one step of the operator may take here (it looks every second)."""


class Operator:
    """`kopf run -m operators.handlers` in its own process group, logging to a file."""

    def __init__(self, kubeconfig: Path, env: dict[str, str], log: Path) -> None:
        self.kubeconfig, self.env, self.log = kubeconfig, env, log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "kopf",
                    "run",
                    "-m",
                    "operators.handlers",
                    f"--namespace={NS}",
                    "--verbose",
                ],
                cwd=REPO,
                env={**self.env, "KUBECONFIG": str(self.kubeconfig)},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def kill(self) -> None:
        """SIGKILL: no chance to tidy up, as when a node dies."""
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.kill()

    def tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""


@pytest.fixture(scope="module")
def world(
    kube_cluster: ControlPlane, s3_server: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    """The platform installed, a registry with versions 1 (production) and 2 in S3, the
    screening SeldonDeployment serving version 1, and the operator running as its ServiceAccount."""
    from components.common.registry import Registry
    from components.common.s3store import S3Store

    folder = tmp_path_factory.mktemp("operator")
    plane = kube_cluster
    plane.install_prerequisites()
    plane.apply_kustomization(REPO / "manifests" / "overlays" / "dev")
    uri = f"s3://kubeloop-operator/{uuid.uuid4().hex[:8]}"
    with _environment(s3_server):
        store = S3Store.from_uri(uri)
        registry = Registry(store)
        for _ in range(2):
            registry.register("screening", {"model.onnx": b"weights"}, {"run_id": "r"})
        registry.set_stage("screening", "1", "production")
    _apply(plane, _sdep(uri, [("main", "1", 100)]))
    token = plane.kubectl("-n", NS, "create", "token", "kubeloop-operator", "--duration=2h").strip()
    kubeconfig = folder / "operator.kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(plane.config_for(OPERATOR, token=token)))
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "KUBELOOP_S3", "KUBECONFIG"))},
        **s3_server,
        "KUBELOOP_ROLLOUT_TICK_SECONDS": "1",
        # A killed replica's peering record blocks the next for this long (60 s by default).
        "KUBELOOP_PEERING_LIFETIME_SECONDS": "5",
        "KUBELOOP_OPERATOR_PRIORITY": "100",  # the second replica below gets 50
        "PYTHONPATH": str(REPO),
    }
    operator = Operator(kubeconfig, env, folder / "operator.log")
    # Other modules' ModelRollouts and RetrainPolicies in kubeloop (read back, printed) are not
    # this operator's to act on; no operator ran, so no finalizer holds them.
    plane.kubectl("-n", NS, "delete", "modelrollouts,retrainpolicies", "--all", "--timeout=60s")
    operator.start()
    try:
        yield {"plane": plane, "uri": uri, "s3": s3_server, "operator": operator, "kubeconfig": kubeconfig}
    finally:
        # While the operator runs, so that its finalizers let go: nothing is left for later modules.
        plane.kubectl_run("-n", NS, "delete", "modelrollouts,retrainpolicies", "--all", "--timeout=60s")
        operator.stop()


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _sdep(uri: str, predictors: list[tuple[str, str, int]]) -> dict[str, Any]:
    from components.deploy.seldondeployment import Predictor, ServingSettings, render_seldondeployment

    settings = ServingSettings(store_uri=uri, image="ghcr.io/kubeloop/kubeloop-serving:0.1.0")
    return render_seldondeployment(
        "screening", NS, "screening", [Predictor(n, v, t) for n, v, t in predictors], settings
    )


def _apply(plane: ControlPlane, obj: dict[str, Any]) -> None:
    plane.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", stdin=json.dumps(obj))


def _rollout(name: str, candidate: str, **spec: Any) -> dict[str, Any]:
    """A canary on guardrails alone (these logs carry no labels), judged every 2 s."""
    return {
        "apiVersion": "kubeloop.dev/v1alpha1",
        "kind": "ModelRollout",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "model": "screening",
            "seldonDeployment": "screening",
            "candidate": candidate,
            "strategy": "canary",
            "steps": [10, 50, 100],
            "analysis": {
                "interval": "2s",
                "minRequests": 300,
                "labelShare": 0,
                "onNoLabels": "guardrails",
                "maxErrorIncrease": 0.01,
            },
            **spec,
        },
    }


def _get(world: dict[str, Any], kind: str, name: str) -> dict[str, Any] | None:
    done = world["plane"].kubectl_run("-n", NS, "get", kind, name, "-o", "json")
    return json.loads(done.stdout) if done.returncode == 0 else None


def _served(world: dict[str, Any]) -> list[tuple[str, str, int | None]]:
    live = _get(world, "seldondeployments.machinelearning.seldon.io", "screening")
    assert live is not None
    return [
        (p["name"], p["graph"]["parameters"][1]["value"], None if p.get("shadow") else p.get("traffic"))
        for p in live["spec"]["predictors"]
    ]


def _until(world: dict[str, Any], check: Callable[[], Any], what: str) -> Any:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}; the operator's log:\n{world['operator'].tail()}")


def _status(world: dict[str, Any], name: str, kind: str = "modelrollouts") -> dict[str, Any]:
    return (_get(world, kind, name) or {}).get("status") or {}


def _traffic(world: dict[str, Any], version_main: str, candidate: str, error_rate: float, seed: int) -> None:
    """Both predictors' served rows, logged now, as the model class writes them."""
    from components.common.s3store import S3Store
    from tests.unit.test_rollout_analysis import traffic
    from tests.unit.test_rollout_operator import log

    with _environment(world["s3"]):
        store = S3Store.from_uri(world["uri"])
        moment = datetime.now(UTC)
        log(store, "main", version_main, traffic("main", 400, seed), moment)  # type: ignore[arg-type]
        canary = traffic("canary", 400, seed + 10, error_rate=error_rate)
        log(store, "canary", candidate, canary, moment)  # type: ignore[arg-type]


def _registry(world: dict[str, Any]) -> Any:
    from components.common.registry import Registry
    from components.common.s3store import S3Store

    with _environment(world["s3"]):
        return Registry(S3Store.from_uri(world["uri"]))


def _events(world: dict[str, Any], name: str) -> list[str]:
    out = world["plane"].kubectl(
        "-n", NS, "get", "events", f"--field-selector=involvedObject.name={name}", "-o", "json"
    )
    return [
        e["reason"]
        for e in sorted(json.loads(out)["items"], key=lambda e: e["metadata"]["creationTimestamp"])
    ]


def test_a_healthy_canary_walks_from_10_to_100_percent(world: dict[str, Any]) -> None:
    _apply(world["plane"], _rollout("canary-2", "2"))
    _until(world, lambda: _served(world) == [("main", "1", 90), ("canary", "2", 10)], "the 10% canary")
    assert _status(world, "canary-2")["phase"] == "Progressing"
    status = _walk(world, "canary-2", "1", "2", 1)
    assert _moves(status) == ["start", "step", "promote"]
    _until(world, lambda: _served(world) == [("main", "2", 100)], "version 2 serving alone")
    assert _registry(world).champion("screening") == "2"
    _until(world, lambda: {"Started", "Stepped", "Promoted"} <= set(_events(world, "canary-2")), "the Events")
    # Every write matched the CRD: kopf reports a status field the server pruned as an inconsistency.
    assert "inconsistencies" not in world["operator"].tail(10**7)


def test_a_failing_canary_goes_back_to_0_percent(world: dict[str, Any]) -> None:
    _registry(world).register("screening", {"model.onnx": b"weights-3"}, {"run_id": "r3"})
    _apply(world["plane"], _rollout("canary-3", "3"))
    _until(world, lambda: _served(world) == [("main", "2", 90), ("canary", "3", 10)], "the 10% canary")
    _traffic(world, "2", "3", 0.2, 7)
    status = _until(
        world,
        lambda: _status(world, "canary-3").get("phase") == "RolledBack" and _status(world, "canary-3"),
        "RolledBack",
    )
    assert status["weight"] == 0 and "error rate" in status["lastReason"]
    _until(world, lambda: _served(world) == [("main", "2", 100)], "production alone again")
    assert _registry(world).stage_of("screening", "3") == "archived"
    _until(world, lambda: "RolledBack" in _events(world, "canary-3"), "the Warning Event")


def test_deleting_a_running_rollout_gives_production_its_traffic_back(world: dict[str, Any]) -> None:
    _registry(world).register("screening", {"model.onnx": b"weights-4"}, {"run_id": "r4"})
    _apply(world["plane"], _rollout("canary-4", "4"))
    _until(world, lambda: _served(world) == [("main", "2", 90), ("canary", "4", 10)], "the 10% canary")
    body = _get(world, "modelrollouts", "canary-4")
    assert body is not None and "kubeloop.dev/finalizer" in body["metadata"]["finalizers"]
    world["plane"].kubectl("-n", NS, "delete", "modelrollout", "canary-4", "--wait=false")
    _until(world, lambda: _get(world, "modelrollouts", "canary-4") is None, "the finalizer to let it go")
    assert _served(world) == [("main", "2", 100)]


def test_a_bad_spec_gets_a_failed_phase_a_condition_and_an_event(world: dict[str, Any]) -> None:
    _apply(world["plane"], _rollout("bad-steps", "2", steps=[50, 10]))
    status = _until(
        world,
        lambda: _status(world, "bad-steps").get("phase") == "Failed" and _status(world, "bad-steps"),
        "Failed",
    )
    valid = next(c for c in status["conditions"] if c["type"] == "SpecValid")
    assert valid["status"] == "False" and "spec.steps" in valid["message"]
    assert _served(world) == [("main", "2", 100)]  # nothing touched
    _until(world, lambda: _events(world, "bad-steps"), "the Warning Event")


def _moves(status: dict[str, Any]) -> list[str]:
    """The rollout's weight changes; holds are left out: a tick may come while the step's
    request logs are still being written, and then rightly holds."""
    return [h["action"] for h in status["history"] if h["action"] != "hold"]


def _walk(world: dict[str, Any], name: str, production: str, candidate: str, seed: int) -> dict[str, Any]:
    """Traffic for each step of a healthy canary until it is promoted; its final status."""
    for offset, weight in ((0, 50), (1, 100)):
        _traffic(world, production, candidate, 0.0, seed + offset)
        _until(world, lambda w=weight: _status(world, name).get("weight") == w, f"{name} at {weight}%")  # type: ignore[misc]
    return _until(
        world, lambda: _status(world, name).get("phase") == "Promoted" and _status(world, name), "Promoted"
    )


def test_a_killed_operator_resumes_the_rollout_where_it_was(world: dict[str, Any]) -> None:
    _registry(world).register("screening", {"model.onnx": b"weights-5"}, {"run_id": "r5"})
    _apply(world["plane"], _rollout("canary-5", "5"))
    _until(world, lambda: _served(world) == [("main", "2", 90), ("canary", "5", 10)], "the 10% canary")
    world["operator"].kill()
    _traffic(world, "2", "5", 0.0, 21)
    time.sleep(4)  # past the 2 s interval with no operator: nothing moves
    assert _status(world, "canary-5")["weight"] == 10
    world["operator"].start()
    _until(world, lambda: _status(world, "canary-5").get("weight") == 50, "50% after the restart")
    _traffic(world, "2", "5", 0.0, 22)
    status = _until(
        world,
        lambda: _status(world, "canary-5").get("phase") == "Promoted" and _status(world, "canary-5"),
        "Promoted",
    )
    assert _moves(status) == ["start", "step", "promote"]
    _until(world, lambda: _served(world) == [("main", "5", 100)], "version 5 serving alone")


def test_two_replicas_keep_one_active_through_peering(world: dict[str, Any], tmp_path: Path) -> None:
    first: Operator = world["operator"]
    second = Operator(
        first.kubeconfig, {**first.env, "KUBELOOP_OPERATOR_PRIORITY": "50"}, tmp_path / "second.log"
    )
    second.start()
    try:
        _until(
            world, lambda: "Keep-alive in 'kubeloop'" in second.tail(10**6), "the second replica's peering"
        )
        _registry(world).register("screening", {"model.onnx": b"weights-6"}, {"run_id": "r6"})
        _apply(world["plane"], _rollout("canary-6", "6"))
        _until(world, lambda: _served(world) == [("main", "5", 90), ("canary", "6", 10)], "the 10% canary")
        status = _walk(world, "canary-6", "5", "6", 31)
        assert _moves(status) == ["start", "step", "promote"]
        assert _events(world, "canary-6").count("Started") == 1  # one replica acted...
        acted = "[kubeloop/canary-6] Handler"
        assert acted in first.tail(10**7) and acted not in second.tail(10**7)  # ...the higher-priority one
    finally:
        second.stop()


def _owned(world: dict[str, Any], policy: str) -> list[dict[str, Any]]:
    out = world["plane"].kubectl(
        "-n", NS, "get", "cronjobs,configmaps", "-l", f"kubeloop.dev/retrainpolicy={policy}", "-o", "json"
    )
    return list(json.loads(out)["items"])


def test_a_retrain_policy_owns_its_monitor_which_goes_with_it(world: dict[str, Any]) -> None:
    """The operator makes the monitor's ConfigMap and CronJob, owned by the policy; deleting the
    policy deletes them (kube-controller-manager's garbage collector)."""
    plane = world["plane"]
    example = REPO / "examples" / "screening" / "config.yaml"
    plane.kubectl("-n", NS, "create", "configmap", "screening-config", f"--from-file=config.yaml={example}")
    policy = {
        "apiVersion": "kubeloop.dev/v1alpha1",
        "kind": "RetrainPolicy",
        "metadata": {"name": "screening", "namespace": NS},
        "spec": {
            "model": "screening",
            "config": {"configMap": "screening-config"},
            "kfpHost": "http://kfp.example:8888",
            "store": world["uri"],
            "check": {"schedule": "*/30 * * * *"},
        },
    }
    _apply(plane, policy)
    owned = _until(
        world, lambda: len(_owned(world, "screening")) == 2 and _owned(world, "screening"), "the monitor"
    )
    uid = (_get(world, "retrainpolicies", "screening") or {})["metadata"]["uid"]
    assert sorted(o["kind"] for o in owned) == ["ConfigMap", "CronJob"]
    for obj in owned:
        (reference,) = obj["metadata"]["ownerReferences"]
        assert reference["uid"] == uid and reference["kind"] == "RetrainPolicy"
    cron = next(o for o in owned if o["kind"] == "CronJob")
    assert cron["spec"]["schedule"] == "*/30 * * * *"
    status = _until(
        world, lambda: _status(world, "screening", "retrainpolicies").get("cronJob"), "the status"
    )
    assert status == cron["metadata"]["name"]
    plane.kubectl("-n", NS, "delete", "retrainpolicy", "screening", "--wait=false")
    _until(world, lambda: _get(world, "retrainpolicies", "screening") is None, "the policy's finalizer")
    _until(world, lambda: _owned(world, "screening") == [], "the garbage collector")
