"""Multi-class metrics on weighted rows, many weight vectors at once, and bootstrap intervals.

The same design as the binary bootstrap: a resample is a row of multinomial counts, so B
resamples are one (B, n) weight matrix, and every metric is a weighted sum over rows. The
definitions follow scikit-learn (labels = every class, zero_division = 0 for precision,
recall and F1; balanced accuracy over the classes present; one-vs-rest macro ROC-AUC and
average precision undefined when a class has no positive or no negative row).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from components.common.tasks.base import Scores
from components.common.tasks.ranking import Ranking, percentile_intervals, ratio

EPS = float(np.finfo(np.float64).eps)
"""scikit-learn's log_loss clips probabilities to [eps, 1 - eps] of their dtype."""

CHUNK_CELLS = 400_000
"""Resamples x rows per batch: small enough that the arrays stay in cache (2M cells ran 1.7x slower)."""

SUMMARY_METRICS = (
    "accuracy",
    "balanced_accuracy",
    "macro_precision",
    "macro_recall",
    "macro_f1",
    "weighted_precision",
    "weighted_recall",
    "weighted_f1",
    "roc_auc",
    "pr_auc",
    "log_loss",
    "brier",
    "top_2_accuracy",
)
"""Whole-table metrics, in report order (roc_auc and pr_auc: one-vs-rest, macro-averaged)."""

PER_CLASS_METRICS = ("precision", "recall", "f1", "roc_auc", "pr_auc")
"""Named `<metric>_<class>` in results (e.g. recall_malignant)."""


def per_class_names(classes: list[str]) -> list[str]:
    """`<metric>_<class>` for every per-class metric and class."""
    return [f"{metric}_{name}" for metric in PER_CLASS_METRICS for name in classes]


class MulticlassScores(Scores):
    """Labels, probabilities and decisions of n rows, prepared once for any number of weightings."""

    def __init__(self, y: np.ndarray, p: np.ndarray, decision: np.ndarray, classes: list[str]) -> None:
        """Rows with class indices `y`, probabilities `p` (n, K) and decided class indices."""
        self.classes = list(classes)
        k = len(self.classes)
        self.y = np.asarray(y, dtype=np.int64)
        self.p = np.asarray(p, dtype=np.float64)
        self.decision = np.asarray(decision, dtype=np.int64)
        if self.p.ndim != 2 or self.p.shape[1] != k:
            raise ValueError(f"probabilities have shape {self.p.shape}; expected (rows, {k})")
        self.truth = np.eye(k)[self.y]  # (n, K) one-hot labels
        self.called = np.eye(k)[np.asarray(decision, dtype=np.int64)]
        self.hit = self.truth * self.called
        clipped = np.clip(self.p[np.arange(len(self.y)), self.y], EPS, 1 - EPS)
        self.row_log_loss = -np.log(clipped)
        self.row_brier = ((self.p - self.truth) ** 2).sum(axis=1)
        # As scikit-learn's top_k_accuracy_score: of tied scores, the higher class index ranks first.
        top2 = np.argsort(self.p, axis=1, kind="mergesort")[:, ::-1][:, :2]
        self.row_top2 = (top2 == self.y[:, None]).any(axis=1).astype(np.float64)
        self.rankings = [Ranking(self.truth[:, c], self.p[:, c]) for c in range(k)]

    def weighted(self, w: np.ndarray) -> dict[str, np.ndarray]:
        """Every metric for each row of weights `w` (B, n): name -> shape (B,)."""
        aucs = [ranking.auc(w) for ranking in self.rankings]  # integer weights stay integer here
        w = w.astype(np.float64, copy=False)
        support, predicted, tp = w @ self.truth, w @ self.called, w @ self.hit  # (B, K)
        total = w.sum(axis=1)
        precision = np.nan_to_num(ratio(tp, predicted))
        recall = np.nan_to_num(ratio(tp, support))
        f1 = np.nan_to_num(ratio(2 * tp, support + predicted))
        present = support > 0
        share = ratio(support, total[:, None])
        out: dict[str, np.ndarray] = {
            "accuracy": ratio(tp.sum(axis=1), total),
            "balanced_accuracy": ratio((recall * present).sum(axis=1), present.sum(axis=1).astype(float)),
            "macro_precision": precision.mean(axis=1),
            "macro_recall": recall.mean(axis=1),
            "macro_f1": f1.mean(axis=1),
            "weighted_precision": (precision * share).sum(axis=1),
            "weighted_recall": (recall * share).sum(axis=1),
            "weighted_f1": (f1 * share).sum(axis=1),
            "log_loss": ratio(w @ self.row_log_loss, total),
            "brier": ratio(w @ self.row_brier, total),
            "top_2_accuracy": ratio(w @ self.row_top2, total),
        }
        roc = np.stack([a[0] for a in aucs], axis=1)
        pr = np.stack([a[1] for a in aucs], axis=1)
        out["roc_auc"], out["pr_auc"] = roc.mean(axis=1), pr.mean(axis=1)  # NaN if any class is undefined
        for c, name in enumerate(self.classes):
            out[f"precision_{name}"], out[f"recall_{name}"] = precision[:, c], recall[:, c]
            out[f"f1_{name}"], out[f"roc_auc_{name}"], out[f"pr_auc_{name}"] = f1[:, c], roc[:, c], pr[:, c]
        return out

    def point(self) -> dict[str, float]:
        """Every metric on the rows as they are."""
        values = self.weighted(np.ones((1, len(self.y))))
        return {name: float(v[0]) for name, v in values.items()}

    def summary(self) -> dict[str, Any]:
        """Every metric, each class's support, and the confusion matrix."""
        support = self.truth.sum(axis=0).astype(int)
        return {
            **self.point(),
            **{f"support_{name}": int(n) for name, n in zip(self.classes, support, strict=True)},
            "rows": len(self.y),
        }

    def confusion(self) -> tuple[list[str], list[list[int]]]:
        """(classes, counts with row = true class, column = decided class)."""
        return list(self.classes), (self.truth.T @ self.called).astype(np.int64).tolist()

    def subset(self, rows: np.ndarray) -> MulticlassScores:
        """The rows where `rows` is true."""
        return MulticlassScores(self.y[rows], self.p[rows], self.decision[rows], self.classes)

    def _resamples(self, resamples: int, seed: int) -> Any:
        """Batches of bootstrap weights (int32 counts), drawn as `intervals` documents."""
        rng = np.random.default_rng(seed)
        n = len(self.y)
        chunk = max(1, CHUNK_CELLS // max(n, 1))
        for start in range(0, resamples, chunk):
            count = min(chunk, resamples - start)
            picks = rng.integers(0, n, size=(count, n)) + np.arange(count)[:, None] * n
            yield np.bincount(picks.ravel(), minlength=count * n).reshape(count, n).astype(np.int32)

    def paired(
        self, reference: Scores, metrics: Sequence[str], resamples: int, level: float, seed: int = 0
    ) -> dict[str, dict[str, float]]:
        """Candidate minus reference on the same resampled rows, per metric."""
        if not isinstance(reference, MulticlassScores) or reference.classes != self.classes:
            raise TypeError(f"the reference must score the same classes {self.classes}")
        mine, theirs = self.point(), reference.point()
        out = {
            m: {
                "candidate": mine[m],
                "reference": theirs[m],
                "difference": mine[m] - theirs[m],
                "low": float("nan"),
                "high": float("nan"),
            }
            for m in metrics
        }
        if resamples == 0:
            return out
        diffs: dict[str, list[np.ndarray]] = {m: [] for m in metrics}
        for w in self._resamples(resamples, seed):
            a, b = self.weighted(w), reference.weighted(w)
            for m in metrics:
                diffs[m].append(a[m] - b[m])
        for m, (low, high) in percentile_intervals(diffs, level).items():
            out[m].update(low=low, high=high)
        return out

    def intervals(
        self, resamples: int = 1000, level: float = 0.95, seed: int = 0
    ) -> dict[str, tuple[float, float]]:
        """Percentile bootstrap interval of every metric (resamples where it is undefined skipped)."""
        collected: dict[str, list[np.ndarray]] = {}
        for w in self._resamples(resamples, seed):
            for name, values in self.weighted(w).items():
                collected.setdefault(name, []).append(values)
        return percentile_intervals(collected, level)
