"""Several nodes: the train step as a Kubeflow Training Operator PyTorchJob (kubeflow.org/v1).

One Master and nodes-1 Workers, each pod running torchrun with `nproc_per_node` processes
and c10d rendezvous through the Master (elastic between min_nodes and nodes). Pods share
only the artifact store: `components.train.job` reads the splits from it, checkpoints to it
and writes the result there, which the train step picks up to export and check as usual.
Rendering and reading the job's state are pure functions; submitting is a thin client call.
"""

from __future__ import annotations

import copy
import re
import time
from collections.abc import Callable
from typing import Any

from components.common.cluster import restricted_container_security, store_env
from components.common.config import TrainingConfig

GROUP, VERSION, PLURAL = "kubeflow.org", "v1", "pytorchjobs"
CONTAINER = "pytorch"
"""The Training Operator finds the training container by this name."""


def job_name(run_id: str) -> str:
    """A DNS-1035 label (the operator's webhook rejects anything else), unique per run."""
    slug = re.sub(r"[^a-z0-9-]", "-", run_id.lower()).strip("-")
    return f"kubeloop-train-{slug}"[:63].rstrip("-")


def _pod_template(cfg: TrainingConfig, image: str, args: list[str], labels: dict[str, str]) -> dict[str, Any]:
    resources = cfg.resources
    limits: dict[str, Any] = {resources.accelerator: resources.gpus} if resources.gpus else {}
    container = {
        "name": CONTAINER,
        "image": image,
        "command": ["python", "-m", "torch.distributed.run"],
        "args": [f"--nproc_per_node={cfg.nproc}", "-m", "components.train.job", *args],
        "env": [
            *store_env(),
            {"name": "TORCH_DISABLE_SHARE_RDZV_TCP_STORE", "value": "1"},  # see step.launch
        ],
        "resources": {"requests": {"cpu": resources.cpu, "memory": resources.memory}, "limits": limits},
        "securityContext": restricted_container_security(),
        "volumeMounts": [{"name": "dshm", "mountPath": "/dev/shm"}, {"name": "tmp", "mountPath": "/tmp"}],
    }
    spec: dict[str, Any] = {
        "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [container],
        "volumes": [
            {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": resources.shm_size}},
            {"name": "tmp", "emptyDir": {}},  # the root filesystem is read-only
        ],
    }
    if resources.node_selector:
        spec["nodeSelector"] = dict(resources.node_selector)
    if resources.tolerations:
        spec["tolerations"] = [t.model_dump(exclude_none=True) for t in resources.tolerations]
    return {"metadata": {"labels": labels}, "spec": spec}


def render_pytorchjob(
    cfg: TrainingConfig, *, run_id: str, namespace: str, image: str, store_uri: str, spec_key: str
) -> dict[str, Any]:
    """The PyTorchJob for `cfg.nodes` pods; `spec_key` names the worker spec in the store."""
    if cfg.nodes < 2:
        raise ValueError(f"a PyTorchJob is for 2 or more nodes; training.nodes is {cfg.nodes}")
    labels = {
        "app.kubernetes.io/name": "kubeloop",
        "app.kubernetes.io/component": "train",
        "kubeloop.dev/run-id": job_name(run_id).removeprefix("kubeloop-train-"),
    }
    template = _pod_template(cfg, image, [store_uri, spec_key], labels)

    def replicas(count: int) -> dict[str, Any]:
        # A copy each: shared dicts would serialise as YAML anchors and edit together.
        return {"replicas": count, "restartPolicy": "OnFailure", "template": copy.deepcopy(template)}

    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "PyTorchJob",
        "metadata": {"name": job_name(run_id), "namespace": namespace, "labels": labels},
        "spec": {
            "nprocPerNode": str(cfg.nproc),
            "elasticPolicy": {
                "rdzvBackend": "c10d",
                "minReplicas": cfg.min_nodes or cfg.nodes,
                "maxReplicas": cfg.nodes,
                "maxRestarts": cfg.max_restarts,
            },
            "runPolicy": {"cleanPodPolicy": "None", "backoffLimit": max(cfg.max_restarts, 1) * cfg.nodes},
            "pytorchReplicaSpecs": {"Master": replicas(1), "Worker": replicas(cfg.nodes - 1)},
        },
    }


def job_state(job: dict[str, Any]) -> tuple[str, str]:
    """('running' | 'succeeded' | 'failed', message) from a PyTorchJob's status conditions."""
    conditions = job.get("status", {}).get("conditions") or []
    for condition in reversed(conditions):
        if condition.get("status") != "True":
            continue
        kind = condition.get("type")
        message = condition.get("message") or condition.get("reason") or ""
        if kind == "Succeeded":
            return "succeeded", message
        if kind == "Failed":
            return "failed", message
        if kind in ("Created", "Running", "Restarting"):
            return "running", f"{kind}: {message}".rstrip(": ")
    return "running", "waiting for the Training Operator"


def run_pytorchjob(
    job: dict[str, Any],
    log: Callable[[str], Any] = print,
    timeout_s: float = 7 * 24 * 3600,
    poll_s: float = 15.0,
) -> None:
    """Create the job (in-cluster credentials, else the kubeconfig), follow it to the end;
    raise if it failed."""
    from kubernetes import client  # the cluster path only

    from components.common.cluster import custom_objects_api

    api = custom_objects_api()
    namespace, name = job["metadata"]["namespace"], job["metadata"]["name"]
    try:
        api.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, job)
    except client.ApiException as error:
        if error.status != 409:  # 409: a retried step finds its job already there; follow it
            raise
    deadline, last = time.monotonic() + timeout_s, ""
    while time.monotonic() < deadline:
        current = api.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
        state, message = job_state(current)
        if message != last:
            log(f"PyTorchJob {namespace}/{name}: {message}")
            last = message
        if state == "succeeded":
            return
        if state == "failed":
            raise RuntimeError(f"PyTorchJob {namespace}/{name} failed: {message}; see its pods' logs")
        time.sleep(poll_s)
    raise TimeoutError(f"PyTorchJob {namespace}/{name} did not finish within {timeout_s:.0f} s")
