"""The pipeline's deploy step: skipped unless asked, first version to production, then canaries."""

from __future__ import annotations

from pathlib import Path

import pytest

from components.common.config_loader import load_config
from components.common.registry import Registry
from components.common.step import StepContext
from components.common.store import LocalStore
from components.deploy.step import run
from tests.conftest import REPO
from tests.fake_kube import fake_kube, store_with_versions, use_kubeconfig

CONFIG = str(REPO / "examples" / "screening" / "config.yaml")


def context(store: Path, run_id: str, *overrides: str) -> StepContext:
    return StepContext(load_config(CONFIG, list(overrides)), LocalStore(store), run_id, "deploy")


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return store_with_versions(tmp_path, 3)


def test_skipped_unless_auto_deploy_says_so(store: Path) -> None:
    ctx = context(store, "r1")
    assert run(ctx, "1", apply_to_cluster=False) == "skipped"
    assert "kubeloop deploy --model VERSION" in ctx.notes[0]
    assert not (store / "deployments").exists()
    assert LocalStore(store).read_json("runs/r1/deploy/deploy.json")["outcome"] == "skipped"


def test_first_version_to_production_then_a_canary_and_a_waiting_third(store: Path) -> None:
    on = "deployment.auto_deploy=true"
    assert run(context(store, "r1", on), "1", apply_to_cluster=False) == "promoted"
    assert Registry(LocalStore(store)).champion("screening") == "1"
    assert run(context(store, "r2", on), "2", apply_to_cluster=False) == "progressing"
    sdep = LocalStore(store).read_json("deployments/screening/seldondeployment.json")
    assert [(p["name"], p["traffic"]) for p in sdep["spec"]["predictors"]] == [("main", 90), ("canary", 10)]
    third = context(store, "r3", on)
    assert run(third, "3", apply_to_cluster=False) == "waiting"  # one rollout at a time
    assert "kubeloop deploy --model 3" in third.notes[0]
    assert LocalStore(store).read_json("deployments/screening/rollout.json")["candidate"] == "2"


def test_compiled_for_a_cluster_it_applies_the_deployment(
    store: Path, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    with fake_kube() as (kube, api):
        use_kubeconfig(api, tmp_path_factory.mktemp("kube"), monkeypatch)
        ctx = context(store, "r1", "deployment.auto_deploy=true", "deployment.namespace=models")
        assert run(ctx, "1", apply_to_cluster=True) == "promoted"
        live = kube.objects[("models", "screening")]
        assert [p["labels"]["kubeloop.dev/version"] for p in live["spec"]["predictors"]] == ["1"]
        record = LocalStore(store).read_json("runs/r1/deploy/deploy.json")
        assert record["cluster"] == {"action": "created", "namespace": "models", "name": "screening"}
