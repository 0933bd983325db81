"""Binary metrics on weighted rows, bootstrap intervals on all resamples at once, and curves.

A bootstrap resample is the original rows with multinomial counts as weights, so B resamples
are one (B, n) weight matrix: the scores are sorted once, and ROC-AUC and average precision
come from cumulative weighted counts per distinct score, with ties handled as scikit-learn
does. That makes 1,000 resamples cost about as much as a few dozen scikit-learn calls.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from components.common.tasks.base import Scores
from components.common.tasks.binary import METRICS
from components.common.tasks.ranking import Ranking, percentile_intervals, ratio

_EPS = 1e-15  # scikit-learn's log_loss clips probabilities the same way
_CHUNK_CELLS = 2_000_000  # resamples x rows per batch: bounds memory on large test sets


def weighted_metrics(y: np.ndarray, p: np.ndarray, threshold: float, w: np.ndarray) -> dict[str, np.ndarray]:
    """Each metric for each row of weights.

    Args:
        y: 0/1 labels, shape (n,).
        p: scores (probabilities), shape (n,).
        threshold: p >= threshold is called positive.
        w: non-negative row weights, shape (B, n); all ones reproduces the plain metrics.

    Returns:
        metric name -> shape (B,); NaN where a metric is undefined (e.g. no positives).
    """
    y = y.astype(np.float64)
    positive, called = y == 1, p >= threshold
    tp = w[:, positive & called].sum(axis=1)
    fn = w[:, positive & ~called].sum(axis=1)
    fp = w[:, ~positive & called].sum(axis=1)
    tn = w[:, ~positive & ~called].sum(axis=1)
    total, positives, negatives = tp + fn + fp + tn, tp + fn, fp + tn
    recall, specificity = ratio(tp, positives), ratio(tn, negatives)
    precision = ratio(tp, tp + fp)
    clipped = np.clip(p, _EPS, 1 - _EPS)
    out = {
        "recall": recall,
        "specificity": specificity,
        "precision": precision,
        "npv": ratio(tn, tn + fn),
        "f1": ratio(2 * tp, 2 * tp + fp + fn),
        "balanced_accuracy": (recall + specificity) / 2,
        "accuracy": ratio(tp + tn, total),
        "brier": ratio(w @ (p - y) ** 2, total),
        "log_loss": ratio(-(w @ (y * np.log(clipped) + (1 - y) * np.log(1 - clipped))), total),
    }
    out["roc_auc"], out["pr_auc"] = Ranking(positive, p).auc(w)
    return out


def point_metrics(y: np.ndarray, p: np.ndarray, threshold: float) -> dict[str, float]:
    """The metrics on the rows as they are."""
    values = weighted_metrics(y, p, threshold, np.ones((1, len(y))))
    return {name: float(values[name][0]) for name in METRICS}


def resample_weights(n: int, count: int, rng: np.random.Generator) -> np.ndarray:
    """`count` bootstrap resamples of n rows as multinomial counts, shape (count, n)."""
    picks = rng.integers(0, n, size=(count, n)) + np.arange(count)[:, None] * n
    return np.bincount(picks.ravel(), minlength=count * n).reshape(count, n).astype(np.float64)


def bootstrap_intervals(
    y: np.ndarray,
    p: np.ndarray,
    threshold: float,
    resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap interval of every metric (resamples where it is undefined are skipped)."""
    rng = np.random.default_rng(seed)
    chunk = max(1, _CHUNK_CELLS // max(len(y), 1))
    collected: dict[str, list[np.ndarray]] = {name: [] for name in METRICS}
    for start in range(0, resamples, chunk):
        values = weighted_metrics(
            y, p, threshold, resample_weights(len(y), min(chunk, resamples - start), rng)
        )
        for name in METRICS:
            collected[name].append(values[name])
    return percentile_intervals(collected, level)


def paired_differences(
    y: np.ndarray,
    candidate: tuple[np.ndarray, float],
    reference: tuple[np.ndarray, float],
    metrics: list[str],
    resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, dict[str, float]]:
    """Candidate minus reference for each metric, with a paired percentile bootstrap interval.

    Both models are scored on the same resampled rows, so the interval reflects the
    difference between them, not the (much wider) spread of each metric on its own.

    Args:
        y: 0/1 labels of the shared rows.
        candidate: (probabilities, threshold) of the new model.
        reference: (probabilities, threshold) of the model it is compared with.
        metrics: Names from METRICS.
        resamples: Bootstrap resamples; 0 gives the point difference only.
        level: Interval coverage.
        seed: Resampling seed (fixed so a rerun gives the same report).

    Returns:
        metric -> {"candidate", "reference", "difference", "low", "high"} (NaN bounds when
        resamples is 0 or the metric is undefined on every resample).
    """
    ones = np.ones((1, len(y)))
    out: dict[str, dict[str, float]] = {}
    cand_point, ref_point = weighted_metrics(y, *candidate, ones), weighted_metrics(y, *reference, ones)
    for name in metrics:
        a, b = float(cand_point[name][0]), float(ref_point[name][0])
        out[name] = {"candidate": a, "reference": b, "difference": a - b, "low": np.nan, "high": np.nan}
    if resamples == 0:
        return out
    rng = np.random.default_rng(seed)
    chunk = max(1, _CHUNK_CELLS // max(len(y), 1))
    diffs: dict[str, list[np.ndarray]] = {name: [] for name in metrics}
    for start in range(0, resamples, chunk):
        w = resample_weights(len(y), min(chunk, resamples - start), rng)
        cand, ref = weighted_metrics(y, *candidate, w), weighted_metrics(y, *reference, w)
        for name in metrics:
            diffs[name].append(cand[name] - ref[name])
    for name, (low, high) in percentile_intervals(diffs, level).items():
        out[name].update(low=low, high=high)
    return out


def binary_metrics(y: np.ndarray, p: np.ndarray, threshold: float) -> dict[str, float]:
    """Every metric of `bootstrap.METRICS` plus prevalence and the confusion counts.

    A ratio with an empty denominator is 0.0, as scikit-learn's zero_division default.
    """
    pred = p >= threshold
    values = {k: (0.0 if np.isnan(v) else v) for k, v in point_metrics(y, p, threshold).items()}
    return {
        **values,
        "prevalence": float(np.mean(y)),
        "tp": int(np.sum(pred & (y == 1))),
        "fp": int(np.sum(pred & (y == 0))),
        "fn": int(np.sum(~pred & (y == 1))),
        "tn": int(np.sum(~pred & (y == 0))),
    }


def roc_points(y: np.ndarray, p: np.ndarray, limit: int = 200) -> dict[str, list[float]]:
    """ROC curve thinned to at most `limit` points (the Kubeflow UI draws these)."""
    from sklearn.metrics import roc_curve

    fpr, tpr, thresholds = roc_curve(y, p)
    keep = np.unique(np.linspace(0, len(fpr) - 1, min(limit, len(fpr))).astype(int))
    finite = np.where(np.isfinite(thresholds), thresholds, 1.0)
    return {"fpr": fpr[keep].tolist(), "tpr": tpr[keep].tolist(), "thresholds": finite[keep].tolist()}


def curves(y: np.ndarray, p: np.ndarray, limit: int = 200) -> dict[str, dict[str, Any]]:
    """ROC (`roc_points`, with thresholds for the Kubeflow UI) and precision-recall curves,
    each thinned to at most `limit` points."""
    from sklearn.metrics import precision_recall_curve

    precision, recall, _ = precision_recall_curve(y, p)
    q = np.unique(np.linspace(0, len(recall) - 1, min(limit, len(recall))).astype(int))
    return {
        "roc": roc_points(y, p, limit),
        "pr": {
            "recall": recall[q].tolist(),
            "precision": precision[q].tolist(),
            "prevalence": float(np.mean(y)),
        },
    }


def matching_recall_threshold(scores: np.ndarray, y: np.ndarray, recall: float) -> float:
    """The highest threshold at which `scores` reach at least `recall` (to compare at equal recall)."""
    positives = np.sort(scores[y == 1])[::-1]
    if len(positives) == 0:
        return 0.5
    needed = min(len(positives), max(1, int(np.ceil(recall * len(positives) - 1e-9))))
    return float(positives[needed - 1])


class BinaryScores(Scores):
    """0/1 labels, positive-class probabilities and the operating threshold."""

    def __init__(self, y: np.ndarray, p: np.ndarray, threshold: float) -> None:
        """Scores of rows with labels `y` and probabilities `p`, called positive at `threshold`."""
        self.y, self.p, self.threshold = np.asarray(y), np.asarray(p, dtype=np.float64), float(threshold)

    def point(self) -> dict[str, float]:
        """`point_metrics`."""
        return point_metrics(self.y, self.p, self.threshold)

    def summary(self) -> dict[str, Any]:
        """`binary_metrics`: every metric, prevalence and the confusion counts."""
        return binary_metrics(self.y, self.p, self.threshold)

    def intervals(self, resamples: int, level: float, seed: int = 0) -> dict[str, tuple[float, float]]:
        """`bootstrap_intervals`."""
        return bootstrap_intervals(self.y, self.p, self.threshold, resamples, level, seed)

    def paired(
        self, reference: Scores, metrics: Sequence[str], resamples: int, level: float, seed: int = 0
    ) -> dict[str, dict[str, float]]:
        """`paired_differences` against another binary model on the same rows."""
        if not isinstance(reference, BinaryScores):
            raise TypeError("a binary model compares only with another binary model")
        return paired_differences(
            self.y,
            (self.p, self.threshold),
            (reference.p, reference.threshold),
            list(metrics),
            resamples,
            level,
            seed,
        )

    def confusion(self) -> tuple[list[str], list[list[int]]]:
        """[[tn, fp], [fn, tp]] under negative, positive."""
        positive, called = self.y == 1, self.p >= self.threshold
        negative_row = [int(np.sum(~positive & ~called)), int(np.sum(~positive & called))]
        positive_row = [int(np.sum(positive & ~called)), int(np.sum(positive & called))]
        return ["negative", "positive"], [negative_row, positive_row]

    def subset(self, rows: np.ndarray) -> BinaryScores:
        """The rows where `rows` is true."""
        return BinaryScores(self.y[rows], self.p[rows], self.threshold)


def served_metrics(labels: np.ndarray, probability: np.ndarray, decision: np.ndarray) -> dict[str, float]:
    """recall, precision, ROC AUC and PR AUC of served answers (labels: True for positive)."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    positives, predicted = int(labels.sum()), int(decision.sum())
    hits = int((labels & decision).sum())
    both_classes = 0 < positives < len(labels)
    return {
        "recall": hits / positives if positives else float("nan"),
        "precision": hits / predicted if predicted else float("nan"),
        "roc_auc": float(roc_auc_score(labels, probability)) if both_classes else float("nan"),
        "pr_auc": float(average_precision_score(labels, probability)) if both_classes else float("nan"),
    }
