"""Data checks and splits of the validate_data step."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from components.common.config import DatasetConfig, SplitSpec, ValidationConfig
from components.validate_data.checks import run_checks
from components.validate_data.splits import assign_splits
from examples.screening.generate import generate


def _dataset(**split: object) -> DatasetConfig:
    return DatasetConfig(
        path="x.csv",
        label="label",
        id_column="exam_id",
        time_column="exam_time",
        group_column="site_id",
        categorical=["scanner"],
        split=SplitSpec(**split),
    )


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return generate(rows=6000, prevalence=0.1, seed=11, sites=20)


def _failed(results: list) -> set[tuple[str, str | None]]:
    return {(r.check, r.column) for r in results if not r.passed}


def test_clean_data_passes(frame: pd.DataFrame) -> None:
    assert _failed(run_checks(frame, _dataset(), ValidationConfig())) == set()


def test_missing_column_nulls_and_types_fail(frame: pd.DataFrame) -> None:
    broken = frame.drop(columns=["age"]).copy()
    broken.loc[broken.index[:30], "lesion_size_mm"] = np.nan
    broken["prior_exams"] = "many"
    failed = _failed(run_checks(broken, _dataset().model_copy(update={"features": None}), ValidationConfig()))
    assert ("null_fraction", "lesion_size_mm") in failed
    assert ("numeric_type", "prior_exams") in failed
    named = _dataset().model_copy(update={"features": ["age", "lesion_size_mm", "scanner"]})
    assert ("columns_present", None) in _failed(run_checks(broken, named, ValidationConfig()))


def test_label_must_be_binary_with_the_positive_value(frame: pd.DataFrame) -> None:
    three = frame.assign(label=frame["label"].where(frame.index % 7 != 0, 2))
    assert ("binary_label", "label") in _failed(run_checks(three, _dataset(), ValidationConfig()))


def test_too_few_rows_and_tolerated_nulls(frame: pd.DataFrame) -> None:
    assert ("row_count", None) in _failed(
        run_checks(frame.head(50), _dataset(), ValidationConfig(min_rows=100))
    )
    sparse = frame.copy()
    sparse.loc[sparse.index[:30], "age"] = np.nan
    assert _failed(run_checks(sparse, _dataset(), ValidationConfig(max_null_fraction=0.01))) == set()


def _shares(assignment: pd.Series) -> dict[str, float]:
    return assignment.value_counts(normalize=True).to_dict()


def test_random_split_is_stratified(frame: pd.DataFrame) -> None:
    assignment = assign_splits(frame, _dataset(strategy="random"))
    shares = _shares(assignment)
    assert shares["test"] == pytest.approx(0.2, abs=0.01)
    assert shares["train"] == pytest.approx(0.5, abs=0.01)
    prevalence = frame.groupby(assignment.to_numpy())["label"].mean()
    assert prevalence.max() - prevalence.min() < 0.01


def test_temporal_split_tests_on_the_latest_rows(frame: pd.DataFrame) -> None:
    assignment = assign_splits(frame, _dataset(strategy="temporal"))
    times = frame["exam_time"]
    assert times[assignment == "test"].min() >= times[assignment != "test"].max()
    assert times[assignment == "train"].max() <= times[assignment == "validation"].min()
    assert _shares(assignment)["test"] == pytest.approx(0.2, abs=0.01)


def test_temporal_split_respects_an_explicit_cutoff(frame: pd.DataFrame) -> None:
    cutoff = "2025-10-01"
    assignment = assign_splits(frame, _dataset(strategy="temporal", cutoff=cutoff))
    assert (frame.loc[assignment == "test", "exam_time"] >= pd.Timestamp(cutoff)).all()
    assert (frame.loc[assignment != "test", "exam_time"] < pd.Timestamp(cutoff)).all()


def test_group_split_keeps_each_site_on_one_side(frame: pd.DataFrame) -> None:
    assignment = assign_splits(frame, _dataset(strategy="group"))
    sides = frame.groupby("site_id").apply(lambda g: assignment[g.index].nunique(), include_groups=False)
    assert (sides == 1).all()
    assert set(assignment) == {"train", "validation", "calibration", "test"}


def test_group_split_needs_enough_groups(frame: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="at least 4 distinct"):
        assign_splits(frame.assign(site_id=frame["site_id"] % 2), _dataset(strategy="group"))
