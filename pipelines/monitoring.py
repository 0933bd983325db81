"""The monitoring DAG: one step that checks every closed traffic window and starts retraining runs.

Meant as a KFP recurring run (`kubeloop schedule --pipeline monitoring`); the CronJob in
manifests/monitor/ does the same without KFP. Both keep one monitor per model: the state in
the store is replaced with a compare-and-swap.

No `from __future__ import annotations` here: kfp reads the pipeline signature's real types.
"""

from collections.abc import Callable
from typing import Any

from kfp import dsl

from components.common.kfp_client import MONITORING_PIPELINE
from components.monitor.component import check_traffic
from pipelines.training import on_cluster

KFP_IN_CLUSTER = "http://ml-pipeline.kubeflow.svc.cluster.local:8888"
"""The KFP API from inside the cluster (the step starts retraining runs there)."""


def make_monitoring_pipeline(
    default_config_json: str, default_store: str, cluster: bool, name: str = MONITORING_PIPELINE
) -> Callable[..., Any]:
    """Build the pipeline; `cluster` adds the store Secret, endpoint and resource requests."""

    @dsl.pipeline(
        name=name,
        description="Check logged serving traffic for data drift, prediction drift and performance decay "
        "against the production model's reference; start the retraining pipeline on a finding.",
    )
    def monitoring(
        config_json: str = default_config_json, store_uri: str = default_store, kfp_host: str = KFP_IN_CLUSTER
    ) -> None:
        checked = check_traffic(config_json=config_json, store_uri=store_uri, kfp_host=kfp_host)
        checked.set_display_name("check traffic")
        if cluster:
            on_cluster(checked, "1", "2Gi")

    return monitoring
