"""KFP component of the evaluation step (logic in components.evaluate.step)."""

from kfp import dsl
from kfp.dsl import ClassificationMetrics, Markdown, Metrics, Output

from components.common.images import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def evaluate(
    config_json: str,
    store_uri: str,
    run_id: str,
    splits: str,
    model: str,
    metrics: Output[Metrics],
    classification: Output[ClassificationMetrics],
    decision: Output[Markdown],
) -> str:
    """Score the test split as serving will (calibrated model, operating threshold), compare it
    with the champion and fail when a gate check fails (unless force_promote says otherwise)."""
    from components.common.step import step_context, write_kfp_metrics, write_kfp_text
    from components.evaluate.step import run

    with step_context(config_json, store_uri, run_id, "evaluate") as ctx:
        try:
            _, drawn, _ = run(ctx, splits, model)
            classification.log_confusion_matrix(drawn["labels"], drawn["matrix"])
            if drawn["roc"] is not None:  # one score (binary): its ROC with thresholds
                roc = drawn["roc"]
                classification.log_roc_curve(roc["fpr"], roc["tpr"], roc["thresholds"])
        finally:
            if ctx.store.exists(ctx.key("decision.md")):
                write_kfp_text(decision, ctx.store.read_text(ctx.key("decision.md")))
            write_kfp_metrics(metrics, ctx.metrics)
        return ctx.prefix
