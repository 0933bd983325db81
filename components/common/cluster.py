"""Names the cluster side shares: the store's Secret and endpoint, labels, pod security."""

from __future__ import annotations

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


def store_env() -> list[dict[str, Any]]:
    """Container env for the store: endpoint, and credentials only by Secret reference."""
    return [
        {"name": "KUBELOOP_S3_ENDPOINT", "value": S3_ENDPOINT},
        *(
            {"name": env, "valueFrom": {"secretKeyRef": {"name": S3_SECRET, "key": key}}}
            for key, env in S3_SECRET_KEYS.items()
        ),
    ]
