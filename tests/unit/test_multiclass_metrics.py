"""Multi-class metrics and their bootstrap against scikit-learn, resample by resample."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from components.common.tasks.multiclass_metrics import MulticlassScores

CLASSES = ["normal", "benign", "malignant", "other"]


def _sample(n: int, seed: int, ties: bool = True) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    k = len(CLASSES)
    y = rng.choice(k, size=n, p=[0.55, 0.25, 0.12, 0.08])
    z = rng.normal(size=(n, k))
    z[np.arange(n), y] += 1.2
    if ties:
        z = np.round(z, 1)  # many tied scores: the rankings must treat ties as scikit-learn does
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    return y, p


def sklearn_metrics(y: np.ndarray, p: np.ndarray, d: np.ndarray) -> dict[str, float]:
    labels = list(range(len(CLASSES)))
    onehot = np.eye(len(CLASSES))[y]
    out = {
        "accuracy": skm.accuracy_score(y, d),
        "balanced_accuracy": skm.balanced_accuracy_score(y, d),
        "roc_auc": skm.roc_auc_score(y, p, multi_class="ovr", average="macro", labels=labels),
        "pr_auc": skm.average_precision_score(onehot, p, average="macro"),
        "log_loss": skm.log_loss(y, p, labels=labels),
        "brier": skm.brier_score_loss(y, p, labels=labels),
        "top_2_accuracy": skm.top_k_accuracy_score(y, p, k=2, labels=labels),
    }
    for average in ("macro", "weighted"):
        out[f"{average}_precision"] = skm.precision_score(
            y, d, average=average, labels=labels, zero_division=0
        )
        out[f"{average}_recall"] = skm.recall_score(y, d, average=average, labels=labels, zero_division=0)
        out[f"{average}_f1"] = skm.f1_score(y, d, average=average, labels=labels, zero_division=0)
    precision, recall, f1, _ = skm.precision_recall_fscore_support(y, d, labels=labels, zero_division=0)
    for c, name in enumerate(CLASSES):
        out[f"precision_{name}"], out[f"recall_{name}"], out[f"f1_{name}"] = precision[c], recall[c], f1[c]
        out[f"roc_auc_{name}"] = skm.roc_auc_score(onehot[:, c], p[:, c])
        out[f"pr_auc_{name}"] = skm.average_precision_score(onehot[:, c], p[:, c])
    return {k: float(v) for k, v in out.items()}


@pytest.mark.parametrize("ties", [True, False])
def test_every_metric_equals_scikit_learn(ties: bool) -> None:
    y, p = _sample(3000, seed=1, ties=ties)
    d = p.argmax(axis=1)
    ours = MulticlassScores(y, p, d, CLASSES).point()
    theirs = sklearn_metrics(y, p, d)
    assert set(theirs) <= set(ours)
    for name, value in theirs.items():
        assert ours[name] == pytest.approx(value, abs=1e-9), name


def test_a_class_never_decided_and_a_tie_in_top_2_follow_scikit_learn() -> None:
    y, p = _sample(800, seed=2)
    d = np.where(p.argmax(axis=1) == 3, 0, p.argmax(axis=1))  # class "other" is never decided
    ours = MulticlassScores(y, p, d, CLASSES).point()
    for name, value in sklearn_metrics(y, p, d).items():
        assert ours[name] == pytest.approx(value, abs=1e-9), name
    assert ours["precision_other"] == 0.0


def test_the_confusion_matrix_is_scikit_learns() -> None:
    y, p = _sample(500, seed=3)
    d = p.argmax(axis=1)
    assert MulticlassScores(y, p, d, CLASSES).confusion() == (CLASSES, skm.confusion_matrix(y, d).tolist())


def test_bootstrap_intervals_are_the_percentiles_of_scikit_learn_on_each_resample() -> None:
    y, p = _sample(400, seed=4)
    d = p.argmax(axis=1)
    resamples, level, seed = 40, 0.9, 7
    intervals = MulticlassScores(y, p, d, CLASSES).intervals(resamples, level, seed)
    # The same resamples, drawn as the implementation draws them, expanded to row indices.
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(y), size=(resamples, len(y)))
    per_resample: dict[str, list[float]] = {}
    for rows in picks:
        for name, value in sklearn_metrics(y[rows], p[rows], d[rows]).items():
            per_resample.setdefault(name, []).append(value)
    for name, values in per_resample.items():
        low, high = np.percentile(values, [5, 95])
        assert intervals[name] == pytest.approx((low, high), abs=1e-9), name


def test_probabilities_of_the_wrong_width_are_refused() -> None:
    with pytest.raises(ValueError, match=r"expected \(rows, 4\)"):
        MulticlassScores(np.zeros(3, int), np.ones((3, 3)) / 3, np.zeros(3, int), CLASSES)
