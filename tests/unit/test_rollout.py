"""The rollout state machine and the registry stages it moves."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from components.common.registry import Registry
from components.common.store import LocalStore
from components.deploy.analysis import Verdict
from components.deploy.rollout import Rollout, advance, apply_stages, start
from components.deploy.seldondeployment import admission_errors, render_seldondeployment

PROMOTE, HOLD = Verdict("promote", ["checks passed"]), Verdict("hold", ["too few requests"])
ROLLBACK = Verdict("rollback", ["error rate: canary 8.00% vs main 0.00%"])


def valid(rollout: Rollout) -> list[tuple[str, str, int | None]]:
    """The rendered predictors (name, version, traffic), after checking Seldon would accept them."""
    sdep = render_seldondeployment("screening", "kubeloop", "screening", rollout.predictors())
    assert admission_errors(sdep) == []
    return [
        (p["name"], p["labels"]["kubeloop.dev/version"], p.get("traffic")) for p in sdep["spec"]["predictors"]
    ]


def test_a_healthy_canary_walks_every_step_to_production() -> None:
    rollout = start("screening", "canary", "1", "2", [10, 50, 100])
    assert valid(rollout) == [("main", "1", 90), ("canary", "2", 10)]
    rollout, action = advance(rollout, HOLD)
    assert action == "hold" and rollout.weight == 10
    rollout, action = advance(rollout, PROMOTE)
    assert action == "step" and valid(rollout) == [("main", "1", 50), ("canary", "2", 50)]
    rollout, action = advance(rollout, PROMOTE)
    assert action == "promote" and rollout.phase == "promoted" and valid(rollout) == [("main", "2", 100)]
    assert [h["action"] for h in rollout.history] == ["start", "hold", "step", "promote"]
    assert advance(rollout, ROLLBACK) == (rollout, "done")  # a finished rollout stays finished


def test_a_failing_canary_goes_back_to_the_production_version() -> None:
    rollout, _ = advance(start("screening", "canary", "1", "2", [10, 50, 100]), PROMOTE)
    rollout, action = advance(rollout, ROLLBACK)
    assert action == "rollback" and rollout.phase == "rolled_back" and valid(rollout) == [("main", "1", 100)]
    assert "error rate" in rollout.history[-1]["reason"]


def test_a_shadow_is_promoted_in_one_step() -> None:
    rollout = start("screening", "shadow", "1", "2", [10, 50, 100])
    assert valid(rollout) == [("main", "1", 100), ("shadow", "2", None)] and rollout.weight == 0
    rollout, action = advance(rollout, PROMOTE)
    assert action == "promote" and valid(rollout) == [("main", "2", 100)]


def test_shadow_canary_mirrors_first_then_walks_the_canary_steps(tmp_path: Path) -> None:
    registry = registry_with(tmp_path, 2)
    rollout = start("screening", "shadow-canary", "1", "2", [10, 50, 100])
    assert rollout.steps == (0, 10, 50, 100) and rollout.shadowing and rollout.weight == 0
    assert valid(rollout) == [("main", "1", 100), ("shadow", "2", None)]
    apply_stages(registry, rollout)
    assert registry.stage_of("screening", "2") == "shadow"
    rollout, action = advance(rollout, PROMOTE)  # the shadow agreed: traffic starts to move
    assert action == "step" and not rollout.shadowing and rollout.history[-1]["reason"].startswith("shadow")
    assert valid(rollout) == [("main", "1", 90), ("canary", "2", 10)]
    apply_stages(registry, rollout)
    assert registry.stage_of("screening", "2") == "canary"
    rollout, action = advance(rollout, PROMOTE)
    assert action == "step" and valid(rollout) == [("main", "1", 50), ("canary", "2", 50)]
    rollout, action = advance(rollout, PROMOTE)
    assert action == "promote" and valid(rollout) == [("main", "2", 100)]
    assert Rollout.from_dict(json.loads(json.dumps(rollout.to_dict()))) == rollout
    shadow_failed, action = advance(start("screening", "shadow-canary", "1", "2", [10, 100]), ROLLBACK)
    assert action == "rollback" and valid(shadow_failed) == [("main", "1", 100)]


def test_first_deployment_and_replace_go_straight_to_main() -> None:
    assert start("screening", "canary", None, "1", [10, 100]).phase == "promoted"
    assert valid(start("screening", "replace", "1", "2", [10, 100])) == [("main", "2", 100)]
    with pytest.raises(ValueError, match="already in production"):
        start("screening", "canary", "2", "2", [10, 100])
    with pytest.raises(ValueError, match="unknown strategy 'blue'"):
        start("screening", "blue", "1", "2", [10, 100])


def test_state_survives_a_json_round_trip() -> None:
    rollout, _ = advance(start("screening", "canary", "1", "2", [10, 50, 100]), PROMOTE)
    again = Rollout.from_dict(json.loads(json.dumps(rollout.to_dict())))
    assert again == rollout and again.weight == 50


def registry_with(tmp_path: Path, versions: int) -> Registry:
    registry = Registry(LocalStore(tmp_path))
    for _ in range(versions):
        registry.register("screening", {"model.onnx": b"weights"}, {"run_id": "r"})
    registry.set_stage("screening", "1", "production")
    return registry


def test_stages_follow_a_promotion(tmp_path: Path) -> None:
    registry = registry_with(tmp_path, 2)
    rollout = start("screening", "canary", "1", "2", [10, 100])
    apply_stages(registry, rollout)
    assert registry.stage_of("screening", "2") == "canary"
    rollout, _ = advance(rollout, PROMOTE)
    apply_stages(registry, rollout)
    stages = registry.stages("screening")
    assert stages["production"] == "2" and stages["archived"] == ["1"] and stages["canary"] is None


def test_stages_follow_a_rollback(tmp_path: Path) -> None:
    registry = registry_with(tmp_path, 2)
    rollout, _ = advance(start("screening", "shadow", "1", "2", [10, 100]), ROLLBACK)
    apply_stages(registry, rollout)
    stages = registry.stages("screening")
    assert stages["production"] == "1" and stages["archived"] == ["2"] and stages["shadow"] is None
    assert stages["history"][-1]["reason"].startswith("rolled back: error rate")


def test_start_and_advance_stamp_a_simulated_clock() -> None:
    t0 = datetime(2030, 1, 1, tzinfo=UTC)
    rollout = start("screening", "canary", "1", "2", [10, 50, 100], now=t0)
    rollout, _ = advance(rollout, HOLD, now=t0 + timedelta(minutes=1))
    rollout, _ = advance(rollout, HOLD, now=t0 + timedelta(minutes=2))  # one entry per run of holds
    rollout, _ = advance(rollout, PROMOTE, now=t0 + timedelta(minutes=3))
    assert rollout.started == "2030-01-01T00:00:00.000+00:00"
    assert [(h["action"], h["time"][11:19]) for h in rollout.history] == [
        ("start", "00:00:00"),
        ("hold", "00:02:00"),
        ("step", "00:03:00"),
    ]
    assert rollout.step_started == "2030-01-01T00:03:00.000+00:00"


def test_each_history_entry_keeps_the_evidence_its_verdict_rested_on() -> None:
    quality = {
        "check": "quality",
        "status": "pass",
        "observed": 0.004,
        "bounds": [-0.012, 0.02],
        "limit": -0.02,
        "rows": 9000,
        "detail": "ROC AUC ...",
    }
    pending = {"check": "error rate", "status": "pending", "observed": None, "detail": "not yet known"}
    information = {"check": "agreement", "status": "info", "observed": 0.81, "detail": "information only"}
    needs = {"metric": "ROC AUC", "margin": 0.02, "labeled_rows": 24000, "have_rows": 3000}
    rollout = start("screening", "shadow-canary", "1", "2", [10, 50, 100])
    rollout, _ = advance(rollout, Verdict("hold", ["need ~24,000"], [pending, information], needs))
    rollout, _ = advance(rollout, Verdict("hold", ["need ~20,000"], [pending], {**needs, "have_rows": 5000}))
    held = rollout.history[-1]
    assert held["count"] == 2 and held["needs"]["have_rows"] == 5000 and "evidence" not in held
    rollout, action = advance(rollout, Verdict("promote", ["every check passed"], [quality, information]))
    stepped = rollout.history[-1]
    assert action == "step" and stepped["reason"].startswith("shadow passed, canary to 10%")
    assert stepped["evidence"] == [{k: v for k, v in quality.items() if k != "detail"}]  # judged checks only
