"""The candidate's quality on labeled served rows: non-inferiority to main, floors, and proxies.

Promotion puts the burden of proof on the candidate: its quality metric (`Task.quality_influence`:
ROC AUC, macro ROC AUC, or recall of the class of interest) minus main's must have an
always-valid lower bound (sequential.py) above -margin. A rollback needs the upper bound below
-margin: evidence of harm beyond the margin. In a shadow both versions answered the same rows,
so the difference is taken row by row (paired, far fewer rows needed); in a canary each side's
own labeled rows are compared (unpaired).

Agreement with main, the correlation of the scores and their shift against main's are kept as
information only: they assume main is right, and a candidate retrained because main drifted is
meant to disagree with it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from components.common.rollout_config import RolloutAnalysis
from components.common.tasks import Task
from components.deploy.sequential import Bounds, bounds, planned_se

Check = dict[str, Any]
METRIC_WORDS = {"roc_auc": "ROC AUC", "recall": "recall"}


@dataclass(frozen=True)
class Labeled:
    """One side's labeled served rows: targets (`Task.targets`), answers and decisions."""

    y: np.ndarray
    answers: np.ndarray
    decisions: np.ndarray

    @classmethod
    def of(cls, task: Task, rows: pd.DataFrame) -> Labeled:
        """From answered rows joined with their labels (a `target` column)."""
        return cls(
            rows["target"].to_numpy(np.int64),
            rows[list(task.answer_names)].to_numpy(np.float64),
            rows["decision"].to_numpy(np.float64).astype(np.int64),
        )


@dataclass(frozen=True)
class Measured:
    """One side's quality metric on its labeled rows, with each row's influence on it."""

    value: float
    influence: np.ndarray
    what: str
    rows: int
    positives: int


def measure(task: Task, metric: str, side: Labeled) -> Measured:
    """The metric on one side's labeled rows."""
    if not len(side.y):
        return Measured(math.nan, np.zeros(0), METRIC_WORDS.get(metric, metric), 0, 0)
    value, influence, what = task.quality_influence(
        metric, side.y, task.output_array(side.answers), side.decisions
    )
    return Measured(value, influence, what, len(side.y), task.labeled_positives(side.y))


@dataclass(frozen=True)
class Comparison:
    """Candidate - main on labeled rows, with its always-valid bounds (None: too few positives)."""

    candidate: Measured
    main: Measured
    paired: bool
    bounds: Bounds | None

    @property
    def rows(self) -> int:
        """Labeled rows on the candidate's side."""
        return self.candidate.rows


def compare(task: Task, main: Labeled, candidate: Labeled, s: RolloutAnalysis, paired: bool) -> Comparison:
    """The candidate against main: on the same labeled rows, in the same order (paired), or each
    on its own."""
    c = measure(task, s.quality_metric, candidate)
    m = measure(task, s.quality_metric, main)
    if paired:
        variance = float(np.sum((c.influence - m.influence) ** 2))
    else:
        variance = float(np.sum(c.influence**2) + np.sum(m.influence**2))
    enough = min(c.positives, m.positives) >= s.min_labeled_positives
    defined = math.isfinite(c.value) and math.isfinite(m.value)
    if not (enough and defined):
        return Comparison(c, m, paired, None)
    planned = planned_se(s.margin, s.alpha, s.power)
    # A variance of 0 (every row ranked alike) is not certainty: floor it at one row's worth.
    se = max(math.sqrt(variance), 1 / max(c.rows, 1))
    return Comparison(c, m, paired, bounds(c.value - m.value, se, s.alpha, planned))


def quality_check(comparison: Comparison, s: RolloutAnalysis) -> Check:
    """pass: no worse than main by the margin; fail: worse beyond it; pending: not yet known."""
    c, m, b = comparison.candidate, comparison.main, comparison.bounds
    how = "on the same" if comparison.paired else "on each side's own"
    rows = (
        f"{c.rows} labeled rows ({c.positives} positives)"
        if comparison.paired
        else (
            f"{c.rows} canary ({c.positives} positives) and {m.rows} main ({m.positives} positives) "
            "labeled rows"
        )
    )
    check: Check = {
        "check": "quality",
        "metric": c.what,
        "margin": s.margin,
        "rows": c.rows,
        "limit": -s.margin,
    }
    if b is None:
        short = min(c.positives, m.positives)
        return {
            **check,
            "status": "pending",
            "passed": True,
            "observed": None,
            "detail": f"{c.what}: {short} labeled positives on the smaller side; the bounds need "
            f"{s.min_labeled_positives}",
        }
    level = f"{100 * (1 - s.alpha):g}%"
    detail = (
        f"{c.what} {c.value:.3f} vs main {m.value:.3f} {how} {rows}: difference {b.estimate:+.3f}, "
        f"always-valid {level} bounds [{b.lower:+.3f}, {b.upper:+.3f}], margin -{s.margin:g}"
    )
    if b.lower >= -s.margin:
        status, verdict = "pass", "non-inferior"
    elif b.upper < -s.margin:
        status, verdict = "fail", "worse than main beyond the margin"
    else:
        status, verdict = "pending", "not yet known"
    return {
        **check,
        "status": status,
        "passed": status != "fail",
        "observed": round(b.estimate, 6),
        "bounds": [round(b.lower, 6), round(b.upper, 6)],
        "detail": f"{detail}: {verdict}",
    }


def floor_checks(task: Task, candidate: Labeled, s: RolloutAnalysis) -> list[Check]:
    """Recall and specificity floors: a rollback when the rate's upper bound is below the floor."""
    if not len(candidate.y):
        return []
    checks = []
    for name, (rate, rows, what) in task.floor_rates(candidate.y, candidate.decisions).items():
        floor = {"recall": s.min_recall, "specificity": s.min_specificity}[name]
        if floor is None or rows < s.min_labeled_positives or not math.isfinite(rate):
            continue
        se = max(math.sqrt(rate * (1 - rate) / rows), 1 / rows)
        b = bounds(rate, se, s.alpha, se)
        below = b.upper < floor
        checks.append(
            {
                "check": name,
                "status": "fail" if below else "pass",
                "passed": not below,
                "observed": round(rate, 6),
                "limit": floor,
                "bounds": [round(max(b.lower, 0.0), 6), round(min(b.upper, 1.0), 6)],
                "rows": rows,
                "detail": f"{what} {rate:.3f} on {rows} labeled rows (upper bound {min(b.upper, 1.0):.3f}), "
                f"floor {floor}" + (": below it" if below else ""),
            }
        )
    return checks


def information(name: str, observed: float, detail: str, why: str) -> Check:
    """A number kept for the record that decides nothing."""
    return {
        "check": name,
        "status": "info",
        "passed": True,
        # None, not NaN, when there is nothing to report: statuses are strict JSON (the API
        # server refuses a NaN with 400).
        "observed": round(observed, 6) if math.isfinite(observed) else None,
        "limit": None,
        "detail": f"{detail} (information only: {why})",
    }
