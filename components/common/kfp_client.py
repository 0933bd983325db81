"""A kfp.Client for the KFP API, with the credentials a pod or a user has at hand."""

from __future__ import annotations

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
