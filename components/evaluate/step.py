"""Evaluate the exported model on the held-out test split and apply the quality gate."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from components.common.preprocessing import Preprocessing
from components.common.scoring import labels, load_split, onnx_logits, sigmoid
from components.common.step import GateFailed, StepContext
from components.evaluate.baseline import Baseline
from components.evaluate.bootstrap import bootstrap_intervals
from components.evaluate.metrics import binary_metrics, gate_checks, roc_points
from components.evaluate.slices import SLICE_METRICS, error_table, slice_table, worst_slice


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
        lines += ["", "## Beside a logistic-regression baseline (same split, same threshold)", ""]
        lines += ["| metric | model | baseline |", "|---|---|---|"]
        lines += [f"| {k} | {metrics[k]:.4f} | {baseline[k]:.4f} |" for k in BASELINE_ROWS]
    ci = f"{confidence:.0%} bootstrap interval"
    lines += ["", f"## Test-split metrics at threshold {threshold}", "", f"| metric | value | {ci} |"]
    lines.append("|---|---|---|")
    lines += [
        f"| {k} | {v:.4f} | {_interval(intervals.get(k))} |" if isinstance(v, float) else f"| {k} | {v} | |"
        for k, v in metrics.items()
    ]
    return "\n".join(lines) + "\n"


def _baseline_metrics(
    ctx: StepContext, splits: str, model: str, schema: dict[str, Any], test: pd.DataFrame, y: np.ndarray
) -> dict[str, float]:
    """The logistic-regression baseline, fitted on the train split, scored on the same rows."""
    train = load_split(ctx.store, splits, "train")
    prep = Preprocessing.from_dict(ctx.store.read_json(f"{model}/preprocessing.json"))
    fitted = Baseline.fit(prep, train, labels(train, schema), ctx.config.training.class_weighting)
    return binary_metrics(y, fitted.scores(test), ctx.config.evaluation.threshold)


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


def run(ctx: StepContext, splits: str, model: str) -> tuple[dict[str, float], dict[str, list[float]], str]:
    """The step body. Returns (metrics, ROC points, decision markdown); raises GateFailed."""
    schema = ctx.store.read_json(f"{splits}/schema.json")
    test = load_split(ctx.store, splits, "test")
    y = labels(test, schema)
    p = sigmoid(onnx_logits(ctx.store, model, test))
    cfg = ctx.config.evaluation
    metrics = binary_metrics(y, p, cfg.threshold)
    intervals = (
        bootstrap_intervals(y, p, cfg.threshold, cfg.bootstrap_resamples, cfg.confidence)
        if cfg.bootstrap_resamples
        else {}
    )
    baseline = _baseline_metrics(ctx, splits, model, schema, test, y) if cfg.baseline else None
    slices = slice_table(test, y, p, cfg.threshold, cfg.slices)
    worst = worst_slice(slices, metrics[cfg.primary_metric], cfg.primary_metric, cfg.min_slice_rows)
    errors = error_table(test, y, p, cfg.threshold, cfg.slices)
    checks = gate_checks(metrics, cfg, baseline, worst)
    passed = all(c["passed"] for c in checks)
    roc = roc_points(y, p)
    decision = render_decision(metrics, checks, cfg.threshold, intervals, cfg.confidence, baseline)
    decision += render_slices(slices, worst, errors, cfg.min_slice_rows)
    ctx.store.write_json(
        ctx.key("metrics.json"),
        {
            "threshold": cfg.threshold,
            "split": "test",
            **metrics,
            "intervals": {
                k: None if any(math.isnan(b) for b in v) else list(v) for k, v in intervals.items()
            },
            "confidence": cfg.confidence,
            "bootstrap_resamples": cfg.bootstrap_resamples,
            "baseline": baseline,
            "slices": slices,
            "worst_slice": worst,
            "errors": errors,
        },
    )
    ctx.store.write_json(ctx.key("roc.json"), roc)
    ctx.store.write_json(ctx.key("decision.json"), {"passed": passed, "checks": checks})
    ctx.store.write_text(ctx.key("decision.md"), decision)
    ctx.metrics.update({k: round(metrics[k], 4) for k in ("recall", "precision", "roc_auc")})
    if baseline is not None:
        ctx.metrics["baseline_roc_auc"] = round(baseline["roc_auc"], 4)
    if not passed:
        failed = "; ".join(
            f"{c['metric']} {c['observed']} < {c['required']}" for c in checks if not c["passed"]
        )
        raise GateFailed(f"evaluation gate failed: {failed}")
    return metrics, roc, decision
