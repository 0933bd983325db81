"""The monitor's CronJob: shipped as compiled, valid for Kubernetes, restricted, and runnable as written."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from cli.main import build_parser
from components.common.config_loader import load_config
from components.monitor.cronjob import KFP_AUDIENCE, cron_job
from pipelines.compile import write_monitor
from tests.conftest import REPO, tool

SHIPPED = REPO / "manifests" / "monitor"
KUBERNETES = "1.35"


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("monitor")
    write_monitor(out)
    return out


def objects(folder: Path) -> list[dict[str, Any]]:
    return [o for p in sorted(folder.glob("*-monitor.yaml")) for o in yaml.safe_load_all(p.read_text()) if o]


def by_kind(folder: Path) -> dict[str, dict[str, Any]]:
    return {o["kind"]: o for o in objects(folder)}


def test_the_shipped_manifests_are_what_compile_writes(rendered: Path) -> None:
    assert sorted(p.name for p in rendered.iterdir()) == sorted(p.name for p in SHIPPED.iterdir())
    for path in rendered.iterdir():
        assert path.read_text() == (SHIPPED / path.name).read_text(), (
            f"run `make compile`: {path.name} changed"
        )


def test_every_object_validates_against_the_kubernetes_schemas(rendered: Path) -> None:
    found = objects(rendered)
    assert [o["kind"] for o in found] == ["ServiceAccount", "ConfigMap", "CronJob"]
    for obj in found:
        kubernetes_validate.validate(obj, KUBERNETES, strict=True)


def test_the_schema_check_catches_a_misspelt_field(rendered: Path) -> None:
    job = by_kind(rendered)["CronJob"]
    job["spec"]["concurrency"] = "Forbid"  # concurrencyPolicy misspelt: strict schemas reject it
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(job, KUBERNETES, strict=True)


def test_the_pod_is_restricted_and_holds_no_credentials(rendered: Path) -> None:
    job = by_kind(rendered)["CronJob"]
    assert job["spec"]["concurrencyPolicy"] == "Forbid"
    pod = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["automountServiceAccountToken"] is False  # no Kubernetes API token: it needs none
    for container in pod["containers"]:
        security = container["securityContext"]
        assert security["allowPrivilegeEscalation"] is False and security["readOnlyRootFilesystem"] is True
        assert security["capabilities"]["drop"] == ["ALL"]
        assert security["seccompProfile"]["type"] == "RuntimeDefault"
        assert set(container["resources"]["requests"]) == {"cpu", "memory"}
        literal = {e["name"] for e in container["env"] if "value" in e}
        assert not literal & {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "KUBELOOP_KFP_TOKEN"}
        secrets = {e["name"] for e in container["env"] if "secretKeyRef" in e.get("valueFrom", {})}
        assert secrets == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
        mounts = {m["mountPath"] for m in container["volumeMounts"]}
        assert "/tmp" in mounts  # a writable place on a read-only root
    (token,) = [v for v in pod["volumes"] if "projected" in v]
    assert token["projected"]["sources"][0]["serviceAccountToken"]["audience"] == KFP_AUDIENCE
    assert "accesskey" not in by_kind(rendered)["ConfigMap"]["data"]["config.yaml"]


def test_the_command_parses_and_the_mounted_config_loads(rendered: Path, tmp_path: Path) -> None:
    found = by_kind(rendered)
    container = found["CronJob"]["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["kubeloop"]
    args = build_parser().parse_args(container["args"])
    assert args.func.__name__ == "cmd_monitor" and args.once and args.host.startswith("http://ml-pipeline.")
    mounted = tmp_path / "config.yaml"
    mounted.write_text(found["ConfigMap"]["data"]["config.yaml"])
    config = load_config(mounted, [])
    assert config.name == "screening" and config.store == "s3://kubeloop"
    assert found["CronJob"]["spec"]["schedule"] == config.monitoring.schedule
    assert json.loads(config.to_json())["monitoring"]["window"] == "1h"


def test_a_long_window_gets_a_longer_deadline_and_the_schedule_follows_the_config() -> None:
    config = load_config(
        REPO / "examples" / "screening" / "config.yaml",
        ["monitoring.window=1d", "monitoring.schedule=15 2 * * *"],
    )
    job = cron_job(config, "ml", "http://kfp:8888")
    assert job["spec"]["schedule"] == "15 2 * * *" and job["metadata"]["namespace"] == "ml"
    assert job["spec"]["jobTemplate"]["spec"]["activeDeadlineSeconds"] == 6 * 3600
    kubernetes_validate.validate(job, KUBERNETES, strict=True)


def test_kubectl_kustomize_renders_the_shipped_folder() -> None:
    out = subprocess.run(
        [tool("kubectl"), "kustomize", str(SHIPPED)], capture_output=True, text=True, timeout=120, check=True
    )
    kinds = [o["kind"] for o in yaml.safe_load_all(out.stdout) if o]
    assert sorted(kinds) == ["ConfigMap", "CronJob", "ServiceAccount"]


def test_a_cronjob_the_operator_makes_uses_the_operators_store_and_shipped_ones_the_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The chart's bundled MinIO: the operator runs with its endpoint and Secret name.
    monkeypatch.setenv("KUBELOOP_S3_ENDPOINT", "http://kubeloop-minio.ml.svc:9000")
    monkeypatch.setenv("KUBELOOP_S3_CREDENTIALS", "kubeloop-minio")
    config = load_config(REPO / "examples" / "screening" / "config.yaml", ["store=s3://kubeloop"])
    env = cron_job(config, "ml", "http://kfp:8888")["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    env = {e["name"]: e for e in env["containers"][0]["env"]}
    assert env["KUBELOOP_S3_ENDPOINT"]["value"] == "http://kubeloop-minio.ml.svc:9000"
    assert env["AWS_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "kubeloop-minio"
    # What `make compile` writes does not depend on the shell it runs in.
    write_monitor(tmp_path)
    assert [p.read_text() for p in sorted(tmp_path.iterdir())] == [
        p.read_text() for p in sorted(SHIPPED.iterdir())
    ]
