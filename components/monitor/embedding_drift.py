"""Drift of embeddings (an image model's second output) with Evidently's four methods, their
defaults and thresholds (evidently.legacy.metrics.data_drift.embedding_drift_methods), computed
in numpy so that 100,000 against 100,000 rows of 128 dimensions take a fraction of a second.

- `model` (the default, as Evidently's EmbeddingsDriftMetric): a domain classifier told
  reference (1) from current (0) on a random half, its ROC AUC on the other half; drift above
  0.55, or with `bootstrap` (Evidently's default below 1,000 reference rows) above the 95th
  percentile of the AUC that chance gives on that half. Evidently fits an SGD logistic
  regression; here the classifier is Fisher's linear discriminant (closed form, ridge
  regularised), the same family of linear separators, so the verdicts agree where a linear
  boundary tells the sets apart (tests/unit/test_embedding_drift.py: Evidently's verdict on
  every case of the matrix). Chance's quantile is exact (the Mann-Whitney statistic's
  normal limit) rather than Evidently's 100 random draws.
- `mmd`: the unbiased squared maximum mean discrepancy with an RBF kernel at the median
  distance; drift above 0.015, or with `bootstrap` above the 95th percentile of the statistic
  under the null, from permutations of the pooled rows. Evidently's bootstrap compares with the
  5th percentile (`quantile_probability=0.05`) of resamples of the reference alone, so it
  calls drift whenever the statistic beats the bottom of its null: on two samples of one
  distribution it does so about 95% of the time (the test shows it). Evidently also builds the
  whole (m + n)^2 kernel matrix; here at most `MMD_ROWS` rows a side enter it.
- `distance`: the euclidean distance between the mean embeddings (Evidently's default
  metric); drift above 0.2, or with `bootstrap` above the 95th percentile of the distance
  between resampled reference means.
- `ratio`: the share of components whose Wasserstein distance, in reference standard
  deviations, is at least 0.1; drift above 0.2.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import stats

Method = Literal["model", "mmd", "distance", "ratio"]
METHODS: tuple[Method, ...] = ("model", "mmd", "distance", "ratio")
THRESHOLDS: dict[Method, float] = {"model": 0.55, "mmd": 0.015, "distance": 0.2, "ratio": 0.2}
"""Evidently's defaults."""
BOOTSTRAP_BELOW = 1000
"""Evidently's EmbeddingsDriftMetric bootstraps the model method below this many reference rows."""
MMD_ROWS = 2000
"""Rows a side in the MMD kernel (a random sample of each beyond it)."""
PERMUTATIONS = 200
"""Permutations of the MMD null (bootstrap)."""
RESAMPLES = 100
"""Resamples of the distance null (bootstrap), as Evidently's N_BOOTSTRAP."""
ATYPICAL = 12
"""Atypical current rows kept for the report (model method)."""
COMPONENT_THRESHOLD = 0.1
"""Ratio: a component drifts at a normed Wasserstein distance of at least this (Evidently's)."""


@dataclass(frozen=True)
class EmbeddingDrift:
    """One method's verdict on a window of embeddings."""

    method: Method
    score: float
    """ROC AUC (model), MMD^2 (mmd), distance of the means (distance), share of components (ratio)."""
    threshold: float
    """What the score was compared with: the fixed threshold, or the null's 95th percentile."""
    drifted: bool
    detail: str
    atypical: tuple[int, ...] = ()
    """The model method: current rows the domain classifier finds least like the reference
    (most atypical first), `ATYPICAL` of them, for the window's report."""


def embedding_drift(
    reference: np.ndarray,
    current: np.ndarray,
    method: Method = "model",
    threshold: float | None = None,
    bootstrap: bool | None = None,
    seed: int = 42,
) -> EmbeddingDrift:
    """Compare a window's embeddings with the reference's.

    Args:
        reference: (m, D) embeddings of the reference (the training images').
        current: (n, D) embeddings of the window.
        method: One of `METHODS`.
        threshold: The method's threshold; default Evidently's (`THRESHOLDS`).
        bootstrap: Judge against the score's null distribution instead of the threshold;
            default: for `model`, below `BOOTSTRAP_BELOW` reference rows (as Evidently),
            otherwise off.
        seed: Seed of the split, the samples and the permutations.

    Raises:
        ValueError: An unknown method, empty sides, or dimensions that differ.
    """
    if method not in METHODS:
        raise ValueError(f"unknown embedding drift method {method!r}; use one of {', '.join(METHODS)}")
    x, y = _matrix(reference, "reference"), _matrix(current, "current")
    if x.shape[1] != y.shape[1]:
        raise ValueError(
            f"the reference embeddings have {x.shape[1]} dimensions and the current ones {y.shape[1]}: "
            "they come from different models; compare windows served by the version the reference is of"
        )
    limit = THRESHOLDS[method] if threshold is None else float(threshold)
    rng = np.random.default_rng(seed)
    if method == "model":
        boot = len(x) < BOOTSTRAP_BELOW if bootstrap is None else bootstrap
        return _model(x, y, limit, boot, rng)
    if method == "mmd":
        return _mmd(x, y, limit, bool(bootstrap), rng)
    if method == "distance":
        return _distance(x, y, limit, bool(bootstrap), rng)
    return _ratio(x, y, limit)


def _matrix(values: np.ndarray, side: str) -> np.ndarray:
    array = np.asarray(values)
    if not np.issubdtype(array.dtype, np.floating):
        array = array.astype(np.float64)
    if array.ndim != 2 or len(array) < 4:
        raise ValueError(f"the {side} embeddings must be a (rows, dimensions) array of 4 rows or more")
    return array


def _model(
    x: np.ndarray, y: np.ndarray, limit: float, bootstrap: bool, rng: np.random.Generator
) -> EmbeddingDrift:
    """A linear domain classifier's held-out ROC AUC (reference = 1).

    Each side is split in random halves (Evidently splits the pooled rows: the same in
    expectation), the discriminant is fitted on at most `FIT_ROWS` rows of each training half,
    and every row of the test halves is scored: projecting all rows once costs less than
    copying the halves out.
    """
    x_order, y_order = rng.permutation(len(x)), rng.permutation(len(y))
    x_train, x_test = x_order[: len(x) // 2], x_order[len(x) // 2 :]
    y_train, y_test = y_order[: len(y) // 2], y_order[len(y) // 2 :]
    w = _fisher_direction(x[np.sort(x_train[:FIT_ROWS])], y[np.sort(y_train[:FIT_ROWS])])
    current_scores = y @ w
    positive, negative = (x @ w)[x_test], current_scores[y_test]
    auc = _auc(positive, negative)
    if bootstrap:
        # The AUC of scores that carry no information: mean 1/2, Mann-Whitney's variance.
        n1, n0 = len(positive), len(negative)
        limit = 0.5 + float(stats.norm.ppf(0.95)) * math.sqrt((n1 + n0 + 1) / (12.0 * n1 * n0))
    rows = len(x_test) + len(y_test)
    detail = (
        f"domain classifier ROC AUC {auc:.3f} on {rows:,} held-out rows "
        f"({'above' if auc > limit else 'within'} {limit:.3f})"
    )
    atypical = tuple(int(i) for i in np.argsort(current_scores, kind="stable")[:ATYPICAL])
    return EmbeddingDrift("model", auc, limit, bool(auc > limit), detail, atypical)


FIT_ROWS = 10_000
"""Rows a side the discriminant is fitted on: enough to settle a direction in a few hundred
dimensions; the AUC is taken on every held-out row."""


def _fisher_direction(ones: np.ndarray, zeros: np.ndarray) -> np.ndarray:
    """Fisher's discriminant w = (S + λI)^-1 (μ1 - μ0), S the pooled within-class scatter."""
    mean_1, mean_0 = ones.mean(axis=0, dtype=np.float64), zeros.mean(axis=0, dtype=np.float64)
    centred = np.vstack([ones - mean_1, zeros - mean_0])
    scatter = (centred.T @ centred).astype(np.float64) / max(len(centred) - 2, 1)
    ridge = 1e-3 * float(np.trace(scatter)) / len(scatter) + 1e-12
    direction = np.linalg.solve(scatter + ridge * np.eye(len(scatter)), mean_1 - mean_0)
    return direction.astype(ones.dtype)


def _auc(positive: np.ndarray, negative: np.ndarray) -> float:
    """P(positive > negative) + P(tie) / 2, from the sorted negatives: the value
    `ranking.roc_auc` gives, without ranking all the pooled rows (most of the method's time)."""
    ranked = np.sort(negative)
    below = np.searchsorted(ranked, positive, side="left")
    at_or_below = np.searchsorted(ranked, positive, side="right")
    return float((below.sum() + at_or_below.sum()) / (2.0 * len(positive) * len(negative)))


def _mmd(
    x: np.ndarray, y: np.ndarray, limit: float, bootstrap: bool, rng: np.random.Generator
) -> EmbeddingDrift:
    """Unbiased MMD^2 with an RBF kernel at the median pairwise distance."""
    xs = x[rng.choice(len(x), MMD_ROWS, replace=False)] if len(x) > MMD_ROWS else x
    ys = y[rng.choice(len(y), MMD_ROWS, replace=False)] if len(y) > MMD_ROWS else y
    m, n = len(xs), len(ys)
    pooled = np.vstack([xs, ys])
    squared = _squared_distances(pooled)
    cross = squared[:m, m:]
    sigma2 = float(np.median(cross)) or 1.0  # Evidently: the median distance between the sides, squared
    kernel = np.exp(-squared / sigma2)
    score = _mmd2u(kernel, np.arange(m), np.arange(m, m + n))
    if bootstrap:
        null = [_mmd2u(kernel, p[:m], p[m:]) for p in (rng.permutation(m + n) for _ in range(PERMUTATIONS))]
        limit = float(np.percentile(null, 95))
    verdict = "above" if score > limit else "within"
    detail = f"MMD^2 {max(score, 0.0):.4f} on {m:,} and {n:,} rows ({verdict} {limit:.4f})"
    return EmbeddingDrift("mmd", max(score, 0.0), limit, bool(score > limit), detail)


def _squared_distances(rows: np.ndarray) -> np.ndarray:
    norms = np.einsum("ij,ij->i", rows, rows)
    return np.maximum(norms[:, None] + norms[None, :] - 2.0 * rows @ rows.T, 0.0)


def _mmd2u(kernel: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    kx, ky, kxy = kernel[np.ix_(a, a)], kernel[np.ix_(b, b)], kernel[np.ix_(a, b)]
    m, n = len(a), len(b)
    return float(
        (kx.sum() - np.trace(kx)) / (m * (m - 1))
        + (ky.sum() - np.trace(ky)) / (n * (n - 1))
        - 2.0 * kxy.sum() / (m * n)
    )


def _distance(
    x: np.ndarray, y: np.ndarray, limit: float, bootstrap: bool, rng: np.random.Generator
) -> EmbeddingDrift:
    """The euclidean distance between the mean embeddings."""
    score = _between(x.mean(axis=0), y.mean(axis=0))
    if bootstrap:
        m, n = len(x), len(y)
        size_x, size_y = max(m * m // (m + n), 1), max(m * n // (m + n), 1)
        null = [
            _between(x[rng.integers(0, m, size_x)].mean(axis=0), x[rng.integers(0, m, size_y)].mean(axis=0))
            for _ in range(RESAMPLES)
        ]
        limit = float(np.percentile(null, 95))
    verdict = "above" if score > limit else "within"
    detail = f"euclidean distance of the mean embeddings {score:.4f} ({verdict} {limit:.4f})"
    return EmbeddingDrift("distance", score, limit, bool(score > limit), detail)


def _between(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b))


def _ratio(x: np.ndarray, y: np.ndarray, limit: float) -> EmbeddingDrift:
    """The share of components drifted by Evidently's normed Wasserstein test."""
    drifted = 0
    for column in range(x.shape[1]):
        scale = max(float(np.std(x[:, column])), 0.001)  # Evidently's floor on the reference's std
        drifted += stats.wasserstein_distance(x[:, column], y[:, column]) / scale >= COMPONENT_THRESHOLD
    share = drifted / x.shape[1]
    detail = (
        f"{drifted} of {x.shape[1]} components drifted (normed Wasserstein >= {COMPONENT_THRESHOLD}): "
        f"{share:.1%} ({'above' if share > limit else 'within'} {limit:.0%})"
    )
    return EmbeddingDrift("ratio", share, limit, bool(share > limit), detail)
