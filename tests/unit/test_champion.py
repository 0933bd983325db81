"""The champion comparison: paired bootstrap differences and the regression checks built on them."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import recall_score, roc_auc_score

from components.common.config import EvaluationConfig
from components.common.tasks import BinaryTask
from components.common.tasks.binary_metrics import paired_differences
from components.evaluate.champion import Champion, regression_checks

TASK = BinaryTask("label", 1)


def two_models(seed: int = 0, n: int = 3000) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels, a good model's scores and a noisier model's scores on the same rows."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.1).astype(int)
    good = np.clip(0.2 + 0.4 * y + rng.normal(0, 0.15, n), 0, 1)
    noisy = np.clip(good + rng.normal(0, 0.25, n), 0, 1)
    return y, good, noisy


def test_paired_difference_matches_scikit_learn_and_is_zero_against_itself() -> None:
    y, good, noisy = two_models()
    table = paired_differences(y, (good, 0.4), (noisy, 0.4), ["roc_auc", "recall"], 500)
    expected = roc_auc_score(y, good) - roc_auc_score(y, noisy)
    assert table["roc_auc"]["difference"] == pytest.approx(expected)
    recall_gap = recall_score(y, good >= 0.4) - recall_score(y, noisy >= 0.4)
    assert table["recall"]["difference"] == pytest.approx(recall_gap)
    assert table["roc_auc"]["low"] < expected < table["roc_auc"]["high"]
    same = paired_differences(y, (good, 0.4), (good, 0.4), ["roc_auc"], 200)["roc_auc"]
    assert same["difference"] == same["low"] == same["high"] == 0.0  # paired: no spread at all


def test_a_worse_candidate_fails_with_both_numbers_and_the_interval() -> None:
    y, good, noisy = two_models(1)
    cfg = EvaluationConfig(max_regression={"roc_auc": 0.02}, bootstrap_resamples=300)
    checks, comparison = regression_checks(
        TASK, y, TASK.scores(y, noisy, {"threshold": 0.4}), Champion("3", good, {"threshold": 0.4}), cfg
    )
    [check] = checks
    assert check["passed"] is False and check["required"] == -0.02
    assert check["champion"] > check["candidate"] and check["observed"] < -0.02
    assert check["interval"][0] < check["observed"] < check["interval"][1]
    assert "champion v3" in check["check"] and comparison["version"] == "3"
    better, _ = regression_checks(
        TASK, y, TASK.scores(y, good, {"threshold": 0.4}), Champion("3", noisy, {"threshold": 0.4}), cfg
    )
    assert better[0]["passed"] is True


def test_the_interval_rule_is_stricter_than_the_point_rule() -> None:
    y, good, _ = two_models(2, 800)
    rng = np.random.default_rng(3)
    close = np.clip(good + rng.normal(0, 0.05, len(good)), 0, 1)  # about as good, not identical
    margin = 0.005
    point = EvaluationConfig(max_regression={"roc_auc": margin}, bootstrap_resamples=400)
    interval = point.model_copy(update={"regression_rule": "interval"})
    by_point, table = regression_checks(
        TASK, y, TASK.scores(y, close, {"threshold": 0.4}), Champion("1", good, {"threshold": 0.4}), point
    )
    by_interval, _ = regression_checks(
        TASK, y, TASK.scores(y, close, {"threshold": 0.4}), Champion("1", good, {"threshold": 0.4}), interval
    )
    row = table["metrics"]["roc_auc"]
    assert row["low"] < -margin < row["difference"]  # the case where the two rules disagree
    assert by_point[0]["passed"] is True and by_interval[0]["passed"] is False


def test_a_champion_that_cannot_score_fails_the_gate_and_says_why() -> None:
    y, good, _ = two_models()
    champion = Champion("2", None, {"threshold": 0.5}, "KeyError: 'lesion_size_mm'")
    candidate = TASK.scores(y, good, {"threshold": 0.4})
    checks, comparison = regression_checks(TASK, y, candidate, champion, EvaluationConfig())
    assert checks[0]["passed"] is False and "lesion_size_mm" in checks[0]["observed"]
    assert comparison == {"version": "2", "error": "KeyError: 'lesion_size_mm'"}


def test_override_and_rule_settings_are_validated() -> None:
    with pytest.raises(ValueError, match="force_promote needs force_reason"):
        EvaluationConfig(force_promote=True)
    with pytest.raises(ValueError, match="max_regression.roc_auc = 2"):
        EvaluationConfig(max_regression={"roc_auc": 2})
    with pytest.raises(ValueError, match="interval needs bootstrap_resamples"):
        EvaluationConfig(regression_rule="interval", bootstrap_resamples=0)
