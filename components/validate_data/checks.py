"""Schema, null, size and label checks of a dataset against its config."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd

from components.common.config import DatasetConfig, ValidationConfig
from components.common.data import is_positive


@dataclass(frozen=True)
class CheckResult:
    """One expectation: what was checked, on which column, what was seen against what was wanted."""

    check: str
    column: str | None
    passed: bool
    observed: str
    expected: str
    severity: str = "error"

    def as_dict(self) -> dict[str, Any]:
        """Plain dict for JSON."""
        return asdict(self)


def feature_columns(frame: pd.DataFrame, dataset: DatasetConfig) -> list[str]:
    """Configured features, or every column but label, id, time and group."""
    if dataset.features is not None:
        return list(dataset.features)
    reserved = {dataset.label, dataset.id_column, dataset.time_column, dataset.group_column}
    return [c for c in frame.columns if c not in reserved]


def run_checks(frame: pd.DataFrame, dataset: DatasetConfig, rules: ValidationConfig) -> list[CheckResult]:
    """Every check, passed or not, in a stable order."""
    results: list[CheckResult] = []
    features = feature_columns(frame, dataset)
    required = [
        c
        for c in [*features, dataset.label, dataset.id_column, dataset.time_column, dataset.group_column]
        if c
    ]
    missing = [c for c in dict.fromkeys(required) if c not in frame.columns]
    results.append(
        CheckResult(
            "columns_present",
            None,
            not missing,
            f"missing: {missing}" if missing else "all present",
            f"columns {sorted(set(required))}",
        )
    )
    if not rules.allow_extra_columns:
        extra = sorted(set(frame.columns) - set(required))
        results.append(CheckResult("no_extra_columns", None, not extra, f"extra: {extra}", "none"))
    results.append(
        CheckResult("row_count", None, len(frame) >= rules.min_rows, str(len(frame)), f">= {rules.min_rows}")
    )
    for column in [c for c in dict.fromkeys([*features, dataset.label]) if c in frame.columns]:
        share = float(frame[column].isna().mean()) if len(frame) else 0.0
        results.append(
            CheckResult(
                "null_fraction",
                column,
                share <= rules.max_null_fraction,
                f"{share:.4f}",
                f"<= {rules.max_null_fraction}",
            )
        )
    for column in [c for c in features if c in frame.columns and c not in dataset.categorical]:
        numeric = pd.api.types.is_numeric_dtype(frame[column]) and not pd.api.types.is_bool_dtype(
            frame[column]
        )
        results.append(
            CheckResult(
                "numeric_type",
                column,
                numeric,
                str(frame[column].dtype),
                "a numeric dtype (list text columns under dataset.categorical)",
            )
        )
    if dataset.label in frame.columns:
        labels = frame[dataset.label].dropna()
        values = sorted(map(str, labels.unique()))
        positive = str(dataset.positive_value)
        binary = len(values) == 2 and bool(is_positive(labels, dataset.positive_value).any())
        results.append(
            CheckResult(
                "binary_label",
                dataset.label,
                binary,
                f"values {values[:10]}",
                f"exactly two values, one of them {positive}",
            )
        )
    if dataset.time_column and dataset.time_column in frame.columns:
        parsed = pd.to_datetime(frame[dataset.time_column], errors="coerce", utc=True)
        bad = int(parsed.isna().sum())
        results.append(
            CheckResult(
                "timestamps_parse", dataset.time_column, bad == 0, f"{bad} unparseable", "ISO timestamps"
            )
        )
    return results


def bad_row_sample(frame: pd.DataFrame, results: list[CheckResult], limit: int = 5) -> pd.DataFrame:
    """A few rows that break a failed null check, to show in the report."""
    columns = [r.column for r in results if not r.passed and r.check == "null_fraction" and r.column]
    if not columns:
        return frame.iloc[0:0]
    return frame[frame[columns].isna().any(axis=1)].head(limit)
