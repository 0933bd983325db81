"""Evaluate the exported model on the held-out test split and apply the quality gate."""

from __future__ import annotations

import math
from typing import Any

from components.common.scoring import labels, load_split, onnx_logits, sigmoid
from components.common.step import GateFailed, StepContext
from components.evaluate.bootstrap import bootstrap_intervals
from components.evaluate.metrics import binary_metrics, gate_checks, roc_points


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
    ci = f"{confidence:.0%} bootstrap interval"
    lines += ["", f"## Test-split metrics at threshold {threshold}", "", f"| metric | value | {ci} |"]
    lines.append("|---|---|---|")
    lines += [
        f"| {k} | {v:.4f} | {_interval(intervals.get(k))} |" if isinstance(v, float) else f"| {k} | {v} | |"
        for k, v in metrics.items()
    ]
    return "\n".join(lines) + "\n"


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
    checks = gate_checks(metrics, cfg)
    passed = all(c["passed"] for c in checks)
    roc = roc_points(y, p)
    decision = render_decision(metrics, checks, cfg.threshold, intervals, cfg.confidence)
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
        },
    )
    ctx.store.write_json(ctx.key("roc.json"), roc)
    ctx.store.write_json(ctx.key("decision.json"), {"passed": passed, "checks": checks})
    ctx.store.write_text(ctx.key("decision.md"), decision)
    ctx.metrics.update({k: round(metrics[k], 4) for k in ("recall", "precision", "roc_auc")})
    if not passed:
        failed = "; ".join(
            f"{c['metric']} {c['observed']} < {c['required']}" for c in checks if not c["passed"]
        )
        raise GateFailed(f"evaluation gate failed: {failed}")
    return metrics, roc, decision
