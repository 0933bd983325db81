"""Applying the SeldonDeployment through the real Kubernetes client to a recording API on 127.0.0.1."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from cli.main import main
from components.deploy.cluster import ApplyError, apply_seldondeployment
from components.deploy.seldondeployment import Predictor, render_seldondeployment, rollout_predictors
from tests.conftest import REPO
from tests.fake_kube import FakeKube, fake_kube, store_with_versions, use_kubeconfig

CONFIG = str(REPO / "examples" / "screening" / "config.yaml")


def rendered(strategy: str, weight: int) -> dict:
    predictors = rollout_predictors(strategy, "3", "4", weight)
    return render_seldondeployment("screening", "kubeloop", "screening", predictors)


def no_sleep(_: float) -> None:
    return None


def test_create_then_patch_each_step_then_nothing_when_unchanged() -> None:
    with fake_kube() as (kube, api):
        assert apply_seldondeployment(api, rendered("canary", 10), no_sleep)[0] == "created"
        assert apply_seldondeployment(api, rendered("canary", 50), no_sleep)[0] == "patched"
        live = kube.objects[("kubeloop", "screening")]
        assert [p["traffic"] for p in live["spec"]["predictors"]] == [50, 50]
        writes = len([r for r in kube.requests if r["method"] != "GET"])
        assert apply_seldondeployment(api, rendered("canary", 50), no_sleep)[0] == "unchanged"
        assert len([r for r in kube.requests if r["method"] != "GET"]) == writes  # idempotent: no write
        # Promotion: the canary predictor leaves the cluster (a merge patch replaces the list).
        assert apply_seldondeployment(api, rendered("canary", 100), no_sleep)[0] == "patched"
        live = kube.objects[("kubeloop", "screening")]
        assert [(p["name"], p["labels"]["kubeloop.dev/version"]) for p in live["spec"]["predictors"]] == [
            ("main", "4")
        ]
        patch = [r for r in kube.requests if r["method"] == "PATCH"][-1]
        assert patch["content_type"] == "application/merge-patch+json"
        assert patch["body"]["metadata"]["resourceVersion"]  # the precondition that makes races visible


def test_a_write_racing_another_writer_is_retried_on_a_fresh_read() -> None:
    with fake_kube() as (kube, api):
        apply_seldondeployment(api, rendered("canary", 10), no_sleep)
        raced = []

        def someone_else_writes_first(k: FakeKube, method: str) -> None:
            if method == "PATCH" and not raced:  # e.g. Seldon's controller updating the object
                raced.append(True)
                with k.lock:
                    live = k.objects[("kubeloop", "screening")]
                    live["metadata"].setdefault("annotations", {})["other"] = "writer"
                    k.bump(live)

        kube.before_write = someone_else_writes_first
        assert apply_seldondeployment(api, rendered("shadow", 0), no_sleep)[0] == "patched"
        statuses = [r["method"] for r in kube.requests]
        assert statuses[-4:] == ["GET", "PATCH", "GET", "PATCH"]  # 409, read again, patch again
        live = kube.objects[("kubeloop", "screening")]
        assert live["spec"]["predictors"][1]["shadow"] is True
        assert live["metadata"]["annotations"] == {"other": "writer"}  # the other writer's change survives


def test_a_create_that_loses_the_race_patches_instead() -> None:
    with fake_kube() as (kube, api):

        def created_meanwhile(k: FakeKube, method: str) -> None:
            if method == "POST" and not k.objects:
                k.objects[("kubeloop", "screening")] = k.bump(rendered("canary", 10))

        kube.before_write = created_meanwhile
        assert apply_seldondeployment(api, rendered("canary", 50), no_sleep)[0] == "patched"
        assert [p["traffic"] for p in kube.objects[("kubeloop", "screening")]["spec"]["predictors"]] == [
            50,
            50,
        ]


def test_refusals_name_the_status_and_the_fix() -> None:
    with fake_kube() as (kube, api):
        kube.forbid = True
        with pytest.raises(ApplyError, match="403 Forbidden: RBAC forbids it: the service account needs get"):
            apply_seldondeployment(api, rendered("canary", 10), no_sleep)
        assert len(kube.requests) == 1  # a refusal is not retried
        kube.forbid = False
        broken = copy.deepcopy(rendered("canary", 10))
        broken["spec"]["predictors"][0]["traffic"] = 70  # 70 + 10: Seldon's webhook says no
        with pytest.raises(ApplyError, match="422 .*sums to 80"):
            apply_seldondeployment(api, broken, no_sleep)


def test_a_single_predictor_deployment_round_trips() -> None:
    with fake_kube() as (kube, api):
        sdep = render_seldondeployment("screening", "prod", "screening", [Predictor("main", "7")])
        apply_seldondeployment(api, sdep, no_sleep)
        assert kube.objects[("prod", "screening")]["spec"] == sdep["spec"]


def test_the_cli_applies_each_rollout_change_with_the_kubeconfig_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    store = store_with_versions(tmp_path / "store", 2)
    common = ["--config", CONFIG, "--store", str(store), "--cluster"]
    with fake_kube() as (kube, api):
        use_kubeconfig(api, tmp_path, monkeypatch)
        assert main(["deploy", "--model", "1", *common]) == 0
        assert "cluster: SeldonDeployment kubeloop/screening created" in capsys.readouterr().out
        assert main(["deploy", "--model", "2", *common]) == 0
        live = kube.objects[("kubeloop", "screening")]
        assert [(p["name"], p["traffic"]) for p in live["spec"]["predictors"]] == [
            ("main", 90),
            ("canary", 10),
        ]
        assert main(["rollout", "rollback", "--reason", "pager", *common]) == 0
        live = kube.objects[("kubeloop", "screening")]
        assert [(p["name"], p["labels"]["kubeloop.dev/version"]) for p in live["spec"]["predictors"]] == [
            ("main", "1")
        ]
        assert main(["rollout", "apply", *common]) == 0
        assert "SeldonDeployment kubeloop/screening unchanged" in capsys.readouterr().out
        assert {r["authorization"] for r in kube.requests} == {"Bearer t0k3n"}
        kube.forbid = True
        assert main(["rollout", "apply", *common]) == 1
        assert "403 Forbidden: RBAC forbids it" in capsys.readouterr().err
