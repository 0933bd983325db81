"""Evaluate the calibrated model on the held-out test split, against the champion, and gate it."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from components.common import calibration
from components.common.artifacts import DatasetSchema
from components.common.config import EvaluationConfig
from components.common.preprocessing import Preprocessing
from components.common.registry import Registry
from components.common.scoring import calibrated_scores, load_split
from components.common.step import GateFailed, StepContext
from components.evaluate.baseline import Baseline
from components.evaluate.bootstrap import bootstrap_intervals
from components.evaluate.champion import regression_checks, score_champion
from components.evaluate.metrics import (
    binary_metrics,
    curves,
    gate_checks,
    matching_recall_threshold,
)
from components.evaluate.plots import pr_png, roc_png
from components.evaluate.slices import (
    SLICE_METRICS,
    error_table,
    render_slice_comparison,
    slice_table,
    worst_slice,
)


def _interval(bounds: tuple[float, float] | None) -> str:
    if bounds is None or any(math.isnan(b) for b in bounds):
        return ""
    return f"{bounds[0]:.4f} – {bounds[1]:.4f}"


def render_decision(
    metrics: dict[str, float],
    checks: list[dict[str, Any]],
    threshold: float,
    intervals: dict[str, tuple[float, float]],
    confidence: float,
    baseline: dict[str, float] | None = None,
) -> str:
    """Markdown explanation: every check with its numbers, then the metric table."""
    passed = all(c["passed"] for c in checks)
    lines = [f"# Evaluation gate: {'passed' if passed else 'FAILED'}", ""]
    if not checks:
        lines.append("No floors are configured (evaluation.min_*); the gate passes by default.")
    else:
        lines += ["| check | observed | required | result |", "|---|---|---|---|"]
        lines += [
            f"| {c['check']} | {c['observed']} | {c['required']} | {'pass' if c['passed'] else '**FAIL**'} |"
            for c in checks
        ]
    if baseline is not None:
        lines += [
            "",
            "## Beside a logistic-regression baseline (same rows; its threshold matches the model's recall)",
            "",
        ]
        lines += ["| metric | model | baseline |", "|---|---|---|"]
        lines += [f"| {k} | {metrics[k]:.4f} | {baseline[k]:.4f} |" for k in BASELINE_ROWS]
    ci = f"{confidence:.0%} bootstrap interval"
    lines += ["", f"## Test-split metrics at operating threshold {threshold:.4g} (calibrated)", ""]
    lines.append(f"| metric | value | {ci} |")
    lines.append("|---|---|---|")
    lines += [
        f"| {k} | {v:.4f} | {_interval(intervals.get(k))} |" if isinstance(v, float) else f"| {k} | {v} | |"
        for k, v in metrics.items()
    ]
    return "\n".join(lines) + "\n"


def _baseline_metrics(
    ctx: StepContext,
    splits: str,
    model: str,
    schema: DatasetSchema,
    test: pd.DataFrame,
    y: np.ndarray,
    threshold_recall: float,
) -> dict[str, float]:
    """The logistic-regression baseline, fitted on the train split, scored on the same rows.

    Its scores are not calibrated like the model's, so one threshold would mean different
    things for the two; the baseline is cut where it reaches the model's recall instead, and
    the threshold metrics then compare specificity and precision at equal recall.
    """
    train = load_split(ctx.store, splits, "train")
    prep = Preprocessing.from_dict(ctx.store.read_json(f"{model}/preprocessing.json"))
    fitted = Baseline.fit(
        prep, train, schema.make_task().frame_targets(train), ctx.config.training.class_weighting
    )
    scores = fitted.scores(test)
    return binary_metrics(y, scores, matching_recall_threshold(scores, y, threshold_recall))


def render_slices(
    slices: list[dict[str, Any]], worst: dict[str, Any] | None, errors: list[dict[str, Any]], min_rows: int
) -> str:
    """Markdown: metrics per slice, the worst slice of the primary metric, where errors fall."""
    if not slices:
        return "\nNo slices configured (evaluation.slices); per-scanner or per-site metrics need them.\n"

    def cell(value: Any) -> str:
        return "n/a" if value is None else f"{value:.4f}" if isinstance(value, float) else str(value)

    lines = ["", "## Slices", "", f"| column | slice | rows | positives | {' | '.join(SLICE_METRICS)} |"]
    lines.append("|---" * (4 + len(SLICE_METRICS)) + "|")
    lines += [
        f"| {r['column']} | {r['slice']} | {r['rows']} | {r['positives']} | "
        + " | ".join(cell(r[m]) for m in SLICE_METRICS)
        + " |"
        for r in slices
    ]
    if worst is None:
        lines += ["", f"No slice has {min_rows}+ rows with a defined value; no worst-slice gap."]
    else:
        metric, where = worst["metric"], f"{worst['column']}={worst['slice']}"
        value, overall, gap = worst[metric], worst["overall"], worst["gap"]
        lines += [
            "",
            f"Worst slice for {metric}: {where} at {value:.4f} against {overall:.4f} overall"
            f" (gap {gap:.4f}; slices under {min_rows} rows left out).",
        ]
    if errors:
        lines += ["", "## Where the errors are", "", "| error | where | count | share of that error |"]
        lines.append("|---|---|---|---|")
        lines += [
            f"| {e['error']} | {e['where']} | {e['count']} | {e['share_of_kind']:.1%} |" for e in errors
        ]
    return "\n".join(lines) + "\n"


BASELINE_ROWS = ("roc_auc", "pr_auc", "recall", "specificity", "precision", "balanced_accuracy")


def render_champion(comparison: dict[str, Any] | None, cfg: EvaluationConfig) -> str:
    """Markdown: the candidate against the production model, differences with paired intervals."""
    if comparison is None:
        return (
            "\n## Against the champion\n\nNo version is in production yet, so only the floors apply; "
            "the next run is compared with this one once it is promoted (`kubeloop stage`).\n"
        )
    version = comparison["version"]
    if "error" in comparison:
        reason = comparison["error"]
        return f"\n## Against the champion\n\nChampion v{version} could not score the test rows: {reason}\n"
    level = f"{comparison['confidence']:.0%}"
    lines = [
        "",
        f"## Against the champion (production v{version}, same test rows, its threshold "
        f"{comparison['threshold']:.4f})",
        "",
        f"| metric | candidate | champion v{version} | difference | {level} paired bootstrap interval |",
        "|---|---|---|---|---|",
    ]
    for metric, row in comparison["metrics"].items():
        low, high = row["low"], row["high"]
        interval = "" if low is None or math.isnan(low) else f"{low:+.4f} – {high:+.4f}"
        values = f"{row['candidate']:.4f} | {row['reference']:.4f} | {row['difference']:+.4f}"
        lines.append(f"| {metric} | {values} | {interval} |")
    rule = (
        "the lower bound of the interval must stay above -margin (non-inferiority)"
        if cfg.regression_rule == "interval"
        else "the observed difference must stay above -margin"
    )
    lines += ["", f"Regression rule `{cfg.regression_rule}`: {rule}."]
    return "\n".join(lines) + "\n"


def render_override(forced: bool, reason: str | None, failed: list[dict[str, Any]]) -> str:
    """Markdown: the override, when a failing gate was forced through."""
    if not forced:
        return ""
    names = "; ".join(c["check"] for c in failed) or "none (every check passed)"
    return f"\n## Gate OVERRIDDEN (force_promote)\n\nReason: {reason}\n\nFailed checks let through: {names}\n"


def _json_safe(value: Any) -> Any:
    """NaN and infinities become null: JSON has no NaN, and readers choke on it."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def run(ctx: StepContext, splits: str, model: str) -> tuple[dict[str, float], dict[str, list[float]], str]:
    """The step body: score test as serving will, compare, gate. Raises GateFailed.

    Args:
        ctx: The step context.
        splits: Prefix of validate_data's outputs.
        model: Prefix of a servable model folder, as calibrate writes it: model.onnx,
            preprocessing.json and calibration.json (map and operating point).

    Returns:
        (metrics, ROC points, decision markdown).
    """
    schema = DatasetSchema.read(ctx.store, splits)
    test = load_split(ctx.store, splits, "test")
    y = schema.make_task().frame_targets(test)
    cfg = ctx.config.evaluation
    record = calibration.normalise(ctx.store.read_json(f"{model}/calibration.json"), cfg.threshold)
    _, p = calibrated_scores(ctx.store, model, record, test)
    threshold = float(record["operating_point"]["threshold"])
    metrics = binary_metrics(y, p, threshold)
    intervals = (
        bootstrap_intervals(y, p, threshold, cfg.bootstrap_resamples, cfg.confidence)
        if cfg.bootstrap_resamples
        else {}
    )
    baseline = (
        _baseline_metrics(ctx, splits, model, schema, test, y, metrics["recall"]) if cfg.baseline else None
    )
    slices = slice_table(test, y, p, threshold, cfg.slices)
    worst = worst_slice(slices, metrics[cfg.primary_metric], cfg.primary_metric, cfg.min_slice_rows)
    errors = error_table(test, y, p, threshold, cfg.slices)
    checks = gate_checks(metrics, cfg, baseline, worst)
    comparison: dict[str, Any] | None = None
    champion = None
    if cfg.max_regression:
        champion = score_champion(Registry(ctx.store), ctx.config.name, test, cfg.threshold)
        if champion is not None:
            champion_checks, comparison = regression_checks(y, (p, threshold), champion, cfg)
            checks += champion_checks
            if champion.probabilities is not None:
                comparison["slices"] = slice_table(
                    test, y, champion.probabilities, champion.threshold, cfg.slices
                )
    failed = [c for c in checks if not c["passed"]]
    forced = bool(failed) and cfg.force_promote
    drawn = curves(y, p)
    roc = drawn["roc"]
    decision = render_decision(metrics, checks, threshold, intervals, cfg.confidence, baseline)
    decision += render_champion(comparison, cfg) if cfg.max_regression else ""
    decision += render_override(cfg.force_promote, cfg.force_reason, failed)
    decision += render_slices(slices, worst, errors, cfg.min_slice_rows)
    if comparison and comparison.get("slices"):
        decision += render_slice_comparison(slices, comparison["slices"], comparison["version"])
    ctx.store.write_json(
        ctx.key("metrics.json"),
        _json_safe(
            {
                "threshold": threshold,
                "operating_point": record["operating_point"].get("target"),
                "calibration": record["method"],
                "split": "test",
                **metrics,
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
        curves(y, champion.probabilities)
        if comparison and champion and champion.probabilities is not None
        else None
    )
    ctx.store.write_bytes(ctx.key("roc.png"), roc_png(drawn, metrics, rival))
    ctx.store.write_bytes(ctx.key("pr.png"), pr_png(drawn, metrics, rival))
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
    ctx.metrics.update({k: round(metrics[k], 4) for k in ("recall", "precision", "roc_auc")})
    if baseline is not None:
        ctx.metrics["baseline_roc_auc"] = round(baseline["roc_auc"], 4)
    if comparison is not None and "metrics" in comparison:
        ctx.metrics["champion_roc_auc"] = round(comparison["metrics"]["roc_auc"]["reference"], 4)
    summary = "; ".join(f"{c['check']} (observed {c['observed']})" for c in failed)
    if forced:
        ctx.notes.append(f"gate FAILED but overridden by force_promote ({cfg.force_reason}): {summary}")
    elif failed:
        raise GateFailed(f"evaluation gate failed: {summary}")
    return metrics, roc, decision
