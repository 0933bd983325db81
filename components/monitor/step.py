"""Step bodies of the monitor's pipeline components: assemble the retraining set, check windows."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from components.common.step import StepContext
from components.monitor.assemble import assemble, retraining_config

EVIDENCE_FILE = "evidence.json"
"""Why the run started (a drift check's evidence); validate_data copies it into lineage."""


def run_assemble(ctx: StepContext, evidence_json: str, trigger: str) -> str:
    """Write the retraining set and the evidence; returns the config JSON the later steps get."""
    evidence: dict[str, Any] = json.loads(evidence_json) if evidence_json else {}
    ctx.store.write_json(ctx.key(EVIDENCE_FILE), {"trigger": trigger, **evidence})
    assembled = assemble(ctx.store, ctx.config, ctx.key("dataset.parquet"), datetime.now(UTC))
    ctx.store.write_json(ctx.key("assembled.json"), assembled.to_dict())
    ctx.metrics.update(
        reference_rows=assembled.reference_rows,
        traffic_rows=assembled.traffic_rows,
        labeled_rows_available=assembled.labeled_rows_available,
        labeled_rows_without_inputs=assembled.labeled_rows_without_inputs,
    )
    ctx.notes.append(
        f"{assembled.reference_rows} reference rows + {assembled.traffic_rows} labeled served rows "
        f"({assembled.labeled_rows_available} available in {ctx.config.monitoring.retraining.traffic_window})"
    )
    if assembled.labeled_rows_without_inputs:
        ctx.notes.append(
            f"{assembled.labeled_rows_without_inputs} labeled served rows left out: serving did not keep "
            "their inputs (deployment.serving.sample_share)"
        )
    ctx.notes.extend(f"skipped {key}: {why}" for key, why in assembled.skipped_files.items())
    return retraining_config(ctx.config, assembled.path).to_json()


def run_checks(config_json: str, store_uri: str, kfp_host: str) -> tuple[str, str, int]:
    """One monitor pass with runs started through KFP; (markdown summary, last report HTML, runs started)."""
    from components.common.config import KubeloopConfig
    from components.common.kfp_client import kfp_client
    from components.common.store import open_store
    from components.monitor.launch import KfpLauncher
    from components.monitor.monitor import monitor_pass

    config = KubeloopConfig.from_json(config_json)
    store = open_store(store_uri)
    trigger = config.monitoring.trigger
    launcher = KfpLauncher(kfp_client(kfp_host), trigger.experiment, trigger.pipeline_version)
    lines: list[str] = []
    result = monitor_pass(store, config, launcher, progress=lines.append)
    text = "\n".join(["# Drift monitor", "", *(f"- {line}" for line in lines), "", result.waiting]) + "\n"
    reports = [c.report for c in result.checks if c.report]
    html = store.read_text(reports[-1]) if reports else f"<p>No report this pass. {result.waiting}</p>"
    return text, html, len(result.started)
