"""Weighted metrics equal scikit-learn on the resampled rows; intervals behave as intervals."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from components.common.tasks.binary import METRICS
from components.common.tasks.binary_metrics import (
    bootstrap_intervals,
    point_metrics,
    resample_weights,
    weighted_metrics,
)


def _scored(n: int, seed: int, ties: bool = False) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.08).astype(int)
    p = np.clip(0.15 + 0.45 * y + rng.normal(0, 0.2, n), 0.001, 0.999)
    return y, (np.round(p, 1) if ties else p)  # rounding makes many tied scores


def _sklearn(y: np.ndarray, p: np.ndarray, threshold: float) -> dict[str, float]:
    pred = (p >= threshold).astype(int)
    tn, fp, fn, tp = skm.confusion_matrix(y, pred, labels=[0, 1]).ravel()
    return {
        "recall": skm.recall_score(y, pred),
        "specificity": skm.recall_score(1 - y, 1 - pred),
        "precision": skm.precision_score(y, pred),
        "npv": tn / (tn + fn),
        "f1": skm.f1_score(y, pred),
        "balanced_accuracy": skm.balanced_accuracy_score(y, pred),
        "accuracy": skm.accuracy_score(y, pred),
        "roc_auc": skm.roc_auc_score(y, p),
        "pr_auc": skm.average_precision_score(y, p),
        "brier": skm.brier_score_loss(y, p),
        "log_loss": skm.log_loss(y, p),
    }


@pytest.mark.parametrize("ties", [False, True])
def test_point_metrics_match_scikit_learn(ties: bool) -> None:
    y, p = _scored(3000, seed=1, ties=ties)
    ours, theirs = point_metrics(y, p, 0.4), _sklearn(y, p, 0.4)
    assert set(ours) == set(METRICS)
    for name in METRICS:
        assert ours[name] == pytest.approx(theirs[name], rel=1e-9, abs=1e-12), name


@pytest.mark.parametrize("ties", [False, True])
def test_each_resample_equals_scikit_learn_on_the_resampled_rows(ties: bool) -> None:
    y, p = _scored(800, seed=2, ties=ties)
    rng = np.random.default_rng(7)
    weights = resample_weights(len(y), 5, rng)
    assert (weights.sum(axis=1) == len(y)).all()
    values = weighted_metrics(y, p, 0.35, weights)
    for b in range(5):
        rows = np.repeat(np.arange(len(y)), weights[b].astype(int))
        theirs = _sklearn(y[rows], p[rows], 0.35)
        for name in METRICS:
            assert values[name][b] == pytest.approx(theirs[name], rel=1e-9, abs=1e-12), (b, name)


def test_intervals_hold_the_estimate_and_narrow_with_more_rows() -> None:
    small_y, small_p = _scored(500, seed=3)
    large_y, large_p = _scored(20_000, seed=3)
    small = bootstrap_intervals(small_y, small_p, 0.4, resamples=400)
    large = bootstrap_intervals(large_y, large_p, 0.4, resamples=400)
    estimate = point_metrics(small_y, small_p, 0.4)
    for name in METRICS:
        low, high = small[name]
        assert low <= estimate[name] <= high, name
        assert large[name][1] - large[name][0] < (high - low) / 2, name  # ~1/sqrt(40) as wide
    assert bootstrap_intervals(small_y, small_p, 0.4, resamples=400) == small  # seeded


def test_undefined_metrics_are_nan_not_errors() -> None:
    y = np.zeros(50, dtype=int)
    p = np.linspace(0.01, 0.99, 50)
    values = point_metrics(y, p, 0.5)
    assert np.isnan(values["recall"]) and np.isnan(values["roc_auc"]) and values["specificity"] == 0.5
    assert np.isnan(bootstrap_intervals(y, p, 0.5, resamples=20)["roc_auc"][0])
