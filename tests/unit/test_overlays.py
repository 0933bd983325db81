"""manifests/overlays/{dev,gpu}: valid after `kubectl kustomize`, restricted, images pinned everywhere."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.common.images import DOCKERFILES, TRAINING_GPU_IMAGE
from tests.conftest import REPO, tool
from tests.k8s import assert_restricted, pod_spec, validate_rendered

OVERLAYS = REPO / "manifests" / "overlays"
IMAGE_REF = re.compile(r"ghcr\.io/kubeloop/kubeloop[\w-]*(?::[\w.-]+)?(?:@sha256:[0-9a-f]{64})?")


def kustomize(folder: Path) -> list[dict[str, Any]]:
    out = subprocess.run(
        [tool("kubectl"), "kustomize", str(folder)], capture_output=True, text=True, timeout=120, check=True
    ).stdout
    return [o for o in yaml.safe_load_all(out) if o]


@pytest.fixture(scope="module")
def built() -> dict[str, list[dict[str, Any]]]:
    return {name: kustomize(OVERLAYS / name) for name in ("dev", "gpu")}


def test_there_are_the_dev_and_gpu_overlays() -> None:
    assert sorted(p.name for p in OVERLAYS.iterdir()) == ["dev", "gpu"]


@pytest.mark.parametrize("name", ["dev", "gpu"])
def test_every_object_validates_and_every_pod_is_restricted(
    built: dict[str, list[dict[str, Any]]], name: str
) -> None:
    objects = built[name]
    validate_rendered(objects)
    pods = [(o, pod) for o in objects if (pod := pod_spec(o)) is not None]
    assert pods
    for obj, pod in pods:
        assert_restricted(pod, f"{name}: {obj['kind']}/{obj['metadata']['name']}")


@pytest.mark.parametrize("name", ["dev", "gpu"])
def test_the_overlay_pins_every_kubeloop_image(name: str) -> None:
    pinned = yaml.safe_load((OVERLAYS / name / "kustomization.yaml").read_text())["images"]
    names = {image.rsplit(":", 1)[0] for image in DOCKERFILES}
    assert {p["name"] for p in pinned} == names  # all four images, each with a tag or digest
    assert all(p.get("newTag") or p.get("digest") for p in pinned)


def test_a_digest_set_on_an_overlay_reaches_pipelines_and_env_values(tmp_path: Path) -> None:
    # What `kustomize edit set image NAME=NAME@sha256:...` writes, over the shipped gpu overlay.
    digests = {name.rsplit(":", 1)[0]: f"sha256:{i:064x}" for i, name in enumerate(sorted(DOCKERFILES), 1)}
    (tmp_path / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "resources": [os.path.relpath(OVERLAYS / "gpu", tmp_path)],  # kustomize: no absolute paths
                "images": [{"name": name, "digest": digest} for name, digest in digests.items()],
            }
        )
    )
    text = yaml.safe_dump_all(kustomize(tmp_path))
    found = set(IMAGE_REF.findall(text))
    assert found, "no kubeloop image found"
    unpinned = {ref for ref in found if "@sha256:" not in ref}
    assert unpinned == set(), f"not pinned (missing from image-fields.yaml?): {sorted(unpinned)}"
    # Including the executors' images and the KUBELOOP_*IMAGE env values pods hand on.
    cuda = TRAINING_GPU_IMAGE.rsplit(":", 1)[0]
    assert re.search(rf"image: {re.escape(cuda)}(:[\w.-]+)?@{digests[cuda]}", text)


def test_dev_drops_the_gpu_pipeline_and_makes_the_operator_verbose(
    built: dict[str, list[dict[str, Any]]],
) -> None:
    names = {o["metadata"]["name"] for o in built["dev"] if o["kind"] in {"Pipeline", "PipelineVersion"}}
    assert names and not any("gpu" in n for n in names)
    operator = next(o for o in built["dev"] if o["kind"] == "Deployment")
    assert "--verbose" in operator["spec"]["template"]["spec"]["containers"][0]["args"]


def test_gpu_places_the_train_pods_on_the_pool(built: dict[str, list[dict[str, Any]]]) -> None:
    versions = {
        o["metadata"]["name"]: o
        for o in built["gpu"]
        if o["kind"] == "PipelineVersion" and o["metadata"]["name"].endswith("-gpu-v0-1-0")
    }
    assert set(versions) == {"kubeloop-training-gpu-v0-1-0", "kubeloop-training-images-gpu-v0-1-0"}
    for version in versions.values():
        train = version["spec"]["platformSpec"]["platforms"]["kubernetes"]["deploymentSpec"]["executors"][
            "exec-train"
        ]
        assert train["nodeSelector"]["labels"]["kubeloop.dev/pool"] == "training-gpu"
        assert {
            "key": "kubeloop.dev/pool",
            "operator": "Equal",
            "value": "training-gpu",
            "effect": "NoSchedule",
        } in (train["tolerations"])
        container = version["spec"]["pipelineSpec"]["deploymentSpec"]["executors"]["exec-train"]["container"]
        assert container["image"] == TRAINING_GPU_IMAGE
