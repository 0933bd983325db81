"""Recalibrate: move a registered model's operating point on its stored predictions, no retraining.

The calibration map stays as fitted; only the threshold is chosen again, on the stored
calibrated validation predictions, for the new target. The result is a servable folder
for a new version that shares the source version's weights (the same model.onnx bytes).
"""

from __future__ import annotations

import hashlib
from typing import Any

import pandas as pd

from components.calibrate.step import aim, rate_names, render_report
from components.common import calibration
from components.common.artifacts import DatasetSchema
from components.common.modalities import INPUTS_FILE
from components.common.registry import Registry
from components.common.step import StepContext

COPIED = ("model.onnx", INPUTS_FILE, "predictions.parquet", "reliability.png")


def _predictions(ctx: StepContext, prefix: str) -> pd.DataFrame:
    with ctx.store.local_copy(f"{prefix}/predictions.parquet") as path:
        return pd.read_parquet(path)


def run(ctx: StepContext, version: str) -> dict[str, str]:
    """The step body. Returns the prefixes the evaluate and register steps need.

    Raises:
        ValueError: The version does not exist, predates stored predictions, or its
            source run's splits are gone (evaluate re-scores the same test rows).
    """
    registry = Registry(ctx.store)
    name = ctx.config.name
    if version not in registry.versions(name):
        known = ", ".join(registry.versions(name)) or "none"
        raise ValueError(
            f"{name} has no ready version {version!r} (versions: {known}); see `kubeloop models`"
        )
    source = registry.version_prefix(name, version)
    if not ctx.store.exists(f"{source}/predictions.parquet"):
        raise ValueError(
            f"{name} v{version} has no stored predictions (registered before recalibration existed); "
            "train a new version once, then recalibrate that one"
        )
    lineage = ctx.store.read_json(f"{source}/lineage.json")
    splits = f"runs/{lineage['run_id']}/validate_data"
    if not ctx.store.exists(f"{splits}/splits/test.parquet"):
        raise ValueError(
            f"{splits}/splits is gone: the new version is evaluated on v{version}'s test rows; "
            "restore that run's folder or train a new version"
        )
    old = calibration.normalise(
        ctx.store.read_json(f"{source}/calibration.json"), ctx.config.evaluation.threshold
    )
    task = DatasetSchema.read(ctx.store, source).make_task()
    stored = _predictions(ctx, source)
    parts = {
        split: (
            task.probabilities(old, {"logit": task.logits_from_columns(rows)}),
            rows["label"].to_numpy(),
        )
        for split, rows in stored.groupby("split")
    }
    cfg = ctx.config.calibration
    point = task.operating_point(
        ("validation", *parts["validation"]),
        ("test", *parts["test"]),
        cfg.target_recall,
        cfg.target_specificity,
        ctx.config.evaluation.threshold,
        ctx.config.evaluation.confidence,
    )
    weights = ctx.store.read_bytes(f"{source}/model.onnx")
    record: dict[str, Any] = {
        **old,
        "operating_point": point,
        "recalibrated_from": {
            "version": version,
            "threshold": old["operating_point"].get("threshold"),
            "target": old["operating_point"].get("target"),
            "model_sha256": hashlib.sha256(weights).hexdigest(),
        },
    }
    for file in COPIED:
        if ctx.store.exists(f"{source}/{file}"):
            ctx.store.write_bytes(ctx.key(file), ctx.store.read_bytes(f"{source}/{file}"))
    ctx.store.write_text(ctx.key("calibration.md"), render_report(record, task))
    ctx.store.write_json(ctx.key("calibration.json"), record)
    ctx.store.write_json(
        ctx.key("lineage.json"),
        {
            **lineage,
            "run_id": ctx.run_id,
            "parent_run": lineage["run_id"],
            "trigger": "recalibrate",
            "recalibrated_from": record["recalibrated_from"],
        },
    )
    test = point["rates"]["test"]
    rates = ", ".join(f"{k} {test[k]:.4f}" for k in rate_names(test))
    print(
        f"{name} v{version} ({task.describe_calibration(record)}): "
        f"{task.describe_point(old['operating_point'])} -> {task.describe_point(point)} for {aim(point)}; "
        f"test {rates}",
        flush=True,
    )
    ctx.metrics.update(source_version=int(version))
    if point.get("threshold") is not None:
        ctx.metrics["threshold"] = round(point["threshold"], 4)
    ctx.notes.append(f"recalibrated {name} v{version}: {task.describe_point(point)} (same weights)")
    return {"splits": splits, "model": source, "calibration": ctx.prefix, "lineage": ctx.key("lineage.json")}
