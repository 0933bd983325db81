"""Compiled pipelines: golden files, loadable IR, manifests that validate against the CRDs."""

from __future__ import annotations

import difflib
from pathlib import Path

import jsonschema
import pytest
import yaml
from kfp import components

from pipelines.compile import compile_all
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


def test_ir_loads_back_as_a_pipeline(compiled: Path) -> None:
    loaded = components.load_component_from_file(str(compiled / "kubeloop-training.yaml"))
    assert loaded.name == "kubeloop-training"
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
    assert set(tasks) == {"validate-data", "train", "evaluate", "calibrate", "register"}
    assert tasks["train"]["dependentTasks"] == ["validate-data"]
    assert set(tasks["calibrate"]["dependentTasks"]) == {"evaluate", "train", "validate-data"}
    assert set(tasks["register"]["dependentTasks"]) == {"calibrate", "evaluate", "train", "validate-data"}
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    for executor in executors.values():
        env = {k["envVar"] for e in executor["secretAsEnv"] for k in e["keyToEnv"]}
        assert env == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
    containers = spec["deploymentSpec"]["executors"]
    assert all(c["container"]["image"].startswith("ghcr.io/kubeloop/kubeloop:") for c in containers.values())
    assert containers["exec-train"]["container"]["resources"]["cpuRequest"] == 2


def test_manifests_validate_against_the_shared_crds(compiled: Path) -> None:
    crds = load_crds()
    docs = list(yaml.safe_load_all((compiled / "kubeloop-training.k8s.yaml").read_text()))
    assert [d["kind"] for d in docs] == ["Pipeline", "PipelineVersion"]
    for doc in docs:
        validate_object(doc, crds)
    version = docs[1]
    assert version["spec"]["pipelineName"] == docs[0]["metadata"]["name"]
    ir_spec, ir_platform = yaml.safe_load_all((compiled / "kubeloop-training.yaml").read_text())
    assert version["spec"]["pipelineSpec"] == ir_spec
    assert version["spec"]["platformSpec"] == ir_platform


def test_the_crd_check_catches_a_broken_manifest(compiled: Path) -> None:
    crds = load_crds()
    doc = list(yaml.safe_load_all((compiled / "kubeloop-training.k8s.yaml").read_text()))[1]
    del doc["spec"]["pipelineSpec"]
    with pytest.raises(jsonschema.ValidationError, match="pipelineSpec"):
        validate_object(doc, crds)
    with pytest.raises(AssertionError, match="no CRD"):
        validate_object({**doc, "apiVersion": "pipelines.kubeflow.org/v9"}, crds)
