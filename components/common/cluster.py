"""Names the cluster side shares: the store's Secret and endpoint, labels, pod security."""

from __future__ import annotations

import os
from typing import Any

S3_SECRET = "kubeloop-s3"
"""Kubernetes Secret with keys `accesskey` and `secretkey` for the artifact store."""
S3_ENDPOINT = "http://minio-service.kubeflow:9000"
"""The MinIO that Kubeflow Pipelines installs; the kubeloop store lives in its own bucket."""
S3_SECRET_KEYS = {"accesskey": "AWS_ACCESS_KEY_ID", "secretkey": "AWS_SECRET_ACCESS_KEY"}
"""Secret key -> environment variable the store client reads."""
RUN_AS = 10001
"""The non-root user and group of every kubeloop image (images/*/Dockerfile)."""


def restricted_container_security() -> dict[str, Any]:
    """The Pod Security Standards 'restricted' profile, plus a read-only root filesystem."""
    return {
        "runAsNonRoot": True,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


S3_ENDPOINT_ENV = "KUBELOOP_S3_ENDPOINT"
S3_SECRET_ENV = "KUBELOOP_S3_CREDENTIALS"
"""Name of the store's Secret, set on the operator and on steps that create pods."""


def store_env(endpoint: str | None = None, secret: str | None = None) -> list[dict[str, Any]]:
    """Container env for the store: endpoint, and credentials only by Secret reference.

    Without arguments, the store of the process that renders: a step or the operator hands its
    own endpoint and Secret (KUBELOOP_S3_ENDPOINT, KUBELOOP_S3_CREDENTIALS) to the pods it creates, so
    a chart or overlay that moves the store moves them too; else the MinIO of Kubeflow Pipelines.
    """
    endpoint = endpoint or os.environ.get(S3_ENDPOINT_ENV) or S3_ENDPOINT
    secret = secret or os.environ.get(S3_SECRET_ENV) or S3_SECRET
    return [
        {"name": S3_ENDPOINT_ENV, "value": endpoint},
        {"name": S3_SECRET_ENV, "value": secret},
        *(
            {"name": env, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}
            for key, env in S3_SECRET_KEYS.items()
        ),
    ]


def shipped_store_env() -> list[dict[str, Any]]:
    """store_env for manifests written at compile time: the defaults, whatever this shell has set."""
    return store_env(S3_ENDPOINT, S3_SECRET)


class NoCredentials(RuntimeError):
    """Neither in a pod nor with a usable kubeconfig."""


def custom_objects_api(context: str | None = None) -> Any:
    """A CustomObjectsApi from the pod's service account, else the kubeconfig (KUBECONFIG,
    ~/.kube/config), so a step or the operator also runs from a workstation against a cluster.

    Raises:
        NoCredentials: Neither works; the message says what to set.
    """
    from kubernetes import client, config

    try:
        config.load_incluster_config()
    except config.ConfigException:
        try:
            # Read KUBECONFIG now: the client reads it once, when first imported.
            config.load_kube_config(config_file=os.environ.get("KUBECONFIG") or None, context=context)
        except (config.ConfigException, FileNotFoundError, TypeError) as exc:
            raise NoCredentials(
                f"no cluster credentials: not in a pod, and no usable kubeconfig ({exc}); "
                "set KUBECONFIG or pass --context"
            ) from None
    return client.CustomObjectsApi()
