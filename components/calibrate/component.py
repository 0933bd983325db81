"""KFP components of the calibration step and of recalibration (logic in components.calibrate)."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Markdown, Metrics, Output

from components.common.images import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def calibrate(
    config_json: str,
    store_uri: str,
    run_id: str,
    splits: str,
    model: str,
    metrics: Output[Metrics],
    report: Output[Markdown],
) -> str:
    """Fit the calibration map and operating point; returns the servable model's prefix."""
    from components.calibrate.step import run
    from components.common.step import step_context, write_kfp_metrics, write_kfp_text

    with step_context(config_json, store_uri, run_id, "calibrate") as ctx:
        try:
            run(ctx, splits, model)
            write_kfp_text(report, ctx.store.read_text(ctx.key("calibration.md")))
        finally:
            write_kfp_metrics(metrics, ctx.metrics)
        return ctx.prefix


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def recalibrate(
    config_json: str,
    store_uri: str,
    run_id: str,
    kfp_run_id: str,
    model_version: str,
    metrics: Output[Metrics],
    report: Output[Markdown],
) -> NamedTuple(  # type: ignore[valid-type]  # noqa: UP006
    "RecalibrateOutputs",
    [("run_id", str), ("splits", str), ("model", str), ("calibration", str), ("lineage", str)],
):
    """Choose a registered version's threshold again for the config's target; no retraining."""
    from collections import namedtuple

    from components.calibrate.recalibrate import run
    from components.common.step import step_context, write_kfp_metrics, write_kfp_text

    resolved_run = run_id or f"kfp-{kfp_run_id}"
    with step_context(config_json, store_uri, resolved_run, "recalibrate") as ctx:
        try:
            prefixes = run(ctx, model_version)
            write_kfp_text(report, ctx.store.read_text(ctx.key("calibration.md")))
        finally:
            write_kfp_metrics(metrics, ctx.metrics)
    RecalibrateOutputs = namedtuple(
        "RecalibrateOutputs", ["run_id", "splits", "model", "calibration", "lineage"]
    )
    return RecalibrateOutputs(resolved_run, *(prefixes[k] for k in RecalibrateOutputs._fields[1:]))
