"""Evaluation metrics against scikit-learn; temperature scaling recovers a known temperature."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score, roc_auc_score

from components.common.calibration import sigmoid
from components.common.config import EvaluationConfig
from components.common.tasks import BinaryTask
from components.common.tasks.binary_calibration import fit_temperature
from components.common.tasks.binary_measures import ece_mce, logit_nll, summary
from components.common.tasks.binary_metrics import binary_metrics, roc_points
from components.evaluate.metrics import gate_checks


@pytest.fixture(scope="module")
def scored() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    y = (rng.random(5000) < 0.1).astype(int)
    p = np.clip(0.1 + 0.5 * y + rng.normal(0, 0.2, 5000), 0, 1)
    return y, p


def test_metrics_match_scikit_learn(scored: tuple[np.ndarray, np.ndarray]) -> None:
    y, p = scored
    m = binary_metrics(y, p, 0.4)
    pred = (p >= 0.4).astype(int)
    assert m["recall"] == pytest.approx(recall_score(y, pred))
    assert m["precision"] == pytest.approx(precision_score(y, pred))
    assert m["f1"] == pytest.approx(f1_score(y, pred))
    assert m["accuracy"] == pytest.approx(accuracy_score(y, pred))
    assert m["specificity"] == pytest.approx(recall_score(1 - y, 1 - pred))
    assert m["roc_auc"] == pytest.approx(roc_auc_score(y, p))
    assert m["tp"] + m["fp"] + m["fn"] + m["tn"] == len(y)


def test_roc_points_are_thinned_and_monotone(scored: tuple[np.ndarray, np.ndarray]) -> None:
    roc = roc_points(*scored, limit=50)
    assert len(roc["fpr"]) <= 50
    assert roc["fpr"][0] == 0.0 and roc["tpr"][-1] == 1.0
    assert np.all(np.diff(roc["fpr"]) >= 0)


def test_gate_lists_each_floor_with_numbers() -> None:
    checks = gate_checks(
        {"recall": 0.8, "precision": 0.3, "roc_auc": 0.9}, EvaluationConfig(min_recall=0.9, min_roc_auc=0.85)
    )
    assert [(c["metric"], c["passed"]) for c in checks] == [("recall", False), ("roc_auc", True)]
    assert checks[0]["observed"] == 0.8 and checks[0]["required"] == 0.9


def test_temperature_recovers_the_true_temperature() -> None:
    rng = np.random.default_rng(1)
    true_logits = rng.normal(0, 2, 50_000)
    y = (rng.random(50_000) < sigmoid(true_logits)).astype(int)
    overconfident = true_logits * 3.0  # a model whose logits are 3x too large
    t = fit_temperature(overconfident, y)
    assert t == pytest.approx(3.0, rel=0.05)
    assert logit_nll(overconfident, y, t) < logit_nll(overconfident, y, 1.0)
    before = summary(sigmoid(overconfident), y, 15)
    after = summary(sigmoid(overconfident / t), y, 15)
    assert after["ece"] < before["ece"] / 3


def test_ece_is_zero_for_perfect_calibration_and_large_for_overconfidence() -> None:
    rng = np.random.default_rng(2)
    p = rng.uniform(0, 1, 200_000)
    y = (rng.random(200_000) < p).astype(int)
    assert ece_mce(p, y)[0] < 0.01
    assert ece_mce(np.where(p > 0.5, 0.99, 0.01), y)[0] > 0.2


def test_the_baseline_gate_names_both_numbers_and_needs_the_baseline() -> None:
    cfg = EvaluationConfig(must_beat_baseline=True)
    checks = gate_checks({"recall": 0.8, "precision": 0.3, "roc_auc": 0.81}, cfg, {"roc_auc": 0.83456})
    assert checks == [
        {
            "check": "roc_auc >= logistic-regression baseline",
            "metric": "roc_auc",
            "observed": 0.81,
            "required": 0.8346,
            "passed": False,
        }
    ]
    assert gate_checks({"roc_auc": 0.9}, cfg, {"roc_auc": 0.83})[0]["passed"] is True
    with pytest.raises(ValueError, match="must_beat_baseline needs baseline: true"):
        EvaluationConfig(must_beat_baseline=True, baseline=False)


def test_the_baseline_learns_and_uses_one_hot_whatever_the_model_encoding() -> None:
    import dataclasses

    from components.common.modalities import TabularModality
    from components.common.preprocessing import Preprocessing
    from components.evaluate.baseline import Baseline
    from examples.screening.generate import generate

    frame = generate(rows=4000, prevalence=0.1, scanners={"A": 0.6, "B": 0.4}, seed=3)
    features = [c for c in frame.columns if c not in ("exam_id", "exam_time", "site_id", "label")]
    prep = Preprocessing.fit(frame.iloc[:3000], features, ["scanner"], encoding="embedding")
    y = frame["label"].to_numpy()
    baseline = Baseline.fit(TabularModality(), prep, frame.iloc[:3000], y[:3000], class_weighting=True)
    one_hot = dataclasses.replace(prep, encoding="one_hot").encoded_names
    assert "scanner=B" in one_hot and baseline.model.n_features_in_ == len(one_hot) > len(prep.encoded_names)
    columns = baseline.class_probabilities(frame.iloc[3000:])
    assert columns.shape == (1000, 2) and np.allclose(columns.sum(axis=1), 1.0)
    scores = BinaryTask("label", 1).from_class_columns(columns)
    assert scores.shape == (1000,) and ((0 <= scores) & (scores <= 1)).all()
    assert roc_auc_score(y[3000:], scores) > 0.75
