"""KFP component of the training step (logic in components.train.step)."""

from kfp import dsl
from kfp.dsl import Metrics, Output

from components.common.images import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def train(config_json: str, store_uri: str, run_id: str, splits: str, metrics: Output[Metrics]) -> str:
    """Fit the MLP on the train split, export ONNX and the checkpoint; returns the model prefix."""
    from components.common.step import step_context, write_kfp_metrics
    from components.train.step import run

    with step_context(config_json, store_uri, run_id, "train") as ctx:
        try:
            return run(ctx, splits)
        finally:
            write_kfp_metrics(metrics, ctx.metrics)
