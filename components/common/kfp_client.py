"""A kfp.Client for the KFP API, with the credentials a pod or a user has at hand, and what we ask of it."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from components.common.config import KubeloopConfig

RETRAINING_PIPELINE = "kubeloop-retraining"
"""Name of the retraining pipeline in Kubeflow Pipelines (pipelines/retraining.py compiles it)."""
MONITORING_PIPELINE = "kubeloop-monitoring"
"""Name of the monitoring pipeline in Kubeflow Pipelines (pipelines/monitoring.py compiles it)."""
TOKEN_PATH_ENV = "KF_PIPELINES_SA_TOKEN_PATH"
TOKEN_PATH = "/var/run/secrets/kubeflow/pipelines/token"
"""Where a pod's projected ServiceAccount token for the KFP API lies (audience pipelines.kubeflow.org)."""
TOKEN_ENV = "KUBELOOP_KFP_TOKEN"
"""A bearer token from outside (e.g. `kubectl create token`) when no projected token exists."""


def kfp_client(host: str) -> Any:
    """kfp.Client for `host`: a projected ServiceAccount token when the pod has one (refreshed by the
    kubelet, read on each request), else $KUBELOOP_KFP_TOKEN, else no credentials (single-user KFP
    or a port-forward)."""
    import kfp
    from kfp.client.set_volume_credentials import ServiceAccountTokenVolumeCredentials

    path = os.environ.get(TOKEN_PATH_ENV, TOKEN_PATH)
    if Path(path).is_file():
        return kfp.Client(host=host, credentials=ServiceAccountTokenVolumeCredentials(path))
    token = os.environ.get(TOKEN_ENV)
    return kfp.Client(host=host, existing_token=token) if token else kfp.Client(host=host)


def api_error(exc: BaseException, host: str) -> str | None:
    """A one-line reason for a failed KFP API call, or None when `exc` is not one."""
    import urllib3
    from kfp_server_api.exceptions import ApiException

    if isinstance(exc, ApiException):
        message = exc.body
        try:
            message = json.loads(exc.body or "{}").get("message") or exc.body
        except (TypeError, ValueError):
            pass
        return f"the Kubeflow Pipelines API at {host} answered {exc.status} {exc.reason}: {message}"
    if isinstance(exc, urllib3.exceptions.HTTPError):
        return f"cannot reach the Kubeflow Pipelines API at {host}: {exc}; check --host (and port-forward)"
    return None


def pipeline_version(client: Any, pipeline_name: str, version_id: str | None = None) -> tuple[str, str]:
    """(pipeline id, version id) of a registered pipeline: the pinned version, or its newest.

    Raises:
        ValueError: The pipeline is not registered, or has no version.
    """
    pipeline_id = client.get_pipeline_id(pipeline_name)
    if pipeline_id is None:
        raise ValueError(
            f"pipeline {pipeline_name!r} is not registered in Kubeflow Pipelines: apply "
            "manifests/pipelines/ (kubectl apply -k) or upload it with the kfp client"
        )
    if version_id:
        return str(pipeline_id), version_id
    versions = client.list_pipeline_versions(pipeline_id, page_size=1, sort_by="created_at desc")
    found = versions.pipeline_versions or []
    if not found:
        raise ValueError(f"pipeline {pipeline_name!r} has no version; upload one")
    return str(pipeline_id), str(found[0].pipeline_version_id)


def experiment_id(client: Any, name: str) -> str:
    """The id of the KFP experiment `name`, created when missing."""
    try:
        return str(client.get_experiment(experiment_name=name).experiment_id)
    except ValueError:
        return str(client.create_experiment(name).experiment_id)


def kfp_cron(cron: str) -> str:
    """KFP's 6-field cron (seconds first) from a 5-field one.

    Raises:
        ValueError: Not 5 fields.
    """
    fields = cron.split()
    if len(fields) != 5:
        raise ValueError(
            f"cron {cron!r} must have 5 fields (minute hour day month weekday), e.g. '0 3 * * 1'"
        )
    return "0 " + " ".join(fields)


def recurring_run(config: KubeloopConfig, which: str, cron: str) -> dict[str, Any]:
    """What `kubeloop schedule` asks KFP for: pipeline, cron, parameters."""
    pipeline = RETRAINING_PIPELINE if which == "retraining" else MONITORING_PIPELINE
    params = {"trigger": "schedule"} if which == "retraining" else {}
    return {
        "job_name": f"{config.name}-{which}",
        "pipeline": pipeline,
        "cron_expression": kfp_cron(cron),
        "max_concurrency": 1,
        "no_catchup": True,
        "params": params,
    }


def create_recurring_run(
    client: Any, config: KubeloopConfig, spec: dict[str, Any], version: str | None = None
) -> str:
    """Create the recurring run `recurring_run` describes; its id. `version` pins a pipeline version.

    Raises:
        ValueError: The pipeline is not registered, or has no version.
    """
    pipeline_id, version_id = pipeline_version(client, spec["pipeline"], version)
    created = client.create_recurring_run(
        experiment_id(client, config.monitoring.trigger.experiment),
        spec["job_name"],
        cron_expression=spec["cron_expression"],
        max_concurrency=spec["max_concurrency"],
        no_catchup=spec["no_catchup"],
        params=spec["params"],
        pipeline_id=pipeline_id,
        version_id=version_id,
    )
    return str(created.recurring_run_id)
