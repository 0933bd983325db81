"""Slice metrics, the worst-slice gap (and its gate), and the error table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import recall_score, roc_auc_score

from components.common.config import EvaluationConfig, SliceSpec
from components.common.tasks import BinaryTask
from components.evaluate.metrics import gate_checks
from components.evaluate.slices import error_table, slice_labels, slice_table, worst_slice

TASK = BinaryTask("label", 1)


@pytest.fixture(scope="module")
def scored() -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(4)
    n = 3000
    frame = pd.DataFrame({"scanner": rng.choice(["A", "B"], n, p=[0.7, 0.3]), "age": rng.uniform(20, 90, n)})
    y = (rng.random(n) < 0.1).astype(int)
    signal = np.where(frame["scanner"] == "A", 0.5, 0.15)  # scanner B separates worse
    p = np.clip(0.2 + signal * y + rng.normal(0, 0.15, n), 0, 1)
    return frame, y, p


def test_slice_metrics_equal_scikit_learn_on_each_slice(
    scored: tuple[pd.DataFrame, np.ndarray, np.ndarray],
) -> None:
    frame, y, p = scored
    table = slice_table(frame, TASK, y, TASK.scores(y, p, {"threshold": 0.45}), [SliceSpec(column="scanner")])
    assert [r["slice"] for r in table] == ["A", "B"]
    for row in table:
        mask = (frame["scanner"] == row["slice"]).to_numpy()
        assert row["rows"] == mask.sum() and row["positives"] == y[mask].sum()
        assert row["recall"] == pytest.approx(recall_score(y[mask], p[mask] >= 0.45), abs=5e-5)
        assert row["roc_auc"] == pytest.approx(roc_auc_score(y[mask], p[mask]), abs=5e-5)


def test_numeric_columns_are_binned_left_closed() -> None:
    frame = pd.DataFrame({"age": [18, 49.9, 50, 64, 65, 120]})
    labels = slice_labels(frame, SliceSpec(column="age", bins=[18, 50, 65, 110])).tolist()
    assert labels == ["[18, 50)", "[18, 50)", "[50, 65)", "[50, 65)", "[65, 110)", "(outside bins)"]
    with pytest.raises(ValueError, match="column 'site' is not in the test split"):
        slice_labels(frame, SliceSpec(column="site"))
    with pytest.raises(ValueError, match="strictly increasing"):
        SliceSpec(column="age", bins=[50, 18])
    assert EvaluationConfig(slices=["scanner"]).slices[0] == SliceSpec(column="scanner")


def test_the_worst_slice_gap_is_found_and_gated(scored: tuple[pd.DataFrame, np.ndarray, np.ndarray]) -> None:
    frame, y, p = scored
    table = slice_table(frame, TASK, y, TASK.scores(y, p, {"threshold": 0.45}), [SliceSpec(column="scanner")])
    overall = recall_score(y, p >= 0.45)
    worst = worst_slice(table, overall, "recall", min_rows=30)
    assert worst is not None and worst["slice"] == "B"
    assert worst["gap"] == pytest.approx(overall - worst["recall"], abs=1e-4) and worst["gap"] > 0.2
    checks = gate_checks({"recall": overall}, EvaluationConfig(max_slice_gap=0.1), worst=worst)
    assert checks[0]["passed"] is False and checks[0]["metric"] == "recall gap (scanner=B)"
    assert worst_slice(table, overall, "recall", min_rows=10_000) is None  # no slice big enough


def test_errors_are_counted_where_they_fall(scored: tuple[pd.DataFrame, np.ndarray, np.ndarray]) -> None:
    frame, y, p = scored
    errors = error_table(
        frame, TASK.errors(y, (p >= 0.45).astype(int)), [SliceSpec(column="scanner")], top=10
    )
    called = p >= 0.45
    for row in errors:
        value = row["where"].split("=")[1]
        mask = (frame["scanner"] == value).to_numpy()
        wrong = (y == 1) & ~called if row["error"] == "false negative" else (y == 0) & called
        assert row["count"] == (wrong & mask).sum()
    assert [r["count"] for r in errors] == sorted((r["count"] for r in errors), reverse=True)
