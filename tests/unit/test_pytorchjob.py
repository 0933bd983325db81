"""The multi-node PyTorchJob: structure the Training Operator accepts, and its state read back."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest

from components.common.config import KubeloopConfig, TrainingConfig
from components.common.step import StepContext
from components.common.store import LocalStore
from components.train.pytorchjob import job_name, job_state, render_pytorchjob
from components.train.step import train_on_pytorchjob

GPU_NODES = TrainingConfig(
    nodes=4,
    min_nodes=2,
    nproc=8,
    max_restarts=3,
    resources={
        "gpus": 8,
        "cpu": "32",
        "memory": "256Gi",
        "shm_size": "32Gi",
        "node_selector": {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"},
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
    },
)


def _render(cfg: TrainingConfig = GPU_NODES, run_id: str = "20261123-071500-abc123") -> dict[str, Any]:
    return render_pytorchjob(
        cfg,
        run_id=run_id,
        namespace="kubeflow-user",
        image="ghcr.io/kubeloop/kubeloop:0.1.0",
        store_uri="s3://kubeloop",
        spec_key=f"runs/{run_id}/train/job/spec.json",
    )


def structure_problems(job: dict[str, Any]) -> list[str]:
    """What the Training Operator's v1 webhook and the pod spec rules would reject."""
    problems = []
    name = job["metadata"]["name"]
    if not re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", name) or len(name) > 63:
        problems.append(f"metadata.name {name!r} is not a DNS-1035 label")
    if (job["apiVersion"], job["kind"]) != ("kubeflow.org/v1", "PyTorchJob"):
        problems.append("not a kubeflow.org/v1 PyTorchJob")
    spec = job["spec"]
    replicas = spec["pytorchReplicaSpecs"]
    if set(replicas) - {"Master", "Worker"}:
        problems.append(f"replica types {sorted(replicas)} beyond Master/Worker")
    if replicas.get("Master", {}).get("replicas") != 1:
        problems.append("Master replicas must be 1")
    elastic = spec.get("elasticPolicy")
    if elastic is not None:
        if "Worker" not in replicas:
            problems.append("Worker must be configured if elastic policy is used")
        if elastic.get("rdzvBackend") not in ("c10d", "etcd", "etcd-v2"):
            problems.append("elasticPolicy.rdzvBackend must be c10d, etcd or etcd-v2")
        if not 1 <= elastic["minReplicas"] <= elastic["maxReplicas"]:
            problems.append("elasticPolicy needs 1 <= minReplicas <= maxReplicas")
        if "nProcPerNode" in elastic and "nprocPerNode" in spec:
            problems.append("elasticPolicy.nProcPerNode must not be used with spec.nprocPerNode")
    if not isinstance(spec.get("nprocPerNode"), str):
        problems.append("spec.nprocPerNode must be a string")
    for kind, replica in replicas.items():
        if replica.get("replicas", 1) < 1:
            problems.append(f"{kind} replicas must be at least 1")
        if replica.get("restartPolicy") not in (None, "Always", "OnFailure", "Never", "ExitCode"):
            problems.append(f"{kind} restartPolicy is not a valid value")
        pod = replica["template"]["spec"]
        containers = {c["name"]: c for c in pod["containers"]}
        if "pytorch" not in containers or not containers["pytorch"].get("image"):
            problems.append(f"{kind} needs a container named 'pytorch' with an image")
        volumes = {v["name"] for v in pod.get("volumes", [])}
        for container in pod["containers"]:
            missing = {m["name"] for m in container.get("volumeMounts", [])} - volumes
            if missing:
                problems.append(f"{kind} mounts undeclared volumes {sorted(missing)}")
            if any("value" in e and re.search(r"(?i)secret|access_key", e["name"]) for e in container["env"]):
                problems.append(f"{kind} puts a credential in a literal env value")
    return problems


def test_the_rendered_job_has_the_structure_the_operator_accepts() -> None:
    job = _render()
    assert structure_problems(job) == []
    spec = job["spec"]
    assert spec["nprocPerNode"] == "8"
    assert spec["elasticPolicy"] == {
        "rdzvBackend": "c10d",
        "minReplicas": 2,
        "maxReplicas": 4,
        "maxRestarts": 3,
    }
    assert spec["pytorchReplicaSpecs"]["Worker"]["replicas"] == 3  # + 1 Master = 4 nodes
    assert job["metadata"]["labels"]["kubeloop.dev/run-id"] == "20261123-071500-abc123"


def test_every_pod_gets_gpus_placement_shared_memory_and_a_restricted_context() -> None:
    for replica in _render()["spec"]["pytorchReplicaSpecs"].values():
        pod = replica["template"]["spec"]
        (container,) = pod["containers"]
        assert container["resources"] == {
            "requests": {"cpu": "32", "memory": "256Gi"},
            "limits": {"nvidia.com/gpu": 8},
        }
        assert container["args"][:3] == ["--nproc_per_node=8", "-m", "components.train.job"]
        assert container["args"][3:] == ["s3://kubeloop", "runs/20261123-071500-abc123/train/job/spec.json"]
        assert pod["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
        assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
        assert {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "32Gi"}} in pod["volumes"]
        security = container["securityContext"]
        assert security["runAsNonRoot"] and not security["allowPrivilegeEscalation"]
        assert security["readOnlyRootFilesystem"] and security["capabilities"] == {"drop": ["ALL"]}
        secrets = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"] if "valueFrom" in e}
        assert set(secrets) == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}


def test_a_cpu_job_asks_for_no_accelerator_and_is_not_elastic_by_default() -> None:
    job = _render(TrainingConfig(nodes=2, nproc=4))
    assert structure_problems(job) == []
    (container,) = job["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]["containers"]
    assert container["resources"]["limits"] == {}
    assert job["spec"]["elasticPolicy"]["minReplicas"] == job["spec"]["elasticPolicy"]["maxReplicas"] == 2


def test_the_structure_check_catches_what_the_operator_would_reject() -> None:
    job = _render()
    broken = copy.deepcopy(job)
    broken["metadata"]["name"] = "Run_1"
    broken["spec"]["pytorchReplicaSpecs"]["Master"]["replicas"] = 2
    broken["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]["containers"][0]["name"] = "main"
    broken["spec"]["elasticPolicy"]["minReplicas"] = 9
    problems = structure_problems(broken)
    assert len(problems) == 4, problems


def test_one_node_is_not_a_pytorchjob_and_names_are_dns_labels() -> None:
    with pytest.raises(ValueError, match="2 or more nodes"):
        _render(TrainingConfig(nodes=1))
    assert job_name("20261123_07:15 X" + "y" * 80).startswith("kubeloop-train-20261123-07-15-x")
    assert len(job_name("y" * 100)) == 63


@pytest.mark.parametrize(
    ("conditions", "state"),
    [
        ([], "running"),
        ([{"type": "Created", "status": "True", "reason": "PyTorchJobCreated"}], "running"),
        (
            [
                {"type": "Created", "status": "True"},
                {"type": "Running", "status": "False"},
                {"type": "Restarting", "status": "True", "message": "worker 1 exited 137"},
            ],
            "running",
        ),
        ([{"type": "Running", "status": "False"}, {"type": "Succeeded", "status": "True"}], "succeeded"),
        ([{"type": "Failed", "status": "True", "message": "backoff limit exceeded"}], "failed"),
    ],
)
def test_job_state_follows_the_last_true_condition(conditions: list[dict[str, str]], state: str) -> None:
    assert job_state({"status": {"conditions": conditions}})[0] == state


def test_a_failed_job_carries_its_message() -> None:
    failed = {"status": {"conditions": [{"type": "Failed", "status": "True", "message": "OOMKilled"}]}}
    assert job_state(failed) == ("failed", "OOMKilled")


def test_several_nodes_off_a_cluster_fail_with_what_to_do_instead(tmp_path: Path) -> None:
    config = KubeloopConfig.model_validate(
        {"name": "m", "dataset": {"path": "d.csv", "label": "y"}, "training": {"nodes": 2}}
    )
    ctx = StepContext(config=config, store=LocalStore(tmp_path), run_id="r1", step="train")
    with pytest.raises(RuntimeError, match="needs a cluster and an s3:// store.*use nodes: 1"):
        train_on_pytorchjob(ctx, "runs/r1/validate_data", {}, tmp_path)
    assert not (tmp_path / "runs").exists()  # nothing half-written
