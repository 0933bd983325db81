"""The retraining DAG: assemble -> validate_data -> train -> calibrate -> evaluate -> register -> deploy.

Started by the monitor (trigger `drift`, with the evidence) or on a schedule (`kubeloop
schedule`, trigger `schedule`). The assemble step mixes the reference data with recent
labeled traffic and hands every later step a config that points at the new set and rolls
the new version out as configured (monitoring.retraining.deploy: shadow, canary,
shadow-canary or none).
The rest is the training DAG's path, gates included.

No `from __future__ import annotations` here: kfp reads the pipeline signature's real types.
"""

from collections.abc import Callable
from typing import Any

from kfp import dsl

from components.common.config import KubeloopConfig
from components.common.kfp_client import RETRAINING_PIPELINE
from components.monitor.component import assemble_data
from components.validate_data.component import validate_data
from pipelines.training import on_cluster, train_to_deploy

RETRAINING_STEPS = ("assemble", "validate_data", "train", "calibrate", "evaluate", "register", "deploy")


def make_retraining_pipeline(
    default_config_json: str, default_store: str, cluster: bool, name: str = RETRAINING_PIPELINE
) -> Callable[..., Any]:
    """Build the pipeline; `cluster` adds the store Secret, endpoint, resources and the train pod's GPUs.

    Args:
        default_config_json: Resolved config used when a run gives none.
        default_store: Artifact store URI used when a run gives none.
        cluster: Add Kubernetes settings for Kubeflow Pipelines.
        name: Pipeline name.
    """
    resources = KubeloopConfig.from_json(default_config_json).training.resources

    @dsl.pipeline(
        name=name,
        description="Mix the reference data with recent labeled traffic, then validate, train, calibrate, "
        "evaluate (gates against floors and the production model), register and roll out as a shadow or "
        "canary. Started by the drift monitor (with its evidence) or on a schedule.",
    )
    def retraining(
        config_json: str = default_config_json,
        store_uri: str = default_store,
        run_id: str = "",
        evidence: str = "",
        trigger: str = "schedule",
    ) -> None:
        assembled = assemble_data(
            config_json=config_json,
            store_uri=store_uri,
            run_id=run_id,
            kfp_run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
            evidence=evidence,
            trigger=trigger,
        ).set_display_name("assemble data")
        rid = assembled.outputs["run_id"]
        common = {"config_json": assembled.outputs["config_json"], "store_uri": store_uri}
        checked = validate_data(
            **common, run_id=rid, kfp_run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER, parent_run="", trigger=trigger
        ).set_display_name("validate data")
        if cluster:
            on_cluster(assembled, "1", "2Gi")
            on_cluster(checked, "1", "2Gi")
        train_to_deploy(common, rid, checked.outputs["splits"], cluster, resources)

    return retraining
