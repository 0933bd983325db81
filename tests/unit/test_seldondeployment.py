"""SeldonDeployment rendering: the CRD schema, Seldon's admission rules, security and labels."""

from __future__ import annotations

import copy
import json

import pytest

from components.deploy.seldondeployment import (
    Predictor,
    admission_errors,
    render_seldondeployment,
    rollout_predictors,
)
from tests.k8s import load_crds, validate_object

CRDS = load_crds()


def render(predictors: list[Predictor]) -> dict:
    return render_seldondeployment("screening", "kubeloop", "screening", predictors)


@pytest.mark.parametrize(
    ("strategy", "weight", "expected"),
    [
        ("canary", 10, [("main", "3", 90, False), ("canary", "4", 10, False)]),
        ("canary", 50, [("main", "3", 50, False), ("canary", "4", 50, False)]),
        ("canary", 100, [("main", "4", 100, False)]),
        ("shadow", 10, [("main", "3", 100, False), ("shadow", "4", None, True)]),
        ("replace", 10, [("main", "4", 100, False)]),
    ],
)
def test_every_rollout_step_renders_a_valid_deployment(strategy: str, weight: int, expected: list) -> None:
    sdep = render(rollout_predictors(strategy, "3", "4", weight))
    validate_object(sdep, CRDS)
    assert admission_errors(sdep) == []
    got = [
        (p["name"], p["labels"]["kubeloop.dev/version"], p.get("traffic"), p.get("shadow", False))
        for p in sdep["spec"]["predictors"]
    ]
    assert got == expected


def test_pods_are_restricted_and_read_credentials_only_from_the_secret() -> None:
    sdep = render(rollout_predictors("canary", "3", "4", 10))
    for predictor in sdep["spec"]["predictors"]:
        [spec] = predictor["componentSpecs"]
        [container] = spec["spec"]["containers"]
        security = container["securityContext"]
        assert security["runAsNonRoot"] and not security["allowPrivilegeEscalation"]
        assert security["readOnlyRootFilesystem"] and security["capabilities"]["drop"] == ["ALL"]
        assert security["seccompProfile"]["type"] == "RuntimeDefault"
        assert container["resources"]["requests"] and container["resources"]["limits"]
        secrets = [e for e in container["env"] if "valueFrom" in e]
        assert {e["name"] for e in secrets} == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
        assert all("secretKeyRef" in e["valueFrom"] for e in secrets)
        assert container["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]
        params = {p["name"]: p["value"] for p in predictor["graph"]["parameters"]}
        version = predictor["labels"]["kubeloop.dev/version"]
        assert params["model_uri"] == f"s3://kubeloop/models/screening/{version}"
        assert params["predictor"] == predictor["name"] and params["log_uri"] == "s3://kubeloop"
    literal = [
        e
        for p in sdep["spec"]["predictors"]
        for c in p["componentSpecs"][0]["spec"]["containers"]
        for e in c["env"]
        if e["name"].startswith("AWS_") and "value" in e
    ]
    assert literal == [] and "AKIA" not in json.dumps(sdep)  # no credential is written into the manifest


def base() -> dict:
    return render([Predictor("main", "3", traffic=80), Predictor("canary", "4", traffic=20)])


def test_admission_check_catches_each_rule() -> None:
    cases = {}
    broken = base()
    broken["spec"]["predictors"][1]["traffic"] = 10
    cases["sums to 90, not 100"] = broken
    broken = base()
    broken["spec"]["predictors"] = broken["spec"]["predictors"][:1]
    broken["spec"]["predictors"][0]["traffic"] = 50
    cases["single predictor cannot take 50%"] = broken
    broken = base()
    for p in broken["spec"]["predictors"]:
        p["shadow"] = True
    cases["a shadow cannot be the only predictor"] = broken
    broken = base()
    broken["spec"]["predictors"].append(
        copy.deepcopy(broken["spec"]["predictors"][1]) | {"name": "s1", "shadow": True}
    )
    broken["spec"]["predictors"].append(
        copy.deepcopy(broken["spec"]["predictors"][1]) | {"name": "s2", "shadow": True}
    )
    cases["2 shadow predictors"] = broken
    broken = base()
    broken["spec"]["predictors"][1]["name"] = "main"
    cases["predictor names repeat: ['main']"] = broken
    broken = base()
    broken["spec"]["predictors"][0]["graph"]["name"] = "classifier"
    cases["graph unit 'classifier' has no container"] = broken
    for message, sdep in cases.items():
        validate_object(sdep, CRDS)  # each passes the schema: only the admission check sees it
        errors = admission_errors(sdep)
        assert any(message in e for e in errors), (message, errors)


def test_rendering_refuses_what_seldon_would_reject() -> None:
    with pytest.raises(ValueError, match="traffic over the non-shadow predictors sums to 70"):
        render([Predictor("main", "3", traffic=50), Predictor("canary", "4", traffic=20)])
    with pytest.raises(ValueError, match="unknown strategy 'blue-green'"):
        rollout_predictors("blue-green", "3", "4")


def test_first_deployment_has_one_predictor_whatever_the_strategy() -> None:
    for strategy in ("shadow", "canary", "replace"):
        assert rollout_predictors(strategy, None, "1") == [Predictor("main", "1", traffic=100)]


def test_serving_settings_reach_every_predictor() -> None:
    from components.common.config import ServingConfig
    from components.deploy.seldondeployment import ServingSettings

    serving = ServingConfig(
        workers=4, replicas=3, cpu="1", memory="2Gi", seldon_logger_url="http://broker.logging.svc"
    )
    settings = ServingSettings.from_config("s3://bucket/prefix", serving)
    sdep = render_seldondeployment(
        "screening", "kubeloop", "screening", rollout_predictors("shadow", "3", "4"), settings
    )
    validate_object(sdep, CRDS)
    for predictor in sdep["spec"]["predictors"]:
        [container] = predictor["componentSpecs"][0]["spec"]["containers"]
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["GUNICORN_WORKERS"] == "4" and predictor["replicas"] == 3
        # One BLAS/OpenMP thread per worker: forked pools fight for the cores under load.
        assert env["OMP_NUM_THREADS"] == env["OPENBLAS_NUM_THREADS"] == env["MKL_NUM_THREADS"] == "1"
        assert container["resources"]["requests"] == {"cpu": "1", "memory": "2Gi"}
        assert predictor["graph"]["logger"] == {"mode": "all", "url": "http://broker.logging.svc"}
        parameters = {p["name"]: p["value"] for p in predictor["graph"]["parameters"]}
        assert parameters["log_uri"] == "s3://bucket/prefix"
        assert parameters["max_request_bytes"] == str(64 * 2**20)
    # Large image batches: Seldon's executor and the model's gunicorn take these limits.
    assert sdep["spec"]["annotations"] == {
        "seldon.io/rest-timeout": "60000",
        "seldon.io/grpc-timeout": "60000",
        "seldon.io/grpc-max-message-size": str(64 * 2**20),
    }
    plain = render(rollout_predictors("canary", "3", "4", 10))
    assert all("logger" not in p["graph"] for p in plain["spec"]["predictors"])  # off unless asked


def test_settings_read_back_from_a_rendered_deployment_are_those_it_was_rendered_with() -> None:
    from components.deploy.seldondeployment import ServingSettings, rollout_predictors, settings_of

    settings = ServingSettings(
        store_uri="s3://bucket/prefix",
        image="registry.example/serving:1.2",
        cpu="1",
        memory_limit="3Gi",
        workers=3,
        replicas=2,
        flush_seconds=2.5,
        max_request_bytes=8 * 2**20,
        request_timeout_seconds=120.0,
        seldon_logger_url="http://logger.seldon-system",
        labels={"team": "screening"},
    )
    for predictors in (rollout_predictors("canary", "1", "2", 10), rollout_predictors("shadow", "1", "2")):
        sdep = render_seldondeployment("screening", "kubeloop", "screening", predictors, settings)
        assert settings_of(sdep) == ("screening", settings)
    foreign = {"metadata": {"name": "iris"}, "spec": {"predictors": [{"name": "default", "graph": {}}]}}
    with pytest.raises(ValueError, match="iris was not rendered by kubeloop"):
        settings_of(foreign)
