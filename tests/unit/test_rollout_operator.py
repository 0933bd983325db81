"""ModelRollout reconciles on recorded bodies: the patches, deployments and stages they produce."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.common.registry import Registry
from components.common.store import LocalStore
from components.deploy.analysis import Verdict
from components.deploy.request_log import window_start
from components.deploy.seldondeployment import (
    Predictor,
    ServingSettings,
    admission_errors,
    render_seldondeployment,
)
from operators.crds import model_rollout_crd
from operators.rollout import parse_spec, reconcile
from operators.rollout_runner import Retry, SpecProblem, finalize_rollout, run_rollout
from tests.conftest import REPO
from tests.k8s import apply_defaults, crd_schema, load_crds, validate_custom, validate_object
from tests.operator_fakes import FakeCluster
from tests.unit.test_rollout_analysis import traffic

NS = "kubeloop"
EXAMPLE = REPO / "examples" / "cluster" / "modelrollout.yaml"


def example(**spec: Any) -> dict[str, Any]:
    """The shipped example, with spec changes, defaulted as the API server would store it."""
    body = yaml.safe_load(EXAMPLE.read_text())
    body["spec"].update(spec)
    # Guardrails alone (these logs carry no labels): the operator's part is under test here.
    guardrails = {"labelShare": 0, "onNoLabels": "guardrails", "maxErrorIncrease": 0.01}
    body["spec"]["analysis"] = {
        **body["spec"]["analysis"],
        "minRequests": 300,
        "interval": "5m",
        **guardrails,
    }
    return dict(apply_defaults(body, crd_schema(model_rollout_crd())))


@pytest.fixture()
def world(tmp_path: Path) -> tuple[FakeCluster, LocalStore]:
    """A store with versions 1 (production) and 2, and the SeldonDeployment serving version 1."""
    store = LocalStore(tmp_path / "store")
    registry = Registry(store)
    for _ in range(2):
        registry.register("screening", {"model.onnx": b"weights"}, {"run_id": "r"})
    registry.set_stage("screening", "1", "production")
    cluster = FakeCluster()
    settings = ServingSettings(store_uri=str(store.root), image="ghcr.io/kubeloop/kubeloop-serving:0.1.0")
    cluster.add(render_seldondeployment("screening", NS, "screening", [Predictor("main", "1")], settings))
    return cluster, store


def log(store: LocalStore, predictor: str, version: str, rows: list[dict[str, Any]], when: datetime) -> None:
    """Write served rows as the model class logs them, at `when`."""
    stamp = when.isoformat(timespec="milliseconds")
    lines = [json.dumps({**r, "time": stamp, "model_version": version}) for r in rows]
    key = f"logs/screening/{predictor}/{window_start(stamp, 60)}/{uuid.uuid4().hex}.jsonl"
    store.write_text(key, "\n".join(lines) + "\n")


def sdep(cluster: FakeCluster) -> dict[str, Any]:
    found = cluster.get("machinelearning.seldon.io/v1", "SeldonDeployment", NS, "screening")
    assert found is not None
    return found


def served(cluster: FakeCluster) -> list[tuple[str, str, int | None]]:
    """(predictor, version, traffic) of the live deployment, after checking Seldon would accept it."""
    live = sdep(cluster)
    validate_object(live, load_crds())
    assert admission_errors(live) == []
    return [
        (p["name"], p["graph"]["parameters"][1]["value"], None if p.get("shadow") else p["traffic"])
        for p in live["spec"]["predictors"]
    ]


def apply_rollout(cluster: FakeCluster, **spec: Any) -> dict[str, Any]:
    body = example(**spec)
    assert validate_custom(body, model_rollout_crd()) == []
    return cluster.add(body)


def tick(cluster: FakeCluster, store: LocalStore, now: datetime) -> Any:
    """One reconcile on the body as it is now (what kopf would hand the handler)."""
    return run_rollout(cluster.body("ModelRollout", NS, "screening-v2"), cluster, LocalStore, now)


def test_a_healthy_canary_walks_from_10_to_100_percent(world: tuple[FakeCluster, LocalStore]) -> None:
    cluster, store = world
    apply_rollout(cluster)
    now = datetime.now(UTC)
    plan = tick(cluster, store, now)
    assert plan.action == "start" and served(cluster) == [("main", "1", 90), ("canary", "2", 10)]
    status = cluster.body("ModelRollout", NS, "screening-v2")["status"]
    assert status["phase"] == "Progressing" and status["weight"] == 10 and status["applied"] is True
    assert validate_custom(cluster.body("ModelRollout", NS, "screening-v2"), model_rollout_crd()) == []
    assert Registry(store).stage_of("screening", "2") == "canary"
    weights = []
    for seed in range(3):
        moment = datetime.now(UTC)
        log(store, "main", "1", traffic("main", 400, seed), moment)
        log(store, "canary", "2", traffic("canary", 400, seed + 10), moment)
        now += timedelta(minutes=5)
        plan = tick(cluster, store, now)
        weights.append(cluster.body("ModelRollout", NS, "screening-v2")["status"]["weight"])
    assert weights == [50, 100, 100]
    assert served(cluster) == [("main", "2", 100)]
    final = cluster.body("ModelRollout", NS, "screening-v2")["status"]
    assert final["phase"] == "Promoted" and final["lastVerdict"] == "promote"
    assert [h["action"] for h in final["history"]] == ["start", "step", "promote"]
    assert Registry(store).champion("screening") == "2"
    assert "1" in Registry(store).stages("screening")["archived"]
    events = [w.body["reason"] for w in cluster.writes if w.verb == "event"]
    assert events == ["Started", "Stepped", "Promoted"]
    assert validate_custom(cluster.body("ModelRollout", NS, "screening-v2"), model_rollout_crd()) == []


def test_a_failing_canary_goes_back_to_0_percent(world: tuple[FakeCluster, LocalStore]) -> None:
    cluster, store = world
    apply_rollout(cluster)
    now = datetime.now(UTC)
    tick(cluster, store, now)
    moment = datetime.now(UTC)
    log(store, "main", "1", traffic("main", 400, 1), moment)
    log(store, "canary", "2", traffic("canary", 400, 2, error_rate=0.2), moment)
    tick(cluster, store, now + timedelta(minutes=5))
    assert served(cluster) == [("main", "1", 100)]
    status = cluster.body("ModelRollout", NS, "screening-v2")["status"]
    assert status["phase"] == "RolledBack" and status["weight"] == 0 and status["lastVerdict"] == "rollback"
    assert "error rate" in status["lastReason"]
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "False" and ready["reason"] == "RolledBack"
    assert Registry(store).stage_of("screening", "2") == "archived"
    assert Registry(store).champion("screening") == "1"
    warning = [w.body for w in cluster.writes if w.verb == "event" and w.body["type"] == "Warning"]
    assert [w["reason"] for w in warning] == ["RolledBack"]
    cluster.taken()
    tick(cluster, store, now + timedelta(hours=1))  # finished: later ticks touch nothing
    assert cluster.taken() == []


def test_no_verdict_before_the_interval_or_the_minimum_sample(world: tuple[FakeCluster, LocalStore]) -> None:
    cluster, store = world
    apply_rollout(cluster)
    now = datetime.now(UTC)
    tick(cluster, store, now)
    cluster.taken()
    plan = tick(cluster, store, now + timedelta(minutes=2))
    assert plan.action == "wait" and plan.requeue_s == pytest.approx(180, abs=1)
    assert cluster.taken() == []  # nothing written while waiting
    log(store, "main", "1", traffic("main", 100, 1), datetime.now(UTC))
    plan = tick(cluster, store, now + timedelta(minutes=5))
    assert plan.action == "hold" and "too few requests" in plan.status["lastReason"]
    assert served(cluster) == [("main", "1", 90), ("canary", "2", 10)]


def test_a_hold_for_labels_says_what_it_needs_in_the_status(world: tuple[FakeCluster, LocalStore]) -> None:
    cluster, store = world
    body = example()
    body["spec"]["analysis"] = {"interval": "5m", "minRequests": 300, "labelDelaySeconds": 1_209_600}
    assert validate_custom(body, model_rollout_crd()) == []
    cluster.add(dict(apply_defaults(body, crd_schema(model_rollout_crd()))))
    now = datetime.now(UTC)
    tick(cluster, store, now)
    log(store, "main", "1", traffic("main", 900, 1), datetime.now(UTC))
    log(store, "canary", "2", traffic("canary", 500, 2), datetime.now(UTC))
    plan = tick(cluster, store, now + timedelta(minutes=5))
    status = cluster.body("ModelRollout", NS, "screening-v2")["status"]
    assert plan.action == "hold" and status["weight"] == 10
    assert "need ~" in status["lastReason"] and status["lastReason"].endswith("holding at 10%")
    assert status["needs"]["labeled_rows"] > status["needs"]["have_rows"] == 0
    assert status["needs"]["eta_seconds"] > 1_209_600  # the label delay comes on top
    assert status["history"][-1]["needs"] == status["needs"]
    assert validate_custom(cluster.body("ModelRollout", NS, "screening-v2"), model_rollout_crd()) == []


def test_every_reconcile_can_run_twice_and_after_a_crash_between_its_writes(
    world: tuple[FakeCluster, LocalStore],
) -> None:
    cluster, store = world
    apply_rollout(cluster)
    now = datetime.now(UTC)
    tick(cluster, store, now)
    cluster.taken()
    tick(cluster, store, now)  # the same event delivered again: no write at all
    assert cluster.taken() == []
    moment = datetime.now(UTC)
    log(store, "main", "1", traffic("main", 400, 1), moment)
    log(store, "canary", "2", traffic("canary", 400, 2), moment)
    cluster.fail_next["apply"] = ConnectionError("operator killed after writing the status")
    with pytest.raises(ConnectionError):
        tick(cluster, store, now + timedelta(minutes=5))
    status = cluster.body("ModelRollout", NS, "screening-v2")["status"]
    assert status["weight"] == 50 and status["applied"] is False  # decided, not yet followed
    assert served(cluster) == [("main", "1", 90), ("canary", "2", 10)]
    plan = tick(cluster, store, now + timedelta(minutes=6))  # restarted: converges, decides nothing new
    assert plan.action == "wait" and served(cluster) == [("main", "1", 50), ("canary", "2", 50)]
    assert cluster.body("ModelRollout", NS, "screening-v2")["status"]["applied"] is True
    history = cluster.body("ModelRollout", NS, "screening-v2")["status"]["history"]
    assert [h["action"] for h in history] == ["start", "step"]


def test_a_crash_before_the_stages_moved_is_finished_after_promotion(
    world: tuple[FakeCluster, LocalStore],
) -> None:
    cluster, store = world
    apply_rollout(cluster, strategy="shadow")
    now = datetime.now(UTC)
    tick(cluster, store, now)
    assert served(cluster) == [("main", "1", 100), ("shadow", "2", None)]
    moment = datetime.now(UTC)
    main = traffic("main", 400, 1, ids="r")
    log(store, "main", "1", main, moment)
    log(store, "shadow", "2", traffic("shadow", 400, 3, ids="r"), moment)
    cluster.fail_next["apply"] = ConnectionError("killed")
    with pytest.raises(ConnectionError):
        tick(cluster, store, now + timedelta(minutes=5))
    assert cluster.body("ModelRollout", NS, "screening-v2")["status"]["phase"] == "Promoted"
    assert Registry(store).champion("screening") == "1"
    tick(cluster, store, now + timedelta(minutes=6))
    assert served(cluster) == [("main", "2", 100)] and Registry(store).champion("screening") == "2"
    cluster.taken()
    tick(cluster, store, now + timedelta(minutes=7))
    assert cluster.taken() == []


@pytest.mark.parametrize(
    ("spec", "reason", "words"),
    [
        ({"steps": [50, 10]}, "InvalidSpec", "spec.steps [50, 10] must be increasing"),
        ({"candidate": "7"}, "UnknownVersion", "no ready version 7"),
        ({"model": "other"}, "ModelMismatch", "serves screening, not other: fix spec.model"),
    ],
)
def test_a_bad_spec_is_refused_with_an_event_and_a_condition(
    world: tuple[FakeCluster, LocalStore], spec: dict[str, Any], reason: str, words: str
) -> None:
    cluster, store = world
    apply_rollout(cluster, **spec)
    with pytest.raises(SpecProblem, match=words.replace("[", r"\[").replace("]", r"\]")):
        tick(cluster, store, datetime.now(UTC))
    status = cluster.body("ModelRollout", NS, "screening-v2")["status"]
    assert status["phase"] == "Failed" and words in status["lastReason"]
    valid = next(c for c in status["conditions"] if c["type"] == "SpecValid")
    assert valid["status"] == "False" and valid["reason"] == reason
    (event,) = [w.body for w in cluster.writes if w.verb == "event"]
    assert event["type"] == "Warning" and event["reason"] == reason
    assert served(cluster) == [("main", "1", 100)]  # nothing moved
    cluster.taken()
    with pytest.raises(SpecProblem):
        tick(cluster, store, datetime.now(UTC))
    assert cluster.taken() == []  # refused once: no new Event or status write for the same problem


def test_a_missing_seldondeployment_is_waited_for(world: tuple[FakeCluster, LocalStore]) -> None:
    cluster, store = world
    apply_rollout(cluster, seldonDeployment="not-yet")
    with pytest.raises(Retry, match="not-yet does not exist yet"):
        tick(cluster, store, datetime.now(UTC))
    ready = cluster.body("ModelRollout", NS, "screening-v2")["status"]["conditions"][0]
    assert ready["reason"] == "SeldonDeploymentMissing" and ready["status"] == "False"


def test_a_new_candidate_replaces_an_unfinished_rollout(world: tuple[FakeCluster, LocalStore]) -> None:
    cluster, store = world
    Registry(store).register("screening", {"model.onnx": b"weights"}, {"run_id": "r"})
    apply_rollout(cluster)
    now = datetime.now(UTC)
    tick(cluster, store, now)
    body = cluster.body("ModelRollout", NS, "screening-v2")
    body["spec"]["candidate"] = "3"
    body["metadata"]["generation"] = 2
    cluster.add(body)
    plan = tick(cluster, store, now + timedelta(seconds=5))
    assert plan.action == "start" and plan.superseded == "2"
    assert served(cluster) == [("main", "1", 90), ("canary", "3", 10)]
    assert Registry(store).stage_of("screening", "2") == "archived"
    assert cluster.body("ModelRollout", NS, "screening-v2")["status"]["observedGeneration"] == 2


def test_deleting_a_progressing_rollout_gives_traffic_back_to_production(
    world: tuple[FakeCluster, LocalStore],
) -> None:
    cluster, store = world
    apply_rollout(cluster)
    tick(cluster, store, datetime.now(UTC))
    outcome = finalize_rollout(cluster.body("ModelRollout", NS, "screening-v2"), cluster, LocalStore)
    assert "removed" in outcome and served(cluster) == [("main", "1", 100)]
    assert Registry(store).stage_of("screening", "2") == "archived"
    done = finalize_rollout(cluster.body("ModelRollout", NS, "screening-v2"), cluster, LocalStore)
    assert served(cluster) == [("main", "1", 100)] and "removed" in done  # again: harmless


def test_the_crd_defaults_are_the_parsers_defaults() -> None:
    bare = {"model": "screening", "seldonDeployment": "screening", "candidate": "2"}
    schema = crd_schema(model_rollout_crd())["properties"]["spec"]
    assert parse_spec(apply_defaults(bare, schema)) == parse_spec(bare)


def test_pure_reconcile_paused_and_replace() -> None:
    spec = parse_spec({"model": "m", "seldonDeployment": "m", "candidate": "2", "paused": True})
    never = lambda rollout: pytest.fail("no analysis while paused")  # noqa: E731
    now = datetime.now(UTC)
    started = reconcile(spec, {}, "1", now, never)
    paused = reconcile(spec, started.status, "1", now + timedelta(hours=1), never)
    assert paused.action == "paused" and "spec.paused" in paused.status["lastReason"]
    replace = parse_spec({"model": "m", "seldonDeployment": "m", "candidate": "2", "strategy": "replace"})
    plan = reconcile(replace, {}, "1", now, lambda r: Verdict("hold", []))
    assert plan.rollout.phase == "promoted" and plan.rollout.predictors() == [Predictor("main", "2")]
