"""Drift of a window of serving traffic against the drift reference, with Evidently's semantics.

Per column, the test and threshold are the ones Evidently's `DataDriftPreset` picks
(evidently.legacy.calculations.stattests.registry._get_default_stattest), on the same values
(NaN and ±inf dropped first):

| reference rows (non-missing) | column | distinct values (reference and current) | test | drift when |
|---|---|---|---|---|
| ≤ 1,000 | numerical | > 5 | K-S | p ≤ 0.05 |
| ≤ 1,000 | any | 3–5 (numerical), > 2 (categorical) | chi-squared | p < 0.05 |
| ≤ 1,000 | any | ≤ 2 | Z-test of proportions | p < 0.05 |
| > 1,000 | numerical | > 5 | Wasserstein distance / reference std | ≥ 0.1 |
| > 1,000 | any | otherwise | Jensen-Shannon distance | ≥ 0.1 |

The dataset drifts when the share of drifted columns reaches `drift_share` (0.5). A column can
have its own test, threshold, or be ignored.

What makes it fast: the reference is the stored profile, not the training rows, and the
current window is read once per column. The Wasserstein distance is taken against the
reference's quantile sketch, from the sorted current values (one numpy sort a column, the
columns in parallel threads: numpy's sort lets go of the GIL).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from scipy.spatial import distance

from components.common.drift_reference import EXACT_ROWS, OTHER, ColumnReference, Reference, usable

TESTS = ("ks", "chisquare", "z", "wasserstein", "jensenshannon")
THRESHOLDS = {"ks": 0.05, "chisquare": 0.05, "z": 0.05, "wasserstein": 0.1, "jensenshannon": 0.1}
P_VALUE_TESTS = {"ks", "chisquare", "z"}


@dataclass(frozen=True)
class ColumnSettings:
    """A column's own drift settings (defaults: Evidently's choice)."""

    test: str | None = None
    threshold: float | None = None
    ignore: bool = False

    def __post_init__(self) -> None:
        if self.test is not None and self.test not in TESTS:
            raise ValueError(f"unknown drift test {self.test!r}: use one of {list(TESTS)}")


@dataclass(frozen=True)
class DriftSettings:
    """How a window is judged."""

    drift_share: float = 0.5
    min_rows: int = 100
    columns: dict[str, ColumnSettings] = field(default_factory=dict)


@dataclass
class ColumnDrift:
    """One column's verdict."""

    column: str
    kind: str
    test: str
    score: float  # a p-value for ks/chisquare/z, a distance otherwise
    threshold: float
    drifted: bool
    reference_rows: int
    current_rows: int
    reference_missing_share: float
    current_missing_share: float


@dataclass
class DriftVerdict:
    """A window's verdict: per column, and for the dataset."""

    current_rows: int
    columns: list[ColumnDrift]
    drift_share: float
    drifted_share: float
    dataset_drift: bool
    skipped: dict[str, str] = field(default_factory=dict)  # column: why it has no verdict
    too_small: str = ""  # why the window gets no verdict at all

    @property
    def drifted_columns(self) -> list[str]:
        """Names of the drifted columns."""
        return [c.column for c in self.columns if c.drifted]

    def to_dict(self) -> dict[str, Any]:
        """The verdict as plain JSON-ready data."""
        return {**asdict(self), "drifted_columns": self.drifted_columns}


def default_test(reference: ColumnReference, current: np.ndarray) -> str:
    """Evidently's default test for a column, from the reference and the current values."""
    distinct = _combined_distinct(reference, current, limit=5)
    if reference.count <= EXACT_ROWS:
        if reference.kind == "numerical" and distinct > 5:
            return "ks"
        return "chisquare" if distinct > 2 else "z"
    if reference.kind == "numerical" and distinct > 5:
        return "wasserstein"
    return "jensenshannon"


def _combined_distinct(reference: ColumnReference, current: np.ndarray, limit: int) -> int:
    """Distinct values of reference and current together, exact up to `limit` (then more)."""
    if reference.distinct > limit:
        return reference.distinct
    seen = set(reference.values)  # every distinct value: few-valued columns keep them all
    for value in pd.unique(current):
        seen.add(value)
        if len(seen) > limit:
            break
    return len(seen)


def column_drift(
    reference: ColumnReference, series: pd.Series, settings: ColumnSettings | None = None
) -> ColumnDrift:
    """One column's verdict against its reference.

    Raises:
        ValueError: The column has no usable values on one side, or the chosen test does
            not apply (K-S needs every reference value: at most 1,000 of them).
    """
    settings = settings or ColumnSettings()
    current = usable(series, reference.kind)
    if reference.count == 0:
        raise ValueError("no usable values in the reference")
    if len(current) == 0:
        raise ValueError("no usable values in the window (all missing)")
    test = settings.test or default_test(reference, current)
    threshold = settings.threshold if settings.threshold is not None else THRESHOLDS[test]
    score = _score(test, reference, current)
    if test == "ks":
        drifted = score <= threshold
    elif test in P_VALUE_TESTS:
        drifted = score < threshold
    else:
        drifted = score >= threshold
    return ColumnDrift(
        column=reference.name,
        kind=reference.kind,
        test=test,
        score=float(score),
        threshold=float(threshold),
        drifted=bool(drifted),
        reference_rows=reference.count,
        current_rows=len(current),
        reference_missing_share=round(reference.missing_share, 6),
        current_missing_share=round(1 - len(current) / len(series), 6) if len(series) else 0.0,
    )


def _score(test: str, reference: ColumnReference, current: np.ndarray) -> float:
    if test == "ks":
        if not reference.exact:
            raise ValueError(
                f"K-S needs every reference value; this reference has {reference.count} rows "
                f"(kept whole only up to {EXACT_ROWS}): use wasserstein"
            )
        return float(stats.ks_2samp(np.asarray(reference.exact), current)[1])
    if test == "wasserstein":
        if reference.kind != "numerical":
            raise ValueError("wasserstein applies to numerical columns only")
        return wasserstein_to_sketch(np.asarray(reference.quantiles), current) / max(reference.std, 0.001)
    keys, ref_counts, cur_counts = _aligned_counts(reference, current)
    if test == "chisquare":
        expected = ref_counts * (cur_counts.sum() / ref_counts.sum())
        with np.errstate(divide="ignore"):  # a value the reference never had: p = 0, as Evidently
            return float(stats.chisquare(cur_counts, expected)[1])
    if test == "z":
        return _z_test(keys, ref_counts, cur_counts)
    return float(distance.jensenshannon(ref_counts / ref_counts.sum(), cur_counts / cur_counts.sum()))


def _aligned_counts(
    reference: ColumnReference, current: np.ndarray
) -> tuple[list[Any], np.ndarray, np.ndarray]:
    """Keys (reference's and current's values) with each side's counts, 0 where absent.

    Raises:
        ValueError: The reference kept no value counts (a numerical column with many values).
    """
    if not reference.values:
        raise ValueError(
            f"this reference kept no value counts for {reference.name!r} ({reference.distinct} distinct "
            "values): use wasserstein or ks"
        )
    current_counts = pd.Series(current).value_counts()
    if reference.kind == "numerical":
        current_counts.index = current_counts.index.astype(np.float64)
    ref = reference.counts
    keys = list(ref) + [k for k in current_counts.index if k not in ref]
    if OTHER in ref:  # current values beyond the reference's kept categories count as other
        kept = set(reference.values)
        extra = current_counts[[k not in kept for k in current_counts.index]].sum()
        current_counts = current_counts[[k in kept for k in current_counts.index]]
        current_counts[OTHER] = current_counts.get(OTHER, 0) + extra
        keys = list(ref)
    ref_counts = np.array([ref.get(k, 0) for k in keys], dtype=np.float64)
    cur_counts = np.array([current_counts.get(k, 0) for k in keys], dtype=np.float64)
    return keys, ref_counts, cur_counts


def _z_test(keys: list[Any], ref_counts: np.ndarray, cur_counts: np.ndarray) -> float:
    """Evidently's two-proportion Z-test: the share of values other than the smallest key."""
    present = [k for k, r, c in zip(keys, ref_counts, cur_counts, strict=True) if r or c]
    ref_present = [k for k, r in zip(keys, ref_counts, strict=True) if r]
    cur_present = [k for k, c in zip(keys, cur_counts, strict=True) if c]
    if len(ref_present) == 1 and len(cur_present) == 1 and ref_present[0] == cur_present[0]:
        return 1.0
    first = sorted(present)[0]
    index = keys.index(first)
    n1, n2 = ref_counts.sum(), cur_counts.sum()
    p1 = (n1 - ref_counts[index]) / n1
    p2 = (n2 - cur_counts[index]) / n2
    pooled = (p1 * n1 + p2 * n2) / (n1 + n2)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (p1 - p2) / np.sqrt(pooled * (1 - pooled) * (1.0 / n1 + 1.0 / n2))
    p = 2 * (1 - stats.norm.cdf(abs(z)))
    return float(p)  # NaN when both sides hold one value in the same share: no drift, as Evidently


def wasserstein_to_sketch(quantiles: np.ndarray, current: np.ndarray) -> float:
    """W1 between the reference (K equal-mass quantile points) and the current values.

    W1 is the integral over u in [0, 1] of |Q_ref(u) - Q_cur(u)|. Both quantile functions
    are steps: the reference's at k/K, the current's at i/n. With n >= K, each current value
    i is paired with the reference step its level (i + 0.5)/n falls in, which is exact but
    for the at most K intervals that straddle a reference step. Smaller windows take the
    exact merge of both step grids.
    """
    ordered = np.sort(current)
    n, k = len(ordered), len(quantiles)
    if n >= k:
        steps = ((np.arange(n) + 0.5) * (k / n)).astype(np.int64)
        return float(np.abs(quantiles[steps] - ordered).mean())
    levels = np.union1d(np.arange(k + 1) / k, np.arange(n + 1) / n)
    middles = (levels[:-1] + levels[1:]) / 2
    ref_at = quantiles[np.minimum((middles * k).astype(np.int64), k - 1)]
    cur_at = ordered[np.minimum((middles * n).astype(np.int64), n - 1)]
    return float(np.sum(np.abs(ref_at - cur_at) * np.diff(levels)))


def check_drift(
    reference: Reference, window: pd.DataFrame, settings: DriftSettings | None = None
) -> DriftVerdict:
    """The verdict of a window of traffic (one row a served row) against the reference."""
    settings = settings or DriftSettings()
    rows = len(window)
    if rows < settings.min_rows:
        return DriftVerdict(
            rows,
            [],
            settings.drift_share,
            0.0,
            False,
            too_small=f"{rows} rows in the window; a verdict needs at least {settings.min_rows}",
        )
    skipped: dict[str, str] = {}
    todo = []
    for column in reference.columns:
        own = settings.columns.get(column.name, ColumnSettings())
        if own.ignore:
            skipped[column.name] = "ignored by configuration"
        elif column.name not in window.columns:
            skipped[column.name] = "not in the window's rows"
        else:
            todo.append((column, own))

    def one(item: tuple[ColumnReference, ColumnSettings]) -> ColumnDrift | str:
        try:
            return column_drift(item[0], window[item[0].name], item[1])
        except ValueError as exc:
            return str(exc)

    with ThreadPoolExecutor(max_workers=min(len(todo), os.cpu_count() or 1) or 1) as pool:
        outcomes = list(pool.map(one, todo))
    results = []
    for (column, _), outcome in zip(todo, outcomes, strict=True):
        if isinstance(outcome, str):
            skipped[column.name] = outcome
        else:
            results.append(outcome)
    drifted = sum(r.drifted for r in results)
    share = drifted / len(results) if results else 0.0
    return DriftVerdict(
        rows, results, settings.drift_share, share, bool(results) and share >= settings.drift_share, skipped
    )
