"""The recalibrate DAG: recalibrate -> evaluate -> register, for a new operating point.

A registered version's threshold is chosen again on its stored validation predictions for
the config's `calibration.target_recall` / `target_specificity`; the result is evaluated on
the same test rows (against the floors and the champion, like any candidate) and registered
as a new version that shares the weights. No retraining.

No `from __future__ import annotations` here: kfp reads the pipeline signature's real types.
"""

from collections.abc import Callable
from typing import Any

from kfp import dsl

from components.calibrate.component import recalibrate
from components.evaluate.component import evaluate
from components.register.component import register
from pipelines.training import on_cluster

RECALIBRATE_PIPELINE = "kubeloop-recalibrate"
RECALIBRATE_STEPS = ("recalibrate", "evaluate", "register")


def make_recalibrate_pipeline(
    default_config_json: str, default_store: str, cluster: bool, name: str = RECALIBRATE_PIPELINE
) -> Callable[..., Any]:
    """Build the pipeline; `cluster` adds the store Secret, endpoint and resource requests.

    Args:
        default_config_json: Resolved config used when a run gives none; its calibration
            targets say where the new threshold goes.
        default_store: Artifact store URI used when a run gives none.
        cluster: Add secrets, endpoint and resource requests for Kubeflow Pipelines.
        name: Pipeline name.
    """

    @dsl.pipeline(
        name=name,
        description="Move a registered model's operating point (target recall or specificity) "
        "on its stored predictions, evaluate it and register it as a new version with the same weights.",
    )
    def recalibration(
        model_version: str,
        config_json: str = default_config_json,
        store_uri: str = default_store,
        run_id: str = "",
    ) -> None:
        common = {"config_json": config_json, "store_uri": store_uri}
        moved = recalibrate(
            **common, run_id=run_id, kfp_run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER, model_version=model_version
        ).set_display_name("recalibrate")
        rid, splits, servable = moved.outputs["run_id"], moved.outputs["splits"], moved.outputs["calibration"]
        scored = evaluate(**common, run_id=rid, splits=splits, model=servable)
        scored.set_display_name("evaluate")
        registered = register(
            **common,
            run_id=rid,
            splits=splits,
            model=moved.outputs["model"],
            evaluation=scored.outputs["Output"],
            calibration=servable,
            lineage=moved.outputs["lineage"],
        ).set_display_name("register")
        if cluster:
            for task, cpu, memory in (
                (moved, "500m", "1Gi"),
                (scored, "1", "2Gi"),
                (registered, "500m", "1Gi"),
            ):
                on_cluster(task, cpu, memory)

    return recalibration
