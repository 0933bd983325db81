"""Bootstrap intervals of every multi-class metric: kubeloop's weighted engine against scikit-learn.

1,000 resamples of 100,000 rows x 10 classes. scikit-learn computes the same metrics resample by
resample (a few resamples, timed, then scaled to 1,000: the whole run would take many minutes).
Target: <= 10 s for kubeloop. Run with `make bench-metrics`.
"""

from __future__ import annotations

import time

import numpy as np

from components.common.tasks.multiclass_metrics import MulticlassScores

ROWS, CLASSES, RESAMPLES, SKLEARN_RESAMPLES = 100_000, 10, 1000, 5
TARGET_SECONDS = 10.0


def sample(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Labels with unequal class shares and softmax scores of a moderately good model."""
    rng = np.random.default_rng(seed)
    shares = np.linspace(2.0, 0.5, CLASSES)
    y = rng.choice(CLASSES, size=ROWS, p=shares / shares.sum())
    z = rng.normal(size=(ROWS, CLASSES))
    z[np.arange(ROWS), y] += 1.0
    p = (np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)).astype(np.float32)  # as ONNX gives them
    p64 = p.astype(np.float64)
    return y, p64 / p64.sum(axis=1, keepdims=True)


def sklearn_seconds(y: np.ndarray, p: np.ndarray, d: np.ndarray) -> float:
    """Seconds per resample for scikit-learn's versions of the same metrics."""
    from sklearn import metrics as skm

    labels = list(range(CLASSES))
    onehot = np.eye(CLASSES)
    rng = np.random.default_rng(1)
    started = time.perf_counter()
    for _ in range(SKLEARN_RESAMPLES):
        rows = rng.integers(0, ROWS, size=ROWS)
        yr, pr, dr = y[rows], p[rows], d[rows]
        skm.accuracy_score(yr, dr)
        skm.balanced_accuracy_score(yr, dr)
        for average in ("macro", "weighted", None):
            skm.precision_recall_fscore_support(yr, dr, average=average, labels=labels, zero_division=0)
        skm.roc_auc_score(yr, pr, multi_class="ovr", average=None, labels=labels)
        skm.average_precision_score(onehot[yr], pr, average=None)
        skm.log_loss(yr, pr, labels=labels)
        skm.brier_score_loss(yr, pr, labels=labels)
        skm.top_k_accuracy_score(yr, pr, k=2, labels=labels)
    return (time.perf_counter() - started) / SKLEARN_RESAMPLES


def main() -> None:
    """Print both timings and the ratio; the last line is the summary."""
    y, p = sample()
    d = p.argmax(axis=1)
    names = [f"class{c}" for c in range(CLASSES)]
    print(f"{ROWS:,} rows x {CLASSES} classes, {RESAMPLES:,} bootstrap resamples", flush=True)
    started = time.perf_counter()
    scores = MulticlassScores(y, p, d, names)
    point = scores.point()
    intervals = scores.intervals(RESAMPLES)
    ours = time.perf_counter() - started
    print(f"kubeloop: {len(intervals)} metrics with intervals in {ours:.2f} s", flush=True)
    print(
        f"  e.g. macro ROC-AUC {point['roc_auc']:.4f} "
        f"({intervals['roc_auc'][0]:.4f} - {intervals['roc_auc'][1]:.4f}), "
        f"accuracy {point['accuracy']:.4f} ({intervals['accuracy'][0]:.4f} - {intervals['accuracy'][1]:.4f})"
    )
    per = sklearn_seconds(y, p, d)
    theirs = per * RESAMPLES
    print(
        f"scikit-learn: {per:.3f} s a resample ({SKLEARN_RESAMPLES} timed), {theirs:.0f} s for {RESAMPLES:,}"
    )
    print(f"target (<= {TARGET_SECONDS:.0f} s): {'met' if ours <= TARGET_SECONDS else 'MISSED'}")
    print(f"bench-metrics: {ours:.2f} s; ratio {theirs / ours:.1f} vs scikit-learn resample by resample")


if __name__ == "__main__":
    main()
