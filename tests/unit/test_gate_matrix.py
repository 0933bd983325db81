"""The data gate on a matrix of bad inputs: each fails with the right check and column, and no
split is written (so train cannot start); good data passes; a warning-only problem passes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from components.common.config import KubeloopConfig
from components.common.step import GateFailed, StepContext
from components.common.store import LocalStore
from components.validate_data.step import run
from examples.screening.generate import generate

BASE = generate(rows=3000, prevalence=0.05, seed=21)


FEATURES = [c for c in BASE.columns if c not in ("exam_id", "exam_time", "site_id", "label")]


def _config(data: Path, reference: Path, **validation: Any) -> KubeloopConfig:
    profile = {"reference_data": str(reference), **validation.pop("profile", {})}
    return KubeloopConfig.model_validate(
        {
            "name": "gate",
            "dataset": {
                "path": str(data),
                "label": "label",
                "id_column": "exam_id",
                "time_column": "exam_time",
                "group_column": "site_id",
                "categorical": ["scanner"],
                "features": FEATURES,
            },
            "validation": {"min_rows": 500, "group_overlap": "ignore", "profile": profile, **validation},
        }
    )


def _run(tmp_path: Path, frame: pd.DataFrame, **validation: Any) -> tuple[StepContext, Exception | None]:
    reference = tmp_path / "reference.parquet"
    BASE.to_parquet(reference, index=False)
    data = tmp_path / "batch.parquet"
    frame.to_parquet(data, index=False)
    ctx = StepContext(
        config=_config(data, reference, **validation),
        store=LocalStore(tmp_path / "store"),
        run_id="r1",
        step="validate_data",
    )
    try:
        run(ctx, parent_run="", trigger="test")
    except GateFailed as exc:
        return ctx, exc
    return ctx, None


def _with(column: str, index: slice, value: Any) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def change(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame.copy()
        frame.loc[frame.index[index], column] = value
        return frame

    return change


CASES: list[tuple[str, Callable[[pd.DataFrame], pd.DataFrame], dict[str, Any], tuple[str, str | None]]] = [
    (
        "missing column",
        lambda f: f.drop(columns=["age"]),
        {"allow_extra_columns": True},
        ("profile_columns", None),
    ),
    ("extra column", lambda f: f.assign(notes="x"), {"allow_extra_columns": False}, ("columns", None)),
    (
        "reordered columns",
        lambda f: f[list(reversed(f.columns))],
        {"profile": {"column_order": "error"}},
        ("column_order", None),
    ),
    (
        "dtype flip",
        lambda f: f.assign(prior_exams=f["prior_exams"].astype(str)),
        {},
        ("dtype", "prior_exams"),
    ),
    (
        "null burst",
        _with("lesion_size_mm", slice(0, 90), np.nan),
        {"max_null_fraction": 0.0},
        ("null_fraction", "lesion_size_mm"),
    ),
    (
        "out of range",
        _with("age", slice(0, 3), 130.0),
        {"columns": {"age": {"min": 18, "max": 110}}},
        ("max", "age"),
    ),
    (
        "unseen category",
        _with("scanner", slice(0, 50), "Z"),
        {"columns": {"scanner": {"allowed": ["A"]}}},
        ("allowed_values", "scanner"),
    ),
    ("label outside its set", _with("label", slice(0, 20), 2), {}, ("binary_label", "label")),
    (
        "prevalence out of bounds",
        lambda f: f.assign(label=(f.index % 2).astype(int)),
        {"prevalence": {"min": 0.005, "max": 0.1}},
        ("prevalence", "label"),
    ),
    (
        "duplicate rows",
        lambda f: pd.concat(
            [f, f.head(300).assign(exam_id=f["exam_id"].head(300) + 10**6)], ignore_index=True
        ),
        {"max_duplicate_fraction": 0.02},
        ("duplicate_fraction", None),
    ),
    (
        "constant column",
        lambda f: f.assign(breast_density=2),
        {"constant_columns": "error"},
        ("not_constant", "breast_density"),
    ),
    ("too few rows", lambda f: f.head(200), {}, ("row_count", None)),
    (
        "train/test overlap",
        lambda f: pd.concat([f, f.assign(exam_id=f["exam_id"] + 10**6)], ignore_index=True),
        {"profile": {"prevalence_factor": 10}},
        ("split_overlap", None),
    ),
    (
        "unparseable timestamps",
        lambda f: f.assign(exam_time=f["exam_time"].astype(str).where(f.index > 5, "soon")),
        {},
        ("timestamps_parse", "exam_time"),
    ),
    (
        "duplicate ids",
        _with("exam_id", slice(0, 4), 1),
        {"columns": {"exam_id": {"unique": True}}},
        ("unique", "exam_id"),
    ),
]


@pytest.mark.parametrize(("name", "change", "validation", "expected"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_fails_the_gate_naming_check_and_column(
    tmp_path: Path,
    name: str,
    change: Callable[[pd.DataFrame], pd.DataFrame],
    validation: dict[str, Any],
    expected: tuple[str, str | None],
) -> None:
    ctx, error = _run(tmp_path, change(BASE), **validation)
    assert error is not None, f"{name}: the gate let it through"
    checks = ctx.store.read_json(ctx.key("checks.json"))
    blocking = {(c["check"], c["column"]) for c in checks if not c["passed"] and c["severity"] == "error"}
    assert expected in blocking, f"{name}: {blocking}"
    check, column = expected
    assert f"{check}({column or '-'})" in str(error)
    assert ctx.store.list(ctx.key("splits")) == []  # nothing for train to pick up
    assert "**FAIL** (error)" in ctx.store.read_text(ctx.key("report.md"))


def test_good_data_passes_and_writes_the_splits(tmp_path: Path) -> None:
    ctx, error = _run(tmp_path, generate(rows=3000, prevalence=0.05, seed=22))
    assert error is None
    assert len(ctx.store.list(ctx.key("splits"))) == 4
    assert ctx.store.exists(ctx.key("data_profile.json")) and ctx.store.exists(
        ctx.key("expectation_suite.json")
    )


def test_a_warning_only_problem_passes_with_the_warning_in_the_report(tmp_path: Path) -> None:
    mixed = generate(rows=3000, prevalence=0.05, scanners={"A": 0.8, "B": 0.2}, seed=23)
    ctx, error = _run(tmp_path, mixed, columns={"scanner": {"allowed": ["A"], "severity": "warning"}})
    assert error is None
    report = ctx.store.read_text(ctx.key("report.md"))
    assert "# Data validation: passed" in report
    assert "| allowed_values | scanner | unexpected, e.g. ['B'] | within ['A'] | warning |" in report
    assert "| unseen_categories | scanner |" in report
