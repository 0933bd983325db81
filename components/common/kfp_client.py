"""A kfp.Client for the KFP API, with the credentials a pod or a user has at hand."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

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
