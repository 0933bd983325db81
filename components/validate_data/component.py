"""KFP component of the data validation step (logic in components.validate_data.step)."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import HTML, Markdown, Metrics, Output

from components.common.images import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def validate_data(
    config_json: str,
    store_uri: str,
    run_id: str,
    kfp_run_id: str,
    parent_run: str,
    trigger: str,
    report: Output[Markdown],
    gallery: Output[HTML],
    metrics: Output[Metrics],
) -> NamedTuple("ValidateOutputs", [("run_id", str), ("splits", str)]):  # type: ignore[valid-type]  # noqa: F821,UP006
    """Check the dataset against the config's expectations and split it; fail on a bad check."""
    from collections import namedtuple

    from components.common.step import step_context, write_kfp_metrics, write_kfp_text
    from components.validate_data.gallery import GALLERY_FILE
    from components.validate_data.step import run

    resolved_run = run_id or f"kfp-{kfp_run_id}"
    with step_context(config_json, store_uri, resolved_run, "validate_data") as ctx:
        try:
            _, splits = run(ctx, parent_run, trigger)
        finally:
            if ctx.store.exists(ctx.key("report.md")):
                write_kfp_text(report, ctx.store.read_text(ctx.key("report.md")))
            if ctx.store.exists(ctx.key(GALLERY_FILE)):
                write_kfp_text(gallery, ctx.store.read_text(ctx.key(GALLERY_FILE)))
            write_kfp_metrics(metrics, ctx.metrics)
    ValidateOutputs = namedtuple("ValidateOutputs", ["run_id", "splits"])
    return ValidateOutputs(resolved_run, splits)
