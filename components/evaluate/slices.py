"""Metrics per slice (scanner, site, age band, ...), the worst-slice gap, and where errors fall."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from components.common.config import SliceSpec
from components.common.tasks import Scores, Task


def slice_labels(frame: pd.DataFrame, spec: SliceSpec) -> pd.Series:
    """The slice each row falls in: the column's value, or its bin such as '[50, 65)'."""
    if spec.column not in frame.columns:
        raise ValueError(
            f"evaluation.slices: column '{spec.column}' is not in the test split "
            f"(columns: {', '.join(map(str, frame.columns))}); fix or remove it"
        )
    column = frame[spec.column]
    if spec.bins is None:
        return column.astype(str).fillna("(missing)")
    edges = spec.bins
    names = [f"[{edges[i]:g}, {edges[i + 1]:g})" for i in range(len(edges) - 1)]
    binned = pd.cut(column, bins=edges, right=False, labels=names)
    return binned.astype(str).replace("nan", "(outside bins)")


def slice_table(
    frame: pd.DataFrame, task: Task, y: np.ndarray, scores: Scores, specs: list[SliceSpec]
) -> list[dict[str, Any]]:
    """One row per (column, slice): rows, the task's label counts (binary: positives) and each
    of its slice metrics (None if undefined)."""
    rows = []
    for spec in specs:
        labels = slice_labels(frame, spec).to_numpy()
        for value in sorted(set(labels)):
            mask = labels == value
            values = scores.subset(mask).point()
            rows.append(
                {
                    "column": spec.column,
                    "slice": value,
                    "rows": int(mask.sum()),
                    **task.slice_counts(y[mask]),
                    **{m: None if np.isnan(values[m]) else round(values[m], 4) for m in task.slice_metrics},
                }
            )
    return rows


def worst_slice(
    table: list[dict[str, Any]], overall: float, metric: str, min_rows: int
) -> dict[str, Any] | None:
    """The slice furthest below the overall value of `metric` (among slices with enough rows)."""
    eligible = [r for r in table if r["rows"] >= min_rows and r.get(metric) is not None]
    if not eligible:
        return None
    worst = min(eligible, key=lambda r: r[metric])
    return {**worst, "metric": metric, "overall": round(overall, 4), "gap": round(overall - worst[metric], 4)}


def error_table(
    frame: pd.DataFrame, kinds: dict[str, np.ndarray], specs: list[SliceSpec], top: int = 10
) -> list[dict[str, Any]]:
    """The most frequent errors (`Task.errors`: binary false negatives and positives) per slice."""
    counts: list[dict[str, Any]] = []
    for spec in specs:
        labels = slice_labels(frame, spec).to_numpy()
        for kind, wrong in kinds.items():
            total = int(wrong.sum())
            for value, count in zip(*np.unique(labels[wrong], return_counts=True), strict=True):
                counts.append(
                    {
                        "error": kind,
                        "where": f"{spec.column}={value}",
                        "count": int(count),
                        "share_of_kind": round(int(count) / total, 4),
                    }
                )
    return sorted(counts, key=lambda r: (-int(r["count"]), str(r["where"]), str(r["error"])))[:top]


def render_slice_comparison(
    slices: list[dict[str, Any]],
    champion_slices: list[dict[str, Any]],
    version: str,
    metrics: tuple[str, ...],
) -> str:
    """Markdown: each slice's metrics for the candidate beside the champion's, on the same rows."""
    theirs = {(r["column"], r["slice"]): r for r in champion_slices}
    head = " | ".join(f"{m} (candidate / v{version})" for m in metrics)
    lines = ["", f"## Slices against the champion v{version}", "", f"| column | slice | rows | {head} |"]
    lines.append("|---|---|---|" + "---|" * len(metrics))

    def pair(ours: Any, other: Any) -> str:
        shown = ["-" if v is None else f"{v:.4f}" for v in (ours, other)]
        return " / ".join(shown)

    for row in slices:
        other = theirs.get((row["column"], row["slice"]), {})
        cells = " | ".join(pair(row.get(m), other.get(m)) for m in metrics)
        lines.append(f"| {row['column']} | {row['slice']} | {row['rows']} | {cells} |")
    return "\n".join(lines) + "\n"
