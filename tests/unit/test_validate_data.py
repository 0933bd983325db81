"""Data checks and splits of the validate_data step."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from components.common.config import ValidationConfig
from components.validate_data.checks import run_checks
from components.validate_data.splits import assign_splits
from examples.screening.generate import generate
from tests.conftest import screening_dataset


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return generate(rows=6000, prevalence=0.1, seed=11, sites=20)


def _failed(results: list) -> set[tuple[str, str | None]]:
    return {(r.check, r.column) for r in results if r.blocking}


def _warned(results: list) -> set[tuple[str, str | None]]:
    return {(r.check, r.column) for r in results if not r.passed and not r.blocking}


def test_clean_data_passes_and_a_constant_feature_only_warns(frame: pd.DataFrame) -> None:
    results = run_checks(frame, screening_dataset(), ValidationConfig())
    assert _failed(results) == set()
    assert _warned(results) == {("not_constant", "scanner")}  # every exam came from scanner A
    ignored = run_checks(frame, screening_dataset(), ValidationConfig(constant_columns="ignore"))
    assert _warned(ignored) == set()


def test_missing_column_nulls_and_types_fail(frame: pd.DataFrame) -> None:
    broken = frame.drop(columns=["age"]).copy()
    broken.loc[broken.index[:30], "lesion_size_mm"] = np.nan
    broken["prior_exams"] = "many"
    failed = _failed(
        run_checks(
            broken,
            screening_dataset().model_copy(update={"features": None}),
            ValidationConfig(max_null_fraction=0.0),
        )
    )
    assert ("null_fraction", "lesion_size_mm") in failed
    assert ("dtype", "prior_exams") in failed
    named = screening_dataset().model_copy(update={"features": ["age", "lesion_size_mm", "scanner"]})
    assert ("columns", None) in _failed(run_checks(broken, named, ValidationConfig()))


def test_label_must_be_binary_with_the_positive_value(frame: pd.DataFrame) -> None:
    three = frame.assign(label=frame["label"].where(frame.index % 7 != 0, 2))
    assert ("binary_label", "label") in _failed(run_checks(three, screening_dataset(), ValidationConfig()))


def test_too_few_rows_and_tolerated_nulls(frame: pd.DataFrame) -> None:
    assert ("row_count", None) in _failed(
        run_checks(frame.head(50), screening_dataset(), ValidationConfig(min_rows=100))
    )
    sparse = frame.copy()
    sparse.loc[sparse.index[:30], "age"] = np.nan
    assert _failed(run_checks(sparse, screening_dataset(), ValidationConfig(max_null_fraction=0.01))) == set()


def _shares(assignment: pd.Series) -> dict[str, float]:
    return assignment.value_counts(normalize=True).to_dict()


def test_random_split_is_stratified(frame: pd.DataFrame) -> None:
    assignment = assign_splits(frame, screening_dataset(strategy="random"))
    shares = _shares(assignment)
    assert shares["test"] == pytest.approx(0.2, abs=0.01)
    assert shares["train"] == pytest.approx(0.5, abs=0.01)
    prevalence = frame.groupby(assignment.to_numpy())["label"].mean()
    assert prevalence.max() - prevalence.min() < 0.01


def test_temporal_split_tests_on_the_latest_rows(frame: pd.DataFrame) -> None:
    assignment = assign_splits(frame, screening_dataset(strategy="temporal"))
    times = frame["exam_time"]
    assert times[assignment == "test"].min() >= times[assignment != "test"].max()
    assert times[assignment == "train"].max() <= times[assignment == "validation"].min()
    assert _shares(assignment)["test"] == pytest.approx(0.2, abs=0.01)


def test_temporal_split_respects_an_explicit_cutoff(frame: pd.DataFrame) -> None:
    cutoff = "2025-10-01"
    assignment = assign_splits(frame, screening_dataset(strategy="temporal", cutoff=cutoff))
    assert (frame.loc[assignment == "test", "exam_time"] >= pd.Timestamp(cutoff)).all()
    assert (frame.loc[assignment != "test", "exam_time"] < pd.Timestamp(cutoff)).all()


def test_group_split_keeps_each_site_on_one_side(frame: pd.DataFrame) -> None:
    assignment = assign_splits(frame, screening_dataset(strategy="group"))
    sides = frame.groupby("site_id").apply(lambda g: assignment[g.index].nunique(), include_groups=False)
    assert (sides == 1).all()
    assert set(assignment) == {"train", "validation", "calibration", "test"}


def test_group_split_needs_enough_groups(frame: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="at least 4 distinct"):
        assign_splits(frame.assign(site_id=frame["site_id"] % 2), screening_dataset(strategy="group"))


def test_declared_rules_catch_ranges_sets_uniqueness_and_severity(frame: pd.DataFrame) -> None:
    broken = frame.copy()
    broken.loc[broken.index[:3], "age"] = 150.0
    broken.loc[broken.index[:2], "exam_id"] = 7
    rules = ValidationConfig(
        columns={
            "age": {"min": 18, "max": 110},
            "scanner": {"allowed": ["B", "C"], "severity": "warning"},
            "exam_id": {"unique": True},
            "breast_density": {"type": "integer", "allowed": [1, 2, 3, 4]},
        }
    )
    results = run_checks(broken, screening_dataset(), rules)
    assert _failed(results) == {("max", "age"), ("unique", "exam_id")}
    assert ("allowed_values", "scanner") in _warned(results)
    by_check = {(r.check, r.column): r for r in results}
    assert by_check[("max", "age")].observed == "150"
    assert "A" in by_check[("allowed_values", "scanner")].observed
    assert by_check[("dtype", "breast_density")].passed


def test_prevalence_bounds_and_duplicates(frame: pd.DataFrame) -> None:
    doubled = pd.concat([frame, frame.head(600).assign(exam_id=lambda f: f["exam_id"] + 10**6)])
    rules = ValidationConfig(prevalence={"min": 0.005, "max": 0.05}, max_duplicate_fraction=0.05)
    failed = _failed(run_checks(doubled, screening_dataset(), rules))
    assert failed == {("prevalence", "label"), ("duplicate_fraction", None)}
    relaxed = ValidationConfig(prevalence={"min": 0.05, "max": 0.2}, max_duplicate_fraction=0.2)
    assert _failed(run_checks(doubled, screening_dataset(), relaxed)) == set()


def test_unparseable_timestamps_and_extra_columns(frame: pd.DataFrame) -> None:
    broken = frame.assign(exam_time=frame["exam_time"].astype(str), notes="x")
    broken.loc[broken.index[:4], "exam_time"] = "yesterday"
    named = screening_dataset().model_copy(update={"features": ["age", "lesion_size_mm", "scanner"]})
    extra = set(frame.columns) - {
        "age",
        "lesion_size_mm",
        "scanner",
        "label",
        "exam_id",
        "exam_time",
        "site_id",
    }
    failed = _failed(
        run_checks(broken.drop(columns=list(extra)), named, ValidationConfig(allow_extra_columns=False))
    )
    assert failed == {("timestamps_parse", "exam_time"), ("columns", None)}


def test_a_failed_gate_report_samples_the_offending_rows(frame: pd.DataFrame) -> None:
    from components.validate_data.report import bad_row_sample, render_report

    broken = frame.copy()
    broken.loc[broken.index[10:13], "lesion_size_mm"] = np.nan
    rules = ValidationConfig(max_null_fraction=0.0)
    results = run_checks(broken, screening_dataset(), rules)
    sample = bad_row_sample(broken, results, rules)
    assert sample["exam_id"].tolist() == [10, 11, 12]
    report = render_report("d.csv", len(broken), results, sample)
    assert report.startswith("# Data validation: FAILED")
    assert "| null_fraction | lesion_size_mm | 0.0005 | <= 0.0 | **FAIL** (error) |" in report
    assert "| not_constant | scanner | 1 | >= 2 distinct values | warning |" in report


def test_data_docs_render_as_html(frame: pd.DataFrame) -> None:
    from components.validate_data.checks import validate_frame
    from components.validate_data.report import data_docs_html

    _, result = validate_frame(frame.head(500), screening_dataset(), ValidationConfig())
    html = data_docs_html(result)
    assert html.lstrip().lower().startswith("<!doctype html") or "<html" in html[:500].lower()
    assert "expect_column_values_to_not_be_null" in html or "values must never be null" in html


def test_rows_copied_across_splits_and_shared_groups_are_leakage(frame: pd.DataFrame) -> None:
    from components.validate_data.leakage import split_leakage

    dataset = screening_dataset(strategy="random")
    features = [c for c in frame.columns if c not in ("exam_id", "exam_time", "site_id", "label")]
    clean = split_leakage(frame, assign_splits(frame, dataset), dataset, ValidationConfig(), features)
    by_check = {r.check: r for r in clean}
    assert by_check["split_overlap"].passed
    # Random splits put every site on both sides: a warning by default, an error when asked.
    assert not by_check["group_overlap"].passed and by_check["group_overlap"].severity == "warning"

    copied = pd.concat(
        [frame, frame.head(300).assign(exam_id=lambda f: f["exam_id"] + 10**6)], ignore_index=True
    )
    leaky = split_leakage(
        copied, assign_splits(copied, dataset), dataset, ValidationConfig(group_overlap="error"), features
    )
    by_check = {r.check: r for r in leaky}
    assert (
        by_check["split_overlap"].blocking
        and "held-out rows also in train" in by_check["split_overlap"].observed
    )
    assert by_check["group_overlap"].blocking
    grouped = screening_dataset(strategy="group")
    assert [
        r.check
        for r in split_leakage(frame, assign_splits(frame, grouped), grouped, ValidationConfig(), features)
    ] == ["split_overlap"]


def test_a_class_below_the_minimum_share_fails_by_name(frame: pd.DataFrame) -> None:
    from components.validate_data.checks import class_balance

    dataset = screening_dataset()
    share = float(frame[dataset.label].mean())  # the positive class's share
    (passing,) = class_balance(frame, dataset, ValidationConfig(min_class_share=share / 2))
    assert passing.passed and passing.observed.startswith("smallest '1': ")
    (failing,) = class_balance(frame, dataset, ValidationConfig(min_class_share=share * 2))
    assert failing.blocking and failing.observed.startswith("'1': ") and "'0'" not in failing.observed
    assert class_balance(frame, dataset, ValidationConfig()) == []
