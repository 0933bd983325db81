"""`kubeloop deploy` and `kubeloop rollout` on a store: state, SeldonDeployment, stages, verdicts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cli.main import main
from components.common.registry import Registry
from components.common.store import LocalStore
from components.deploy.request_log import RequestLog, now_iso
from tests.conftest import REPO
from tests.fake_kube import store_with_versions
from tests.unit.test_rollout_analysis import traffic

CONFIG = str(REPO / "examples" / "screening" / "config.yaml")


GUARDRAILS = ["deployment.analysis.label_share=0", "deployment.analysis.on_no_labels=guardrails"]
"""These logs carry no labels: the guardrails alone decide (the CLI's part is under test here)."""


def cli(store: Path, *args: str) -> int:
    command, *rest = args
    if command == "rollout":
        return main(["rollout", rest[0], "--config", CONFIG, "--store", str(store), *rest[1:], *GUARDRAILS])
    return main([command, "--config", CONFIG, "--store", str(store), *rest, *GUARDRAILS])


def log_traffic(store: Path, predictor: str, version: str, rows: list[dict[str, Any]]) -> None:
    log = RequestLog(LocalStore(store), "screening", predictor, flush_rows=10**6, flush_seconds=3600)
    log.log([{**r, "model_version": version, "time": now_iso()} for r in rows])  # after the deploy
    log.close()


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return store_with_versions(tmp_path, 2)


def test_a_healthy_canary_is_promoted_through_every_step(
    store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(store, "deploy", "--model", "1") == 0  # nothing in production: straight to main
    registry = Registry(LocalStore(store))
    assert registry.champion("screening") == "1"
    assert cli(store, "deploy", "--model", "2") == 0
    assert registry.stage_of("screening", "2") == "canary"
    sdep = LocalStore(store).read_json("deployments/screening/seldondeployment.json")
    assert [(p["name"], p["traffic"]) for p in sdep["spec"]["predictors"]] == [("main", 90), ("canary", 10)]
    assert cli(store, "deploy", "--model", "2") == 1  # one rollout at a time
    assert cli(store, "rollout", "step") == 0
    assert "hold: too few requests" in capsys.readouterr().out
    log_traffic(store, "main", "1", traffic("main", 600, 1))
    log_traffic(store, "canary", "2", traffic("canary", 450, 2))  # 0 errors in 450: within 1% (300 are not)
    assert cli(store, "rollout", "status") == 0
    assert "analysis: promote" in capsys.readouterr().out
    assert cli(store, "rollout", "step") == 0
    assert "candidate traffic 50%" in capsys.readouterr().out
    assert cli(store, "rollout", "step") == 0  # each weight is judged on its own traffic
    assert "hold: too few requests" in capsys.readouterr().out
    log_traffic(store, "main", "1", traffic("main", 400, 3))
    log_traffic(store, "canary", "2", traffic("canary", 400, 4))
    assert cli(store, "rollout", "step") == 0
    assert "step: " not in capsys.readouterr().out
    stages = registry.stages("screening")
    assert stages["production"] == "2" and stages["archived"] == ["1"]
    sdep = LocalStore(store).read_json("deployments/screening/seldondeployment.json")
    assert [(p["name"], p["labels"]["kubeloop.dev/version"]) for p in sdep["spec"]["predictors"]] == [
        ("main", "2")
    ]


def test_a_canary_with_errors_is_rolled_back(store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(store, "deploy", "--model", "1") == 0
    assert cli(store, "deploy", "--model", "2") == 0
    log_traffic(store, "main", "1", traffic("main", 600, 1))
    log_traffic(store, "canary", "2", traffic("canary", 300, 2, error_rate=0.1))
    capsys.readouterr()
    assert cli(store, "rollout", "step") == 0
    out = capsys.readouterr().out
    assert out.startswith("rollback: error rate: canary") and "rolled_back" in out
    stages = Registry(LocalStore(store)).stages("screening")
    assert stages["production"] == "1" and stages["archived"] == ["2"]


def test_a_rollback_by_hand_records_the_reason(store: Path) -> None:
    assert cli(store, "deploy", "--model", "1") == 0
    assert cli(store, "deploy", "--model", "2", "--strategy", "shadow") == 0
    assert cli(store, "rollout", "rollback", "--reason", "pager fired") == 0
    history = Registry(LocalStore(store)).stages("screening")["history"]
    assert history[-1]["stage"] == "archived" and "by hand: pager fired" in history[-1]["reason"]
    assert cli(store, "rollout", "status") == 0
    assert cli(store, "deploy", "--model", "7") == 1


def test_a_decision_on_a_stale_record_is_taken_again_on_the_new_one(store: Path) -> None:
    from components.common.config_loader import load_config
    from components.deploy.analysis import Verdict
    from components.deploy.rollout import Rollout, advance
    from components.deploy.rollout_store import commit, step

    assert cli(store, "deploy", "--model", "1") == 0
    assert cli(store, "deploy", "--model", "2") == 0
    config, local = load_config(CONFIG, []), LocalStore(store)
    seen: list[str] = []

    def promote_slowly(current: Rollout | None) -> Rollout | None:
        assert current is not None
        seen.append(current.phase)
        if len(seen) == 1:  # someone rolls back by hand while this writer is still deciding
            step(local, config, Verdict("rollback", ["by hand: pager fired"]))
        if current.phase != "progressing":
            return None
        return advance(current, Verdict("promote", ["analysis"]))[0]

    commit(local, config, promote_slowly)
    assert seen == ["progressing", "rolled_back"]
    sdep = local.read_json("deployments/screening/seldondeployment.json")
    assert [(p["name"], p["labels"]["kubeloop.dev/version"]) for p in sdep["spec"]["predictors"]] == [
        ("main", "1")
    ]
    assert Registry(local).stages("screening")["archived"] == ["2"]


def test_overrides_may_follow_the_options(store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(store, "deploy", "--model", "1") == 0
    assert cli(store, "deploy", "--model", "2", "deployment.analysis.min_requests=5") == 0
    log_traffic(store, "main", "1", traffic("main", 20, 1))
    log_traffic(store, "canary", "2", traffic("canary", 20, 2))
    capsys.readouterr()
    assert cli(store, "rollout", "status", "deployment.analysis.min_requests=5") == 0
    out = capsys.readouterr().out
    assert "too few requests" not in out and "error rate: canary 0.00% (0/20)" in out, out
