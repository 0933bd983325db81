"""Evaluate the calibrated model on the held-out test split, against the champion, and gate it."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from components.common import calibration
from components.common.artifacts import DatasetSchema
from components.common.modalities import INPUTS_FILE
from components.common.registry import Registry
from components.common.scoring import calibrated_scores, load_split
from components.common.step import GateFailed, StepContext
from components.evaluate.baseline import Baseline
from components.evaluate.champion import regression_checks, score_champion
from components.evaluate.gallery import GALLERY_FILE, error_gallery
from components.evaluate.metrics import gate_checks
from components.evaluate.plots import evaluation_plots
from components.evaluate.report import (
    render_champion,
    render_decision,
    render_override,
    render_slices,
)
from components.evaluate.slices import error_table, render_slice_comparison, slice_table, worst_slice


def _baseline_metrics(
    ctx: StepContext,
    splits: str,
    model: str,
    schema: DatasetSchema,
    test: pd.DataFrame,
    y: np.ndarray,
    metrics: dict[str, float],
) -> tuple[dict[str, Any], str]:
    """The logistic-regression baseline (multinomial for several classes), fitted on the train
    split and scored on the same rows, cut where the task compares it fairly with the model.

    Its scores are not calibrated like the model's, so one threshold would mean different
    things for the two (binary: the baseline is cut where it reaches the model's recall).
    """
    task, modality = schema.make_task(), schema.make_modality()
    train = load_split(ctx.store, splits, "train")
    inputs = modality.load_inputs(ctx.store.read_json(f"{model}/{INPUTS_FILE}"))
    weighting = ctx.config.training.class_weighting
    fitted = Baseline.fit(modality, inputs, train, task.frame_targets(train), weighting)
    p = task.from_class_columns(fitted.class_probabilities(test))
    point, cut = task.baseline_point(p, y, metrics)
    return task.scores(y, p, point).summary(), cut


def _json_safe(value: Any) -> Any:
    """NaN and infinities become null: JSON has no NaN, and readers choke on it."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def run(ctx: StepContext, splits: str, model: str) -> tuple[dict[str, float], dict[str, Any], str]:
    """The step body: score test as serving will, compare, gate. Raises GateFailed.

    Args:
        ctx: The step context.
        splits: Prefix of validate_data's outputs.
        model: Prefix of a servable model folder, as calibrate writes it: model.onnx,
            preprocessing.json and calibration.json (map and operating point).

    Returns:
        (metrics, the confusion matrix and ROC for the Kubeflow UI, decision markdown).
    """
    schema = DatasetSchema.read(ctx.store, splits)
    task, modality = schema.make_task(), schema.make_modality()
    test = load_split(ctx.store, splits, "test")
    y = task.frame_targets(test)
    cfg = ctx.config.evaluation
    record = calibration.normalise(ctx.store.read_json(f"{model}/calibration.json"), cfg.threshold)
    _, p = calibrated_scores(ctx.store, model, record, test, task, modality)
    point = dict(record["operating_point"])
    scores = task.scores(y, p, point)
    metrics = scores.summary()
    intervals = scores.intervals(cfg.bootstrap_resamples, cfg.confidence) if cfg.bootstrap_resamples else {}
    baseline, cut = (
        _baseline_metrics(ctx, splits, model, schema, test, y, metrics) if cfg.baseline else (None, "")
    )
    primary = cfg.primary_metric or task.slice_metrics[0]
    slices = slice_table(test, task, y, scores, cfg.slices)
    worst = worst_slice(slices, metrics[primary], primary, cfg.min_slice_rows)
    errors = error_table(test, task.errors(y, task.decide(p, point)), cfg.slices)
    gallery = error_gallery(test, task, y, p, point, modality, schema.features, cfg.slices)
    ctx.store.write_text(ctx.key(GALLERY_FILE), gallery)
    checks = gate_checks(metrics, cfg, baseline, worst)
    comparison: dict[str, Any] | None = None
    champion = None
    if cfg.max_regression:
        champion = score_champion(Registry(ctx.store), task, ctx.config.name, test, cfg.threshold)
        if champion is not None:
            champion_checks, comparison = regression_checks(task, y, scores, champion, cfg)
            checks += champion_checks
            if champion.probabilities is not None:
                theirs = task.scores(y, champion.probabilities, champion.point)
                comparison["slices"] = slice_table(test, task, y, theirs, cfg.slices)
    failed = [c for c in checks if not c["passed"]]
    forced = bool(failed) and cfg.force_promote
    drawn = task.curves(y, p)
    labels, matrix = scores.confusion()
    decision = render_decision(
        metrics,
        checks,
        task.describe_point(point),
        intervals,
        cfg.confidence,
        baseline,
        task.baseline_metrics,
        cut,
    )
    decision += render_champion(comparison, cfg) if cfg.max_regression else ""
    decision += render_override(cfg.force_promote, cfg.force_reason, failed)
    decision += render_slices(slices, worst, errors, cfg.min_slice_rows, task.slice_metrics)
    if comparison and comparison.get("slices"):
        decision += render_slice_comparison(
            slices, comparison["slices"], comparison["version"], task.slice_metrics
        )
    ctx.store.write_json(
        ctx.key("metrics.json"),
        _json_safe(
            {
                "threshold": point.get("threshold"),
                "operating_point": record["operating_point"].get("target"),
                "calibration": record["method"],
                "split": "test",
                **metrics,
                "confusion": {"labels": labels, "matrix": matrix},
                "intervals": intervals,
                "confidence": cfg.confidence,
                "bootstrap_resamples": cfg.bootstrap_resamples,
                "baseline": baseline,
                "champion": comparison,
                "slices": slices,
                "worst_slice": worst,
                "errors": errors,
            }
        ),
    )
    ctx.store.write_json(ctx.key("curves.json"), drawn)
    rival = (
        task.curves(y, champion.probabilities)
        if comparison and champion and champion.probabilities is not None
        else None
    )
    for name, image in evaluation_plots(drawn, metrics, labels, matrix, rival).items():
        ctx.store.write_bytes(ctx.key(name), image)
    ctx.store.write_json(
        ctx.key("decision.json"),
        _json_safe(
            {
                "passed": not failed,
                "promoted": not failed or forced,
                "forced": forced,
                "reason": cfg.force_reason if cfg.force_promote else None,
                "champion": comparison["version"] if comparison else None,
                "checks": checks,
            }
        ),
    )
    ctx.store.write_text(ctx.key("decision.md"), decision)
    ctx.metrics.update({k: round(metrics[k], 4) for k in task.headline_metrics})
    if baseline is not None:
        ctx.metrics["baseline_roc_auc"] = round(baseline["roc_auc"], 4)
    if comparison is not None and "metrics" in comparison:
        ctx.metrics["champion_roc_auc"] = round(comparison["metrics"]["roc_auc"]["reference"], 4)
    summary = "; ".join(f"{c['check']} (observed {c['observed']})" for c in failed)
    if forced:
        ctx.notes.append(f"gate FAILED but overridden by force_promote ({cfg.force_reason}): {summary}")
    elif failed:
        raise GateFailed(f"evaluation gate failed: {summary}")
    classification = {"labels": labels, "matrix": matrix, "roc": drawn.get("roc")}
    return metrics, classification, decision
