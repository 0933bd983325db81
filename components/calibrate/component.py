"""KFP component of the calibration step (logic in components.calibrate.step)."""

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
    from components.calibrate.step import render_report, run
    from components.common.step import step_context, write_kfp_metrics, write_kfp_text

    with step_context(config_json, store_uri, run_id, "calibrate") as ctx:
        try:
            write_kfp_text(report, render_report(run(ctx, splits, model)))
        finally:
            write_kfp_metrics(metrics, ctx.metrics)
        return ctx.prefix
