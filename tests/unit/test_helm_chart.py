"""helm/kubeloop: lints strictly, renders valid manifests for every values file, restricted pods,
the same platform as manifests/base, and images that agree with components.common.images."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.common.images import IMAGE, OPERATOR_IMAGE, SERVING_IMAGE, TRAINING_GPU_IMAGE
from operators.crds import all_crds
from operators.manifests import rules, write_chart
from tests.conftest import REPO, tool
from tests.k8s import assert_restricted, pod_spec, validate_rendered

CHART = REPO / "helm" / "kubeloop"
VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
NAMESPACE = "ml"


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run([tool("helm"), *args], capture_output=True, text=True, timeout=120, check=check)


def render(*args: str) -> list[dict[str, Any]]:
    out = helm("template", "rel", str(CHART), "-n", NAMESPACE, "--include-crds", *args).stdout
    return [o for o in yaml.safe_load_all(out) if o]


@pytest.fixture(scope="module")
def renders() -> dict[str, list[dict[str, Any]]]:
    """The default values and each ci/*-values.yaml, rendered once."""
    found = {"default": render()}
    for path in VALUES:
        found[path.stem] = render("-f", str(path))
    return found


def named(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]


@pytest.mark.parametrize("values", [None, *VALUES], ids=lambda v: v.stem if v else "default")
def test_helm_lint_strict_passes(values: Path | None) -> None:
    result = helm("lint", "--strict", str(CHART), *(["-f", str(values)] if values else []), check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_rendered_object_validates_against_kubernetes_and_the_crds(
    renders: dict[str, list[dict[str, Any]]],
) -> None:
    for objects in renders.values():
        validate_rendered(objects)


def test_every_container_of_every_pod_is_restricted_and_asks_for_resources(
    renders: dict[str, list[dict[str, Any]]],
) -> None:
    checked = 0
    for name, objects in renders.items():
        for obj in objects:
            pod = pod_spec(obj)
            if pod is not None:
                checked += assert_restricted(pod, f"{name}: {obj['kind']}/{obj['metadata']['name']}")
    assert checked >= 2 * len(renders)  # operator + test pod everywhere, MinIO where enabled


def test_the_values_schema_refuses_unknown_keys_bad_enums_and_moving_images() -> None:
    for args, expected in (
        (["--set", "operatr.replicas=2"], "additional properties 'operatr' not allowed"),
        (["--set", "images.pullPolicy=Sometimes"], "/images/pullPolicy"),
        (["--set", "operator.logLevel=loud"], "/operator/logLevel"),
        (["--set", "operator.replicas=0"], "/operator/replicas"),
        (["--set", "images.operator.digest=sha256:abc"], "/images/operator/digest"),
        (["--set", "minio.image=quay.io/minio/minio:latest"], "/minio/image"),
        (["--set", "store.uri=/data/kubeloop"], "/store/uri"),
        (["--set", "operator.resources.requests=null"], "missing property 'requests'"),
    ):
        result = helm("template", "rel", str(CHART), *args, check=False)
        assert result.returncode != 0, args
        assert expected in result.stderr, result.stderr


def test_the_chart_installs_what_manifests_base_does(renders: dict[str, list[dict[str, Any]]]) -> None:
    objects = renders["default"]
    crds = sorted(c["metadata"]["name"] for c in named(objects, "CustomResourceDefinition"))
    assert crds == sorted(c["metadata"]["name"] for c in all_crds())
    role = named(objects, "Role", "rel-kubeloop-operator")[0]
    assert role["rules"] == rules()  # least privilege, verb for verb the same as the base
    assert named(objects, "KopfPeering", "kubeloop")  # the peering the handlers ask for
    assert named(objects, "ServiceAccount", "kubeloop-monitor")  # what RetrainPolicy CronJobs run as
    deployment = named(objects, "Deployment", "rel-kubeloop-operator")[0]
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert f"--namespace={NAMESPACE}" in args
    pipelines = {o["metadata"]["name"] for o in named(objects, "Pipeline")}
    assert pipelines == {f"kubeloop-{p}" for p in ("training", "recalibrate", "retraining", "monitoring")}
    assert {o["metadata"]["namespace"] for o in named(objects, "PipelineVersion")} == {"kubeflow"}
    # Optional features are off unless asked.
    assert not named(objects, "NetworkPolicy") and not named(objects, "PersistentVolumeClaim")
    assert not [o for o in objects if o["metadata"]["name"].endswith("-minio")]


def test_the_generated_parts_of_the_chart_are_what_compile_writes(tmp_path: Path) -> None:
    for path in write_chart(tmp_path, REPO / "manifests" / "pipelines"):
        shipped = CHART / path.relative_to(tmp_path)
        assert shipped.exists() and shipped.read_text() == path.read_text(), f"run `make compile`: {shipped}"
    shipped = {p.name for p in (CHART / "files" / "pipelines").iterdir()}
    assert shipped == {p.name for p in (REPO / "manifests" / "pipelines").glob("*.k8s.yaml")}


def images_in(objects: list[dict[str, Any]]) -> set[str]:
    """Every image a rendered object names: containers, pipeline executors, image env values."""
    text = yaml.safe_dump_all(objects)
    host = r"[a-z0-9-]+(?:\.[a-z0-9-]+)+"  # a registry host has a dot: s3://bucket/kubeloop is no image
    return set(re.findall(host + r"/[\w./-]*/kubeloop[\w-]*(?::[\w.-]+)?(?:@sha256:[0-9a-f]{64})?", text))


def test_the_charts_default_images_are_the_ones_the_components_use(
    renders: dict[str, list[dict[str, Any]]],
) -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())["images"]
    by_key = {"kubeloop": IMAGE, "cuda": TRAINING_GPU_IMAGE, "serving": SERVING_IMAGE}
    for key, image in {**by_key, "operator": OPERATOR_IMAGE}.items():
        assert f"{values['registry']}/{values[key]['repository']}:{values[key]['tag']}" == image, key
        assert not values[key]["digest"]
    template = (CHART / "templates" / "pipelines.yaml").read_text()
    for image in (IMAGE, TRAINING_GPU_IMAGE, SERVING_IMAGE):  # what the template re-targets
        assert f'"{image}"' in template
    objects = renders["default"]
    deployment = named(objects, "Deployment", "rel-kubeloop-operator")[0]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == OPERATOR_IMAGE
    assert {"name": "KUBELOOP_IMAGE", "value": IMAGE} in container["env"]
    # The CUDA one too: a train step hands it to PyTorchJob workers that ask for GPUs.
    assert images_in(objects) == {IMAGE, TRAINING_GPU_IMAGE, SERVING_IMAGE, OPERATOR_IMAGE}


def test_pinned_values_pin_every_image_everywhere(renders: dict[str, list[dict[str, Any]]]) -> None:
    objects = renders["pinned-values"]
    found = images_in(objects)
    assert found and all(re.search(r"@sha256:[0-9a-f]{64}$", image) for image in found), found
    assert all(image.startswith("registry.example.com/mirror/kubeloop/") for image in found)
    text = yaml.safe_dump_all(objects)
    assert "ghcr.io/kubeloop" not in text  # not in executors, env values nor the default config
    assert "https://s3.eu-west-1.amazonaws.com" in text and "minio-service.kubeflow" not in text
    assert {o["metadata"]["namespace"] for o in named(objects, "PipelineVersion")} == {"team-ml"}
    pod = named(objects, "Deployment", "kl-operator")[0]["spec"]["template"]["spec"]
    assert pod["imagePullSecrets"] == [{"name": "registry-example-com"}]


def test_the_gpu_pool_places_the_train_step_in_the_cuda_image(
    renders: dict[str, list[dict[str, Any]]],
) -> None:
    gpu_pipelines = {"kubeloop-training-gpu", "kubeloop-training-images-gpu"}
    default = {o["metadata"]["name"] for o in named(renders["default"], "Pipeline")}
    assert default and not default & gpu_pipelines
    values = yaml.safe_load((CHART / "ci" / "gpu-values.yaml").read_text())["gpu"]
    for name in sorted(gpu_pipelines):
        version = named(renders["gpu-values"], "PipelineVersion", f"{name}-v0-1-0")[0]
        platform = version["spec"]["platformSpec"]["platforms"]["kubernetes"]
        train = platform["deploymentSpec"]["executors"]["exec-train"]
        assert train["nodeSelector"] == {"labels": values["nodeSelector"]}
        assert train["tolerations"] == values["tolerations"]
        executor = version["spec"]["pipelineSpec"]["deploymentSpec"]["executors"]["exec-train"]["container"]
        assert executor["image"] == TRAINING_GPU_IMAGE
        assert executor["resources"]["accelerator"]["resourceType"] == "nvidia.com/gpu"


def test_bundled_minio_is_the_store_with_generated_credentials_kept_in_a_secret(
    renders: dict[str, list[dict[str, Any]]],
) -> None:
    objects = renders["minio-values"]
    secret = named(objects, "Secret", "rel-kubeloop-minio")[0]
    assert set(secret["data"]) == {"accesskey", "secretkey"}
    assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    again = named(render("-f", str(CHART / "ci" / "minio-values.yaml")), "Secret", "rel-kubeloop-minio")[0]
    assert again["data"] != secret["data"]  # generated per install, never a value in the chart
    operator = named(objects, "Deployment", "rel-kubeloop-operator")[0]["spec"]["template"]["spec"]
    env = {e["name"]: e for e in operator["containers"][0]["env"]}
    assert env["KUBELOOP_S3_ENDPOINT"]["value"] == f"http://rel-kubeloop-minio.{NAMESPACE}.svc:9000"
    assert env["AWS_ACCESS_KEY_ID"]["valueFrom"]["secretKeyRef"]["name"] == "rel-kubeloop-minio"
    assert env["KUBELOOP_S3_CREDENTIALS"]["value"] == "rel-kubeloop-minio"  # for the pods it makes
    assert named(objects, "PersistentVolumeClaim", "rel-kubeloop-minio")
    policies = {o["metadata"]["name"] for o in named(objects, "NetworkPolicy")}
    assert policies == {"rel-kubeloop-operator", "rel-kubeloop-monitor", "rel-kubeloop-minio"}
    existing = render("--set", "minio.enabled=true", "--set", "minio.existingSecret=my-minio")
    assert not named(existing, "Secret")
    minio = named(existing, "Deployment", "rel-kubeloop-minio")[0]["spec"]["template"]["spec"]
    assert minio["containers"][0]["env"][0]["valueFrom"]["secretKeyRef"]["name"] == "my-minio"


def test_notes_tell_the_user_how_to_check_the_install() -> None:
    result = helm("install", "rel", str(CHART), "-n", NAMESPACE, "--dry-run=client", check=False)
    assert result.returncode == 0, result.stderr
    notes = result.stdout.split("NOTES:", 1)[1]
    assert f"kubectl -n {NAMESPACE} rollout status deployment/rel-kubeloop-operator" in notes
    assert f"helm test rel -n {NAMESPACE}" in notes
    assert "kubectl -n kubeflow get pipelines.pipelines.kubeflow.org" in notes
    assert "create secret generic kubeloop-s3" in notes


def test_the_chart_test_pod_runs_the_selfcheck_against_the_operator_and_store(
    renders: dict[str, list[dict[str, Any]]],
) -> None:
    pod = named(renders["default"], "Pod", "rel-kubeloop-test")[0]
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    container = pod["spec"]["containers"][0]
    assert container["command"] == ["python", "-m", "operators.selfcheck"]
    service = named(renders["default"], "Service", "rel-kubeloop-operator")[0]
    port = service["spec"]["ports"][0]["port"]
    assert f"--operator-url=http://rel-kubeloop-operator.{NAMESPACE}.svc:{port}/healthz" in container["args"]
    assert "--store=s3://kubeloop" in container["args"]
