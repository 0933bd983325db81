"""KFP components of the monitor: assemble a retraining set, and check traffic windows."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import HTML, Markdown, Output

from components.common.images import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def assemble_data(
    config_json: str,
    store_uri: str,
    run_id: str,
    kfp_run_id: str,
    evidence: str,
    trigger: str,
) -> NamedTuple("AssembleOutputs", [("run_id", str), ("config_json", str)]):  # type: ignore[valid-type]  # noqa: F821,UP006
    """Build the retraining set (reference data plus labeled traffic) and the run's config."""
    from collections import namedtuple

    from components.common.step import step_context
    from components.monitor.step import run_assemble

    resolved_run = run_id or f"kfp-{kfp_run_id}"
    with step_context(config_json, store_uri, resolved_run, "assemble") as ctx:
        retrain_config = run_assemble(ctx, evidence, trigger)
    AssembleOutputs = namedtuple("AssembleOutputs", ["run_id", "config_json"])
    return AssembleOutputs(resolved_run, retrain_config)


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def check_traffic(
    config_json: str,
    store_uri: str,
    kfp_host: str,
    summary: Output[Markdown],
    report: Output[HTML],
) -> int:
    """Check every closed traffic window, decide, and start retraining runs on the cluster."""
    from components.common.step import write_kfp_text
    from components.monitor.step import run_checks

    text, html, started = run_checks(config_json, store_uri, kfp_host)
    write_kfp_text(summary, text)
    write_kfp_text(report, html)
    return started
