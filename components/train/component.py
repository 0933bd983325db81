"""KFP component of the training step (logic in components.train.step)."""

from kfp import dsl
from kfp.dsl import HTML, Metrics, Output

from components.common.images import IMAGE, TRAINING_GPU_IMAGE


def _train(
    config_json: str,
    store_uri: str,
    run_id: str,
    splits: str,
    metrics: Output[Metrics],
    loss_curve: Output[HTML],
) -> str:
    """Fit the MLP under torchrun, export ONNX and the checkpoint; returns the model prefix."""
    from components.common.plots import img_tag
    from components.common.step import step_context, write_kfp_metrics, write_kfp_text
    from components.train.step import run

    with step_context(config_json, store_uri, run_id, "train") as ctx:
        try:
            prefix = run(ctx, splits)
            write_kfp_text(loss_curve, img_tag(ctx.store.read_bytes(ctx.key("loss_curve.png")), "loss curve"))
            return prefix
        finally:
            write_kfp_metrics(metrics, ctx.metrics)


train = dsl.component(base_image=IMAGE, install_kfp_package=False)(_train)
train_gpu = dsl.component(base_image=TRAINING_GPU_IMAGE, install_kfp_package=False)(_train)
"""The same step in the CUDA image, for a train pod that asks for GPUs."""
