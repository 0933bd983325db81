"""KFP component of the calibration step (logic in components.calibrate.step)."""

from kfp import dsl
from kfp.dsl import Metrics, Output

from components.common.images import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def calibrate(
    config_json: str,
    store_uri: str,
    run_id: str,
    splits: str,
    model: str,
    metrics: Output[Metrics],
) -> str:
    """Fit a temperature on the calibration split; returns the calibration prefix."""
    from components.calibrate.step import run
    from components.common.step import step_context, write_kfp_metrics

    with step_context(config_json, store_uri, run_id, "calibrate") as ctx:
        try:
            run(ctx, splits, model)
        finally:
            write_kfp_metrics(metrics, ctx.metrics)
        return ctx.prefix
