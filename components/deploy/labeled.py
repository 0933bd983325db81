"""Rollout checks on labeled rows: does the candidate rank worse than main, or miss a floor?

Agreement with main and the shift of the scores are proxies: they assume main is right. A
candidate retrained because main drifted is meant to disagree with it on the new population,
and would fail them. Once enough served rows have labels (`labels/<model>/`), the analysis
judges the scores themselves:

- ROC AUC of the candidate against main's, bootstrapped on the same rows for a shadow and on
  each side's own rows for a canary: worse when the upper confidence bound of the difference
  is below `-max_auc_drop` (confidently worse by more than the margin);
- optional floors on the candidate's recall and specificity at its own operating point, the
  clinical minimum whatever main does (main may flag everyone on a population it never saw).

Fewer labeled rows or positives than the minimum: None, and the proxies decide.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol

import numpy as np
from scipy.stats import rankdata

Key = tuple[str, int]
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


def outcomes(records: Iterable[Mapping[str, Any]]) -> dict[Key, tuple[float, int]]:
    """(request id, row) -> (probability, decision) of every answered row."""
    return {
        (str(r["request_id"]), int(r["row"])): (float(r["probability"]), int(r["decision"]))
        for r in records
        if int(r.get("status", 200)) == 200 and "decision" in r
    }


def auc(y: np.ndarray, p: np.ndarray) -> float:
    """ROC AUC from ranks (Mann-Whitney, ties at their mean rank); NaN without both classes."""
    positives = int(y.sum())
    negatives = len(y) - positives
    if not positives or not negatives:
        return float("nan")
    ranks = rankdata(p)
    return float((ranks[y == 1].sum() - positives * (positives + 1) / 2) / (positives * negatives))


Arrays = tuple[np.ndarray, np.ndarray, np.ndarray]


def _labeled(
    side: dict[Key, tuple[float, int]], labels: Mapping[Key, int], keys: list[Key] | None = None
) -> Arrays:
    """Labels, probabilities and decisions of the labeled rows (of `keys`, default all)."""
    keys = keys if keys is not None else [k for k in side if k in labels]
    y = np.array([labels[k] for k in keys], dtype=int)
    p = np.array([side[k][0] for k in keys], dtype=float)
    d = np.array([side[k][1] for k in keys], dtype=int)
    return y, p, d


def _enough(y: np.ndarray, s: LabelSettings) -> bool:
    return len(y) >= s.min_labeled and int(y.sum()) >= s.min_labeled_positives


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
    y: np.ndarray, d: np.ndarray, main: tuple[np.ndarray, np.ndarray], s: LabelSettings
) -> list[dict[str, Any]]:
    checks = []
    for name, cls, floor in (("recall", 1, s.min_recall), ("specificity", 0, s.min_specificity)):
        rate = float(np.mean(d[y == cls] == cls))
        theirs = float(np.mean(main[1][main[0] == cls] == cls))
        detail = f"{name} {rate:.3f} (main {theirs:.3f}) on {int(np.sum(y == cls))} labeled rows"
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
    main: dict[Key, tuple[float, int]],
    candidate: dict[Key, tuple[float, int]],
    labels: Mapping[Key, int],
    s: LabelSettings,
    seed: int = 0,
) -> list[dict[str, Any]] | None:
    """The shadow against main on the labeled rows both answered."""
    keys = [k for k in candidate if k in main and k in labels]
    y, p_c, d_c = _labeled(candidate, labels, keys)
    _, p_m, d_m = _labeled(main, labels, keys)
    if not _enough(y, s):
        return None
    a_c, a_m = auc(y, p_c), auc(y, p_m)
    rng = np.random.default_rng(seed)
    diffs = np.empty(RESAMPLES)
    for i in range(RESAMPLES):
        pick = rng.integers(0, len(y), len(y))
        diffs[i] = auc(y[pick], p_c[pick]) - auc(y[pick], p_m[pick])
    checks = [_auc_check(diffs, a_c - a_m, (a_c, a_m), s, f"the same {len(y)} labeled rows")]
    return checks + _floors(y, d_c, (y, d_m), s)


def unpaired_checks(
    main: dict[Key, tuple[float, int]],
    candidate: dict[Key, tuple[float, int]],
    labels: Mapping[Key, int],
    s: LabelSettings,
    seed: int = 0,
) -> list[dict[str, Any]] | None:
    """The canary's labeled rows against main's."""
    y_c, p_c, d_c = _labeled(candidate, labels)
    y_m, p_m, d_m = _labeled(main, labels)
    if not (_enough(y_c, s) and _enough(y_m, s)):
        return None
    a_c, a_m = auc(y_c, p_c), auc(y_m, p_m)
    rng = np.random.default_rng(seed)
    diffs = np.empty(RESAMPLES)
    for i in range(RESAMPLES):
        pick_c, pick_m = rng.integers(0, len(y_c), len(y_c)), rng.integers(0, len(y_m), len(y_m))
        diffs[i] = auc(y_c[pick_c], p_c[pick_c]) - auc(y_m[pick_m], p_m[pick_m])
    where = f"{len(y_c)} canary and {len(y_m)} main labeled rows"
    return [_auc_check(diffs, a_c - a_m, (a_c, a_m), s, where), *_floors(y_c, d_c, (y_m, d_m), s)]
