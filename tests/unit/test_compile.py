"""Compiled pipelines: golden files, loadable IR, manifests that validate against the CRDs."""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from kfp import components

from components.common.images import (
    CUDA_IMAGE_ENV,
    IMAGE,
    IMAGE_ENV,
    SERVING_IMAGE,
    SERVING_IMAGE_ENV,
    TRAINING_GPU_IMAGE,
)
from components.common.modalities.image_batches import PREFETCH
from pipelines.compile import CLUSTER_IMAGES_DATASET, CLUSTER_STORE, compile_all
from tests.conftest import REPO
from tests.k8s import load_crds, validate_object

GOLDEN = REPO / "manifests" / "pipelines"


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("compiled")
    compile_all(out)
    return out


def test_compiled_output_matches_the_golden_files(compiled: Path) -> None:
    names = sorted(p.name for p in compiled.iterdir())
    assert names == sorted(p.name for p in GOLDEN.iterdir())
    for name in names:
        fresh, golden = (compiled / name).read_text(), (GOLDEN / name).read_text()
        if fresh != golden:
            diff = "".join(
                difflib.unified_diff(
                    golden.splitlines(True), fresh.splitlines(True), f"golden/{name}", f"compiled/{name}", n=2
                )
            )
            pytest.fail(
                f"{name} differs from manifests/pipelines (run `make compile` if intended):\n" + diff[:4000]
            )


@pytest.mark.parametrize(
    "name", ["kubeloop-training", "kubeloop-training-gpu", "kubeloop-training-images-gpu"]
)
def test_ir_loads_back_as_a_pipeline(compiled: Path, name: str) -> None:
    loaded = components.load_component_from_file(str(compiled / f"{name}.yaml"))
    assert loaded.name == name
    assert set(loaded.component_spec.inputs or {}) == {
        "config_json",
        "store_uri",
        "run_id",
        "parent_run",
        "trigger",
    }


def test_ir_orders_the_dag_and_configures_the_cluster(compiled: Path) -> None:
    spec, platform = yaml.safe_load_all((compiled / "kubeloop-training.yaml").read_text())
    tasks = spec["root"]["dag"]["tasks"]
    assert set(tasks) == {"validate-data", "train", "evaluate", "calibrate", "register", "deploy"}
    assert tasks["train"]["dependentTasks"] == ["validate-data"]
    # Calibrate before evaluate: the gate measures calibrated scores at the operating point.
    assert set(tasks["calibrate"]["dependentTasks"]) == {"train", "validate-data"}
    assert set(tasks["evaluate"]["dependentTasks"]) == {"calibrate", "validate-data"}
    assert set(tasks["register"]["dependentTasks"]) == {"calibrate", "evaluate", "train", "validate-data"}
    assert set(tasks["deploy"]["dependentTasks"]) == {"register", "validate-data"}  # its version, run id
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    for executor in executors.values():
        env = {k["envVar"] for e in executor["secretAsEnv"] for k in e["keyToEnv"]}
        assert env == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
        # The rest of the restricted profile comes from the KFP backend (see on_cluster).
        user = {"runAsUser": "10001", "runAsGroup": "10001", "runAsNonRoot": True}
        assert executor["securityContext"] == user
    containers = spec["deploymentSpec"]["executors"]
    assert {c["container"]["image"] for c in containers.values()} == {IMAGE}
    # The steps that create pods are told the images to give them (pinned images follow).
    assert {"name": IMAGE_ENV, "value": IMAGE} in containers["exec-train"]["container"]["env"]
    serving = {"name": SERVING_IMAGE_ENV, "value": SERVING_IMAGE}
    assert serving in containers["exec-deploy"]["container"]["env"]
    assert containers["exec-train"]["container"]["resources"]["cpuRequest"] == 2


def _train_executor(compiled: Path, name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The train step's container spec and its Kubernetes platform settings."""
    spec, platform = yaml.safe_load_all((compiled / f"{name}.yaml").read_text())
    container = spec["deploymentSpec"]["executors"]["exec-train"]["container"]
    return container, platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]["exec-train"]


def _default_config(compiled: Path, name: str) -> dict[str, Any]:
    """The config a run of the compiled pipeline gets when it names none."""
    spec = yaml.safe_load((compiled / f"{name}.yaml").read_text().split("\n---\n")[0])
    return dict(json.loads(spec["root"]["inputDefinitions"]["parameters"]["config_json"]["defaultValue"]))


def _bytes(quantity: str) -> int:
    """A Kubernetes binary quantity (16Gi, 512Mi) in bytes."""
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
    return int(quantity[:-2]) * units[quantity[-2:]] if quantity[-2:] in units else int(quantity)


def test_the_gpu_variant_asks_for_gpus_placement_and_shared_memory(compiled: Path) -> None:
    container, pod = _train_executor(compiled, "kubeloop-training-gpu")
    accelerator = container["resources"]["accelerator"]
    assert (accelerator["resourceType"], accelerator["resourceCount"]) == ("nvidia.com/gpu", "4")
    assert container["resources"]["resourceCpuRequest"] == "16"
    assert pod["nodeSelector"]["labels"] == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert pod["emptyDirMounts"] == [
        {"volumeName": "dshm", "mountPath": "/dev/shm", "medium": "Memory", "sizeLimit": "16Gi"}
    ]
    spec = yaml.safe_load((compiled / "kubeloop-training-gpu.yaml").read_text().split("\n---\n")[0])
    config = _default_config(compiled, "kubeloop-training-gpu")
    assert config["training"]["nproc"] == 4  # one torchrun process per requested GPU
    # CUDA PyTorch for the GPU pod (and its PyTorchJob workers); every other step keeps the main image.
    assert container["image"] == TRAINING_GPU_IMAGE
    assert {"name": CUDA_IMAGE_ENV, "value": TRAINING_GPU_IMAGE} in container["env"]
    executors = spec["deploymentSpec"]["executors"]
    others = {e["container"]["image"] for n, e in executors.items() if n != "exec-train"}
    assert others == {IMAGE}


def test_the_image_gpu_variant_asks_for_gpus_cpus_for_its_loaders_and_shared_memory_for_their_batches(
    compiled: Path,
) -> None:
    name = "kubeloop-training-images-gpu"
    container, pod = _train_executor(compiled, name)
    config = _default_config(compiled, name)
    dataset, training = config["dataset"], config["training"]
    assert dataset["modality"] == "images" and dataset["path"] == CLUSTER_IMAGES_DATASET
    assert config["store"] == CLUSTER_STORE
    accelerator = container["resources"]["accelerator"]
    gpus = training["resources"]["gpus"]
    assert (accelerator["resourceType"], accelerator["resourceCount"]) == ("nvidia.com/gpu", str(gpus))
    assert training["nproc"] == gpus == 4 and training["device"] == "cuda"
    # Each GPU's torchrun process decodes through its own DataLoader workers: a CPU for the
    # process and one per worker.
    workers = dataset["image"]["workers"]
    assert workers >= 1
    assert int(container["resources"]["resourceCpuRequest"]) == gpus * (1 + workers)
    assert _bytes(container["resources"]["resourceMemoryRequest"]) >= 64 * 2**30
    assert pod["nodeSelector"]["labels"] == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    ((shm),) = pod["emptyDirMounts"]
    assert (shm["mountPath"], shm["medium"]) == ("/dev/shm", "Memory")
    # The workers' prefetched batches wait in /dev/shm: room for them four times over (NCCL's
    # buffers and the validation loaders' batches share it).
    channels, (height, width) = dataset["image"]["channels"], dataset["image"]["size"]
    in_flight = gpus * workers * PREFETCH * training["batch_size"] * channels * height * width * 4
    assert _bytes(shm["sizeLimit"]) >= 4 * in_flight
    # The CUDA image, derived from the GPUs as for the table variant (no image of the team's).
    assert training["resources"]["image"] is None
    tables, _ = _train_executor(compiled, "kubeloop-training-gpu")
    assert container["image"] == tables["image"] == TRAINING_GPU_IMAGE
    assert {"name": CUDA_IMAGE_ENV, "value": TRAINING_GPU_IMAGE} in container["env"]
    assert {"name": IMAGE_ENV, "value": IMAGE} in container["env"]
    spec = yaml.safe_load((compiled / f"{name}.yaml").read_text().split("\n---\n")[0])
    others = {
        e["container"]["image"] for n, e in spec["deploymentSpec"]["executors"].items() if n != "exec-train"
    }
    assert others == {IMAGE}


def test_the_cpu_variant_asks_for_no_gpu_and_still_gets_shared_memory(compiled: Path) -> None:
    container, pod = _train_executor(compiled, "kubeloop-training")
    assert "accelerator" not in container["resources"]
    assert container["image"] == IMAGE
    assert "nodeSelector" not in pod and "tolerations" not in pod
    assert pod["emptyDirMounts"][0]["mountPath"] == "/dev/shm"


def test_recalibrate_pipeline_evaluates_before_it_registers(compiled: Path) -> None:
    spec, platform = yaml.safe_load_all((compiled / "kubeloop-recalibrate.yaml").read_text())
    tasks = spec["root"]["dag"]["tasks"]
    assert set(tasks) == {"recalibrate", "evaluate", "register"}
    assert tasks["evaluate"]["dependentTasks"] == ["recalibrate"]
    assert set(tasks["register"]["dependentTasks"]) == {"recalibrate", "evaluate"}
    assert "model_version" in spec["root"]["inputDefinitions"]["parameters"]
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert len(executors) == 3 and all(e["secretAsEnv"] for e in executors.values())


@pytest.mark.parametrize(
    "name",
    [
        "kubeloop-training",
        "kubeloop-training-gpu",
        "kubeloop-training-images-gpu",
        "kubeloop-recalibrate",
        "kubeloop-retraining",
        "kubeloop-monitoring",
    ],
)
def test_manifests_validate_against_the_shared_crds(compiled: Path, name: str) -> None:
    crds = load_crds()
    docs = list(yaml.safe_load_all((compiled / f"{name}.k8s.yaml").read_text()))
    assert [d["kind"] for d in docs] == ["Pipeline", "PipelineVersion"]
    for doc in docs:
        validate_object(doc, crds)
    version = docs[1]
    assert docs[0]["metadata"]["name"] == name
    assert version["spec"]["pipelineName"] == name
    ir_spec, ir_platform = yaml.safe_load_all((compiled / f"{name}.yaml").read_text())
    assert version["spec"]["pipelineSpec"] == ir_spec
    assert version["spec"]["platformSpec"] == ir_platform


def test_compiling_a_users_config_with_overrides(tmp_path: Path) -> None:
    paths = compile_all(tmp_path, REPO / "examples" / "breast_cancer" / "config.yaml", ["training.nproc=2"])
    assert [p.name for p in paths] == [
        "kubeloop-training-breast-cancer.yaml",
        "kubeloop-training-breast-cancer.k8s.yaml",
        "image-fields.yaml",
        "kustomization.yaml",
    ]
    assert "- kubeloop-training-breast-cancer.k8s.yaml" in paths[-1].read_text()


def test_the_crd_check_catches_a_broken_manifest(compiled: Path) -> None:
    crds = load_crds()
    doc = list(yaml.safe_load_all((compiled / "kubeloop-training.k8s.yaml").read_text()))[1]
    del doc["spec"]["pipelineSpec"]
    with pytest.raises(jsonschema.ValidationError, match="pipelineSpec"):
        validate_object(doc, crds)
    with pytest.raises(AssertionError, match="no CRD"):
        validate_object({**doc, "apiVersion": "pipelines.kubeflow.org/v9"}, crds)


def test_retraining_assembles_the_data_before_the_training_path(compiled: Path) -> None:
    spec, platform = yaml.safe_load_all((compiled / "kubeloop-retraining.yaml").read_text())
    tasks = spec["root"]["dag"]["tasks"]
    assert tasks["validate-data"]["dependentTasks"] == ["assemble-data"]
    config = tasks["train"]["inputs"]["parameters"]["config_json"]
    assert config["taskOutputParameter"] == {
        "producerTask": "assemble-data",
        "outputParameterKey": "config_json",
    }
    assert set(spec["root"]["inputDefinitions"]["parameters"]) >= {"evidence", "trigger", "run_id"}
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert len(executors) == 7 and all(e["secretAsEnv"] for e in executors.values())


def test_a_derived_image_carrying_the_teams_model_is_recorded_for_the_train_pod(tmp_path: Path) -> None:
    derived = "registry.example/team-kubeloop@sha256:" + "0" * 64
    compile_all(
        tmp_path, REPO / "examples" / "own_model" / "config.yaml", [f"training.resources.image={derived}"]
    )
    name = "kubeloop-training-own-model"
    container, _ = _train_executor(tmp_path, name)
    assert container["image"] == derived
    # The pod's PyTorchJob workers (training.nodes > 1) must import the same model code.
    assert {"name": IMAGE_ENV, "value": derived} in container["env"]
    assert {"name": CUDA_IMAGE_ENV, "value": derived} in container["env"]
    spec = yaml.safe_load((tmp_path / f"{name}.yaml").read_text().split("\n---\n")[0])
    others = {
        e["container"]["image"] for n, e in spec["deploymentSpec"]["executors"].items() if n != "exec-train"
    }
    assert others == {IMAGE}  # calibrate, evaluate, register and deploy run the ONNX export only
