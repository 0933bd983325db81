"""Rollout checks on labeled rows: does the candidate rank worse than main, or miss a floor?

Agreement with main and the shift of the scores are proxies: they assume main is right. A
candidate retrained because main drifted is meant to disagree with it on the new population,
and would fail them. Once enough served rows have labels (`labels/<model>/`), the analysis
judges the scores themselves, through the version's task (`Task.ranking_score`,
`Task.floor_rates`):

- the ranking score of the candidate against main's (binary: ROC AUC; multi-class: macro
  one-vs-rest ROC AUC), bootstrapped on the same rows for a shadow and on each side's own rows
  for a canary: worse when the upper confidence bound of the difference is below
  `-max_auc_drop` (confidently worse by more than the margin);
- optional floors on the candidate's recall and specificity at its own operating point (binary:
  of the positives; multi-class: of the class of interest, else macro averages), the clinical
  minimum whatever main does (main may flag everyone on a population it never saw).

Fewer labeled rows or positives (multi-class: rows of the rarest class) than the minimum:
None, and the proxies decide.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol

import numpy as np

from components.common.tasks import Task, default_task
from components.common.tasks.ranking import roc_auc as auc

__all__ = [
    "Key",
    "LabelSettings",
    "Outcome",
    "auc",
    "columns",
    "outcomes",
    "paired_checks",
    "unpaired_checks",
]

Key = tuple[str, int]
Outcome = tuple[tuple[float, ...], int]
"""A served row's answer fields (`Task.answer_names`) and its decision."""
RESAMPLES = 300


class LabelSettings(Protocol):
    """The thresholds these checks read (AnalysisSettings has them)."""

    @property
    def alpha(self) -> float: ...
    @property
    def min_labeled(self) -> int: ...
    @property
    def min_labeled_positives(self) -> int: ...
    @property
    def max_auc_drop(self) -> float: ...
    @property
    def min_recall(self) -> float | None: ...
    @property
    def min_specificity(self) -> float | None: ...


def outcomes(records: Iterable[Mapping[str, Any]], task: Task | None = None) -> dict[Key, Outcome]:
    """(request id, row) -> (answer fields, decision) of every answered row that logged them all."""
    names = (task or default_task()).answer_names
    return {
        (str(r["request_id"]), int(r["row"])): (tuple(float(r[n]) for n in names), int(r["decision"]))
        for r in records
        if int(r.get("status", 200)) == 200 and "decision" in r and all(n in r for n in names)
    }


def columns(task: Task, side: Mapping[Key, Outcome], keys: Iterable[Key]) -> np.ndarray:
    """The rows' answer fields as columns: (n, len(Task.answer_names))."""
    rows = [side[k][0] for k in keys]
    return np.array(rows, dtype=float).reshape(len(rows), len(task.answer_names))


Arrays = tuple[np.ndarray, np.ndarray, np.ndarray]


def _labeled(
    task: Task, side: Mapping[Key, Outcome], labels: Mapping[Key, int], keys: list[Key] | None = None
) -> Arrays:
    """Labels, probabilities and decisions of the labeled rows (of `keys`, default all)."""
    keys = keys if keys is not None else [k for k in side if k in labels]
    y = np.array([labels[k] for k in keys], dtype=int)
    d = np.array([side[k][1] for k in keys], dtype=int)
    return y, task.output_array(columns(task, side, keys)), d


def _enough(task: Task, y: np.ndarray, s: LabelSettings) -> bool:
    return len(y) >= s.min_labeled and task.labeled_positives(y) >= s.min_labeled_positives


def _auc_check(
    diffs: np.ndarray, observed: float, a: tuple[float, float], s: LabelSettings, n: str
) -> dict[str, Any]:
    upper = float(np.nanquantile(diffs, 1 - s.alpha)) if np.isfinite(diffs).any() else float("nan")
    worse = bool(np.isfinite(upper) and upper < -s.max_auc_drop)
    detail = (
        f"ROC AUC {a[0]:.3f} vs main {a[1]:.3f} on {n} (difference {observed:+.3f}, "
        f"{100 * (1 - s.alpha):g}% upper bound {upper:+.3f}, margin -{s.max_auc_drop})"
    )
    return {
        "check": "roc_auc",
        "observed": round(observed, 6),
        "limit": -s.max_auc_drop,
        "passed": not worse,
        "detail": detail,
    }


def _floors(
    task: Task, y: np.ndarray, d: np.ndarray, main: tuple[np.ndarray, np.ndarray], s: LabelSettings
) -> list[dict[str, Any]]:
    checks = []
    theirs = task.floor_rates(*main)
    for name, (rate, rows, what) in task.floor_rates(y, d).items():
        floor = {"recall": s.min_recall, "specificity": s.min_specificity}[name]
        detail = f"{what} {rate:.3f} (main {theirs[name][0]:.3f}) on {rows} labeled rows"
        if floor is None:
            checks.append(
                {"check": name, "observed": round(rate, 6), "limit": None, "passed": True, "detail": detail}
            )
        else:
            checks.append(
                {
                    "check": name,
                    "observed": round(rate, 6),
                    "limit": floor,
                    "passed": rate >= floor,
                    "detail": f"{detail}, floor {floor}",
                }
            )
    return checks


def paired_checks(
    main: Mapping[Key, Outcome],
    candidate: Mapping[Key, Outcome],
    labels: Mapping[Key, int],
    s: LabelSettings,
    seed: int = 0,
    task: Task | None = None,
) -> list[dict[str, Any]] | None:
    """The shadow against main on the labeled rows both answered (`labels`: class indices)."""
    task = task or default_task()
    keys = [k for k in candidate if k in main and k in labels]
    y, p_c, d_c = _labeled(task, candidate, labels, keys)
    _, p_m, d_m = _labeled(task, main, labels, keys)
    if not _enough(task, y, s):
        return None
    a_c, a_m = task.ranking_score(y, p_c), task.ranking_score(y, p_m)
    rng = np.random.default_rng(seed)
    diffs = np.empty(RESAMPLES)
    for i in range(RESAMPLES):
        pick = rng.integers(0, len(y), len(y))
        diffs[i] = task.ranking_score(y[pick], p_c[pick]) - task.ranking_score(y[pick], p_m[pick])
    checks = [_auc_check(diffs, a_c - a_m, (a_c, a_m), s, f"the same {len(y)} labeled rows")]
    return checks + _floors(task, y, d_c, (y, d_m), s)


def unpaired_checks(
    main: Mapping[Key, Outcome],
    candidate: Mapping[Key, Outcome],
    labels: Mapping[Key, int],
    s: LabelSettings,
    seed: int = 0,
    task: Task | None = None,
) -> list[dict[str, Any]] | None:
    """The canary's labeled rows against main's (`labels`: class indices)."""
    task = task or default_task()
    y_c, p_c, d_c = _labeled(task, candidate, labels)
    y_m, p_m, d_m = _labeled(task, main, labels)
    if not (_enough(task, y_c, s) and _enough(task, y_m, s)):
        return None
    a_c, a_m = task.ranking_score(y_c, p_c), task.ranking_score(y_m, p_m)
    rng = np.random.default_rng(seed)
    diffs = np.empty(RESAMPLES)
    for i in range(RESAMPLES):
        pick_c, pick_m = rng.integers(0, len(y_c), len(y_c)), rng.integers(0, len(y_m), len(y_m))
        diffs[i] = task.ranking_score(y_c[pick_c], p_c[pick_c]) - task.ranking_score(y_m[pick_m], p_m[pick_m])
    where = f"{len(y_c)} canary and {len(y_m)} main labeled rows"
    return [_auc_check(diffs, a_c - a_m, (a_c, a_m), s, where), *_floors(task, y_c, d_c, (y_m, d_m), s)]
