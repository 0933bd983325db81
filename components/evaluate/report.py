"""Markdown of the evaluation: the gate's checks, the metric table, slices, the champion, overrides."""

from __future__ import annotations

import math
from typing import Any

from components.common.config import EvaluationConfig


def _interval(bounds: tuple[float, float] | None) -> str:
    if bounds is None or any(math.isnan(b) for b in bounds):
        return ""
    return f"{bounds[0]:.4f} – {bounds[1]:.4f}"


def render_decision(
    metrics: dict[str, float],
    checks: list[dict[str, Any]],
    rule: str,
    intervals: dict[str, tuple[float, float]],
    confidence: float,
    baseline: dict[str, float] | None = None,
    baseline_rows: tuple[str, ...] = (),
    baseline_cut: str = "",
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
            f"## Beside a logistic-regression baseline (same rows; {baseline_cut})",
            "",
        ]
        lines += ["| metric | model | baseline |", "|---|---|---|"]
        lines += [f"| {k} | {metrics[k]:.4f} | {baseline[k]:.4f} |" for k in baseline_rows]
    ci = f"{confidence:.0%} bootstrap interval"
    lines += ["", f"## Test-split metrics at {rule} (calibrated)", ""]
    lines.append(f"| metric | value | {ci} |")
    lines.append("|---|---|---|")
    lines += [
        f"| {k} | {v:.4f} | {_interval(intervals.get(k))} |" if isinstance(v, float) else f"| {k} | {v} | |"
        for k, v in metrics.items()
    ]
    return "\n".join(lines) + "\n"


def render_slices(
    slices: list[dict[str, Any]],
    worst: dict[str, Any] | None,
    errors: list[dict[str, Any]],
    min_rows: int,
    metrics: tuple[str, ...],
) -> str:
    """Markdown: metrics per slice, the worst slice of the primary metric, where errors fall."""
    if not slices:
        return "\nNo slices configured (evaluation.slices); per-scanner or per-site metrics need them.\n"

    def cell(value: Any) -> str:
        return "n/a" if value is None else f"{value:.4f}" if isinstance(value, float) else str(value)

    counts = [k for k in slices[0] if k not in ("column", "slice", "rows", *metrics)]
    head = " | ".join([*counts, *metrics])
    lines = ["", "## Slices", "", f"| column | slice | rows | {head} |"]
    lines.append("|---" * (3 + len(counts) + len(metrics)) + "|")
    lines += [
        f"| {r['column']} | {r['slice']} | {r['rows']} | "
        + " | ".join(cell(r[m]) for m in [*counts, *metrics])
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
    threshold = comparison.get("threshold")
    rule = f"its threshold {threshold:.4f}" if threshold is not None else "its own decision rule"
    lines = [
        "",
        f"## Against the champion (production v{version}, same test rows, {rule})",
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
