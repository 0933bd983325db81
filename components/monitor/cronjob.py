"""The drift monitor as a Kubernetes CronJob: `kubeloop monitor --once` on the config's schedule.

The monitor needs no Kubernetes API access: it reads the request logs from the store
(credentials from the store's Secret), writes its checks there, and starts retraining runs
through the Kubeflow Pipelines API with a projected ServiceAccount token for that audience.
So its ServiceAccount has no Role, and the usual API token is not mounted at all.
"""

from __future__ import annotations

import json
from typing import Any

import yaml

from components.common.cluster import RUN_AS, restricted_container_security, shipped_store_env, store_env
from components.common.config import KubeloopConfig
from components.common.images import IMAGE
from components.common.kfp_client import TOKEN_PATH, TOKEN_PATH_ENV
from components.common.monitoring_config import duration_seconds

SERVICE_ACCOUNT = "kubeloop-monitor"
CONFIG_DIR = "/etc/kubeloop"
KFP_AUDIENCE = "pipelines.kubeflow.org"
"""Audience the KFP API server accepts ServiceAccount tokens for (Kubeflow's multi-user mode)."""


def _labels(config: KubeloopConfig) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "kubeloop",
        "app.kubernetes.io/component": "monitor",
        "app.kubernetes.io/part-of": "kubeloop",
        "kubeloop.dev/model": config.name,
    }


def config_map(config: KubeloopConfig, namespace: str) -> dict[str, Any]:
    """The resolved project config the monitor reads (no credentials live in it)."""
    text = yaml.safe_dump(json.loads(config.to_json()), sort_keys=False)
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": f"{config.name}-monitor-config",
            "namespace": namespace,
            "labels": _labels(config),
        },
        "data": {"config.yaml": text},
    }


def service_account(namespace: str) -> dict[str, Any]:
    """The monitor's identity: no API token mounted, no Role bound."""
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {
            "name": SERVICE_ACCOUNT,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/name": "kubeloop", "app.kubernetes.io/component": "monitor"},
        },
        "automountServiceAccountToken": False,
    }


def kfp_token_volume() -> dict[str, Any]:
    """A ServiceAccount token for the KFP API's audience, rotated by the kubelet (never a Secret)."""
    return {
        "name": "kfp-token",
        "projected": {
            "sources": [
                {
                    "serviceAccountToken": {
                        "audience": KFP_AUDIENCE,
                        "expirationSeconds": 7200,
                        "path": TOKEN_PATH.rsplit("/", 1)[1],
                    }
                }
            ]
        },
    }


def cron_job(
    config: KubeloopConfig,
    namespace: str,
    kfp_host: str,
    image: str = IMAGE,
    store: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """One monitor pass per `monitoring.schedule`; a pass never overlaps the previous one.

    `store`: the store env; by default the renderer's own (the operator's), see store_env.
    """
    window = duration_seconds(config.monitoring.window)
    labels = _labels(config)
    container = {
        "name": "monitor",
        "image": image,
        "command": ["kubeloop"],
        "args": ["monitor", "--once", "--config", f"{CONFIG_DIR}/config.yaml", "--host", kfp_host],
        "env": [
            *(store if store is not None else store_env()),
            {"name": TOKEN_PATH_ENV, "value": TOKEN_PATH},
            # The root filesystem is read-only: caches (matplotlib, Evidently) go to the emptyDir.
            {"name": "HOME", "value": "/tmp"},
            {"name": "MPLCONFIGDIR", "value": "/tmp/matplotlib"},
        ],
        "resources": {
            "requests": {"cpu": "500m", "memory": "1Gi"},
            "limits": {"cpu": "2", "memory": "2Gi"},
        },
        "securityContext": restricted_container_security(),
        "volumeMounts": [
            {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},
            {"name": "kfp-token", "mountPath": TOKEN_PATH.rsplit("/", 1)[0], "readOnly": True},
        ],
    }
    pod = {
        "metadata": {"labels": labels},
        "spec": {
            "serviceAccountName": SERVICE_ACCOUNT,
            "automountServiceAccountToken": False,
            "restartPolicy": "Never",
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": RUN_AS,
                "runAsGroup": RUN_AS,
                "fsGroup": RUN_AS,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [container],
            "volumes": [
                {"name": "config", "configMap": {"name": config_map(config, namespace)["metadata"]["name"]}},
                {"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}},
                kfp_token_volume(),
            ],
        },
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": f"{config.name}-monitor", "namespace": namespace, "labels": labels},
        "spec": {
            "schedule": config.monitoring.schedule,
            "timeZone": "Etc/UTC",  # windows are UTC; so is the schedule
            "concurrencyPolicy": "Forbid",
            # A pass missed by more than this is not worth running late: the next one catches up.
            "startingDeadlineSeconds": 600,
            "successfulJobsHistoryLimit": 3,
            "failedJobsHistoryLimit": 3,
            "jobTemplate": {
                "metadata": {"labels": labels},
                "spec": {
                    "backoffLimit": 2,
                    # A pass that outlives a window is stuck; the watermark lets the next resume.
                    "activeDeadlineSeconds": max(600, min(window, 6 * 3600)),
                    "ttlSecondsAfterFinished": 86400,
                    "template": pod,
                },
            },
        },
    }


def monitor_manifests(config: KubeloopConfig, namespace: str, kfp_host: str) -> list[dict[str, Any]]:
    """ServiceAccount, ConfigMap and CronJob of the monitor for one model."""
    cron = cron_job(config, namespace, kfp_host, store=shipped_store_env())
    return [service_account(namespace), config_map(config, namespace), cron]
